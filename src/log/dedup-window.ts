import { ConcordatError, ErrorCode } from '../errors.js';
import { compressionFromCode } from './compression.js';
import {
  ATTRIBUTES_OFFSET,
  BATCH_LENGTH_OFFSET,
  decodeRecordBatches,
  encodeRecordBatch,
  LOG_OVERHEAD,
  PRODUCER_ID_OFFSET,
  readInt64,
  type DecodedRecord,
} from './record-batch.js';

/** The record header whose value is the message ID: CloudEvents' `ce_id` in Kafka binary mode. */
export const DEDUP_HEADER = 'ce_id';

/** Where a record landed: its partition and offset. */
export interface RecordLocation {
  partition: number;
  offset: number;
}

/** A registered message ID: where its record is, when it was appended, and whether it is acknowledged. */
export interface DedupEntry extends RecordLocation {
  timestampMs: number;
  /** Settles with the append that wrote it; null once acknowledged (or when rebuilt from disk). */
  acked: Promise<unknown> | null;
}

/**
 * What became of one input record: written (null), a repeat of a record
 * appended before (`entry`), or a repeat of a record written earlier in the
 * same append (`writtenIndex`, its index among the written records).
 */
export type DedupOriginal = null | { entry: DedupEntry } | { writtenIndex: number };

/** What an append does with its records, decided before its offsets are assigned. */
export interface DedupPlan {
  /** What to append: the input, the input rebuilt without duplicates, or null when every record repeats. */
  bytes: Buffer | null;
  /** Per input record, in order. */
  originals: DedupOriginal[];
  /** Per written record, in order: its ID, or null. */
  writtenIds: (string | null)[];
}

/**
 * The per-topic message-ID dedup window (NATS JetStream's `Nats-Msg-Id`
 * with `duplicate_window`, on CloudEvents' `ce_id` header).
 *
 * With topic config `dedupWindowMs > 0`, every record appended to the topic
 * with a `ce_id` header registers that ID with where it landed. A record
 * whose ID is already registered (by any partition of the topic: a retried
 * publish without a key may land on another partition) and younger than the
 * window is not written again; the append answers with the original's
 * partition and offset in `AppendResult.recordLocations`. When only some
 * records of a batch repeat, the batch is rebuilt without them (the one
 * case in which the log re-encodes what it was given). Batches of
 * idempotent producers (producerId ≥ 0) are never rebuilt or dropped,
 * since that would break their sequence numbers; their IDs are registered
 * all the same, and their retries are caught by sequence (producer-state.ts).
 *
 * An ID is registered when its append is accepted, before its sync; a
 * duplicate of a record still waiting for its sync waits for it. If that
 * append fails, its IDs are removed, so a retry is written.
 *
 * Bounds: `dedupWindowMs` (entries older are forgotten) and
 * `dedupWindowIdsMax` (beyond it the oldest is forgotten). Memory is about
 * 150 bytes per ID. After a restart the window is rebuilt from the records
 * of the last `dedupWindowMs` (found with the time index), in timestamp
 * order, by the log manager.
 *
 * Concurrency: one window per topic, shared by its partitions; every
 * method is synchronous, so calls from different partitions never
 * interleave. `plan` and `register` of one append run in the same
 * synchronous stretch of the partition's `append`, so no other append can
 * register an ID between them.
 */
export class DedupWindow {
  /** Insertion order is (about) time order: the oldest go first. */
  private readonly ids = new Map<string, DedupEntry>();

  constructor(
    readonly topic: string,
    private windowMs: number,
    private idsMax: number,
    private readonly decompressedBytesMax: number,
  ) {}

  /** Message IDs registered now (at most `dedupWindowIdsMax`). */
  get size(): number {
    return this.ids.size;
  }

  /** Applies a changed topic config. */
  configure(windowMs: number, idsMax: number): void {
    this.windowMs = windowMs;
    this.idsMax = idsMax;
  }

  /**
   * Decides which records of validated append bytes are written.
   * @throws ConcordatError CORRUPT_MESSAGE, INVALID_RECORD, LIMIT_EXCEEDED (decompression) from decoding
   */
  plan(bytes: Buffer, nowMs: number): DedupPlan {
    this.evict(nowMs);
    const originals: DedupOriginal[] = [];
    const writtenIds: (string | null)[] = [];
    const seen = new Map<string, number>();
    const kept: Buffer[] = [];
    let rebuilt = false;
    let pos = 0;
    while (pos < bytes.length) {
      const total = LOG_OVERHEAD + bytes.readInt32BE(pos + BATCH_LENGTH_OFFSET);
      const batch = bytes.subarray(pos, pos + total);
      const idempotent = readInt64(batch, PRODUCER_ID_OFFSET) >= 0;
      const [decoded] = decodeRecordBatches(batch, { verifyCrc: false, decompressedBytesMax: this.decompressedBytesMax });
      const keep: DecodedRecord[] = [];
      for (const record of decoded!.records) {
        const id = messageId(record);
        const original = id === null || idempotent ? null : this.originalOf(id, seen, nowMs);
        originals.push(original);
        if (original !== null) continue;
        if (id !== null) seen.set(id, writtenIds.length);
        writtenIds.push(id);
        keep.push(record);
      }
      if (keep.length === decoded!.records.length) kept.push(batch);
      else {
        rebuilt = true;
        if (keep.length > 0) kept.push(rebuildBatch(batch, keep));
      }
      pos += total;
    }
    if (writtenIds.length === 0) return { bytes: null, originals, writtenIds };
    return { bytes: rebuilt ? Buffer.concat(kept) : bytes, originals, writtenIds };
  }

  /** Registers the written records of a planned append, once their offsets are known. */
  register(plan: DedupPlan, partition: number, baseOffset: number, nowMs: number, acked: Promise<unknown>): DedupEntry[] {
    const added: DedupEntry[] = [];
    plan.writtenIds.forEach((id, i) => {
      if (id === null) return;
      const entry: DedupEntry = { partition, offset: baseOffset + i, timestampMs: nowMs, acked };
      this.ids.delete(id);
      this.ids.set(id, entry);
      added.push(entry);
    });
    this.evict(nowMs);
    return added;
  }

  /** The append that wrote `entries` was acknowledged. */
  acknowledge(entries: readonly DedupEntry[]): void {
    for (const entry of entries) entry.acked = null;
  }

  /** The append that wrote `entries` failed: forget them, so that a retry is written. */
  forget(entries: readonly DedupEntry[]): void {
    const doomed = new Set(entries);
    for (const [id, entry] of this.ids) if (doomed.has(entry)) this.ids.delete(id);
  }

  /** Adds an ID read back from the log (rebuilding after a restart). */
  restore(id: string, location: RecordLocation, timestampMs: number): void {
    this.ids.delete(id);
    this.ids.set(id, { ...location, timestampMs, acked: null });
    if (this.ids.size > this.idsMax) this.ids.delete(this.ids.keys().next().value!);
  }

  /** Forgets IDs older than the window, and the oldest beyond idsMax. */
  evict(nowMs: number): void {
    const horizon = nowMs - this.windowMs;
    for (const [id, entry] of this.ids) {
      if (this.ids.size <= this.idsMax && entry.timestampMs >= horizon) break;
      this.ids.delete(id);
    }
  }

  private originalOf(id: string, seen: ReadonlyMap<string, number>, nowMs: number): DedupOriginal {
    const earlier = seen.get(id);
    if (earlier !== undefined) return { writtenIndex: earlier };
    const entry = this.ids.get(id);
    if (entry === undefined || entry.timestampMs < nowMs - this.windowMs) return null;
    return { entry };
  }
}

/** The `ce_id` header of a record as text, or null. The last one counts when repeated. */
export function messageId(record: DecodedRecord): string | null {
  let value: Buffer | null = null;
  for (const header of record.headers) if (header.key === DEDUP_HEADER) value = header.value;
  return value === null || value.length === 0 ? null : value.toString('utf8');
}

/**
 * Where each input record of a planned append is, in input order
 * (`AppendResult.recordLocations`), once its written records took the
 * offsets from `baseOffset` on `partition`: a written record at its own
 * offset, a repeat at its original's (an earlier append's, possibly on
 * another partition, or a record written earlier in the same append).
 */
export function plannedLocations(plan: DedupPlan, partition: number, baseOffset: number): RecordLocation[] {
  let written = 0;
  return plan.originals.map((original) => {
    if (original === null) return { partition, offset: baseOffset + written++ };
    if ('entry' in original) return { partition: original.entry.partition, offset: original.entry.offset };
    return { partition, offset: baseOffset + original.writtenIndex };
  });
}

/** The batch re-encoded with only `records`: same codec, same record timestamps; no producer fields (it has none). */
function rebuildBatch(batch: Buffer, records: readonly DecodedRecord[]): Buffer {
  const compression = compressionFromCode(batch.readInt16BE(ATTRIBUTES_OFFSET) & 0x07);
  if (records.length === 0) throw new ConcordatError('a rebuilt batch needs a record', { code: ErrorCode.INVALID_RECORD });
  return encodeRecordBatch(
    records.map((r) => ({ key: r.key, value: r.value, headers: r.headers, timestampMs: r.timestampMs })),
    { compression, timestampMs: records[0]!.timestampMs },
  );
}
