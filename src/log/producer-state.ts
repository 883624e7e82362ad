import { ConcordatError, ErrorCode } from '../errors.js';
import { isControlBatch, type TransactionsSnapshot } from './transaction-index.js';
import {
  BATCH_LENGTH_OFFSET,
  LAST_OFFSET_DELTA_OFFSET,
  LOG_OVERHEAD,
  MAX_TIMESTAMP_OFFSET,
  PRODUCER_EPOCH_OFFSET,
  PRODUCER_ID_OFFSET,
  BASE_SEQUENCE_OFFSET,
  readInt64,
} from './record-batch.js';

/** Batches remembered per producer for spotting retries: Kafka's 5 (a producer has at most 5 requests in flight). */
export const BATCHES_REMEMBERED = 5;
const INT32_MAX = 0x7fffffff;

/** One remembered batch of a producer: its sequence range and offset range (inclusive). */
export interface ProducerBatch {
  firstSeq: number;
  lastSeq: number;
  firstOffset: number;
  lastOffset: number;
}

interface ProducerEntry {
  epoch: number;
  /** Oldest first, at most BATCHES_REMEMBERED. */
  batches: ProducerBatch[];
  /** Wall clock (or, when replayed, the batch's maxTimestamp) of the last append, for expiry. */
  lastAppendMs: number;
}

/** A batch accepted but not yet acknowledged. `acked` settles with its append. */
export interface PendingProducerBatch {
  producerId: number;
  epoch: number;
  batch: ProducerBatch;
  acked: Promise<unknown>;
}

/** One idempotent batch of an append, read from its header. */
export interface IdempotentBatchInfo {
  producerId: number;
  epoch: number;
  firstSeq: number;
  lastSeq: number;
  /** Records in the batch (lastOffsetDelta + 1). */
  count: number;
  maxTimestamp: number;
}

/** The result of checking an append: write it (with these batches to remember), or it repeats `original`. */
export type ProducerCheck = { kind: 'append'; batches: IdempotentBatchInfo[] } | { kind: 'duplicate'; original: ProducerBatch; acked: Promise<unknown> | null };

/** The partition a {@link ProducerStateManager} serves and its bounds. */
export interface ProducerStateOptions {
  topic: string;
  partition: number;
  producerIdExpirationMs: number;
  producersPerPartitionMax: number;
}

/** A producer in a snapshot: `[producerId, epoch, lastAppendMs, [[firstSeq, lastSeq, firstOffset, lastOffset], ...]]`. */
export type ProducerSnapshotRow = [number, number, number, [number, number, number, number][]];

/** The body of a `<offset>.snapshot` file: every producer's state as of `offset`. */
export interface ProducerSnapshot {
  offset: number;
  producers: ProducerSnapshotRow[];
  /** The partition's transactions (transaction-index.ts); absent in snapshots written before transactions were served. */
  transactions?: TransactionsSnapshot;
}

/**
 * Idempotent producers (KIP-98), per partition: Kafka's `ProducerStateManager`.
 *
 * A batch with `producerId ≥ 0` carries the producer's epoch and the
 * sequence number of its first record; its records take the sequences
 * `baseSequence .. baseSequence + lastOffsetDelta` (wrapping from 2^31-1 to 0).
 * For each producer the partition remembers its epoch and its last
 * {@link BATCHES_REMEMBERED} batches (sequences and offsets), and checks
 * every new batch against them, in Kafka's order:
 * 1. a batch equal (same epoch, first and last sequence) to a remembered one
 *    is a retry: it is acknowledged with the original's offsets and not
 *    written again (if the original is still waiting for its sync, the
 *    retry waits with it);
 * 2. an epoch below the producer's is refused: INVALID_PRODUCER_EPOCH;
 * 3. a higher epoch must start at sequence 0, else OUT_OF_ORDER_SEQUENCE_NUMBER;
 * 4. the same epoch must continue at last sequence + 1, else OUT_OF_ORDER_SEQUENCE_NUMBER;
 * 5. a producer the partition does not know (never seen, expired, or its
 *    batches deleted by retention) is accepted at any sequence, as Kafka ≥ 2.5 does.
 *
 * Appends are checked when they are accepted, before their sync, so the
 * state has two layers: `producers` holds what acknowledged batches left,
 * `pending` the batches accepted and not yet acknowledged, in offset order.
 * An acknowledgement moves a batch down; a failed append (the partition
 * truncates back to its high watermark) drops every pending batch.
 *
 * Across restarts the state is rebuilt from a snapshot plus the batches
 * after it (Kafka's `<offset>.snapshot` files and log replay): the partition
 * writes a snapshot at each recovery checkpoint and on close
 * (producer-snapshots.ts), and on open replays the batch headers from the
 * snapshot's offset to the log end. Snapshot body:
 * `{ offset, producers: [[producerId, epoch, lastAppendMs, [[firstSeq, lastSeq, firstOffset, lastOffset], ...]], ...] }`.
 *
 * Bounds: a producer silent for `producerIdExpirationMs` is forgotten, and
 * beyond `producersPerPartitionMax` the least recently appending one is.
 *
 * Concurrency: every method is synchronous, so no two calls interleave; the
 * partition calls them from its append check, its acknowledgement and its
 * failure path, in offset order. One instance per partition.
 */
export class ProducerStateManager {
  /** Acknowledged state; insertion order is recency of the last append. */
  private readonly producers = new Map<number, ProducerEntry>();
  private readonly pending: PendingProducerBatch[] = [];
  /** Whether the acknowledged state changed since the last snapshot. */
  private changed = false;

  constructor(private readonly options: ProducerStateOptions) {}

  /** Producers remembered (acknowledged state). */
  get producerCount(): number {
    return this.producers.size;
  }

  /** Whether the state changed since the last snapshot was taken: the next checkpoint writes one. */
  get hasChanges(): boolean {
    return this.changed;
  }

  /** Whether the partition remembers `producerId` (acknowledged state). */
  has(producerId: number): boolean {
    return this.producers.has(producerId);
  }

  /**
   * Checks the batches of one append (whole, validated RecordBatch v2 bytes).
   * @throws ConcordatError INVALID_PRODUCER_EPOCH, OUT_OF_ORDER_SEQUENCE_NUMBER, INVALID_RECORD,
   *   DUPLICATE_SEQUENCE_NUMBER (a repeated batch among several in one append)
   */
  check(bytes: Buffer): ProducerCheck {
    const infos = idempotentBatches(bytes);
    if (infos.length === 0) return { kind: 'append', batches: infos };
    const planned = new Map<number, { epoch: number; lastSeq: number }>();
    for (let i = 0; i < infos.length; i++) {
      const info = infos[i]!;
      const duplicate = planned.has(info.producerId) ? null : this.findDuplicate(info);
      if (duplicate !== null) {
        if (infos.length > 1 || bytes.length !== batchBytesOf(bytes)) {
          throw this.error(
            ErrorCode.DUPLICATE_SEQUENCE_NUMBER,
            `batch ${i} repeats sequences ${info.firstSeq}..${info.lastSeq} of producer ${info.producerId}, already appended at offset ${duplicate.original.firstOffset}, ` +
              'among other batches of the same append; send an idempotent batch alone',
          );
        }
        return duplicate;
      }
      this.checkSequence(info, planned.get(info.producerId) ?? this.current(info.producerId));
      planned.set(info.producerId, { epoch: info.epoch, lastSeq: info.lastSeq });
    }
    return { kind: 'append', batches: infos };
  }

  /**
   * Remembers the idempotent batches of an accepted append whose offsets are
   * assigned in `bytes`, until it is acknowledged or fails.
   */
  addPending(infos: readonly IdempotentBatchInfo[], bytes: Buffer, acked: Promise<unknown>): PendingProducerBatch[] {
    const baseOffsets: number[] = [];
    for (let pos = 0; pos < bytes.length; pos += LOG_OVERHEAD + bytes.readInt32BE(pos + BATCH_LENGTH_OFFSET)) {
      if (readInt64(bytes, pos + PRODUCER_ID_OFFSET) >= 0) baseOffsets.push(readInt64(bytes, pos));
    }
    const added = infos.map((info, i): PendingProducerBatch => ({
      producerId: info.producerId,
      epoch: info.epoch,
      batch: { firstSeq: info.firstSeq, lastSeq: info.lastSeq, firstOffset: baseOffsets[i]!, lastOffset: baseOffsets[i]! + info.count - 1 },
      acked,
    }));
    this.pending.push(...added);
    return added;
  }

  /** An append was acknowledged: its batches join the durable state. Appends are acknowledged in offset order. */
  confirm(batches: readonly PendingProducerBatch[], nowMs: number): void {
    for (const pending of batches) {
      const head = this.pending.shift();
      if (head !== pending) throw new Error('producer batches were confirmed out of order');
      this.remember(pending.producerId, pending.epoch, pending.batch, nowMs);
    }
  }

  /** Every unacknowledged append failed (the partition was truncated back to its high watermark). */
  dropPending(): void {
    this.pending.length = 0;
  }

  /** Rebuilds from one batch read back from the log (header only). Control batches (transaction markers) carry no sequences. */
  replay(buf: Buffer, at: number): void {
    const producerId = readInt64(buf, at + PRODUCER_ID_OFFSET);
    if (producerId < 0 || isControlBatch(buf, at)) return;
    const info = batchInfo(buf, at, producerId);
    const firstOffset = readInt64(buf, at);
    this.remember(
      producerId,
      info.epoch,
      { firstSeq: info.firstSeq, lastSeq: info.lastSeq, firstOffset, lastOffset: firstOffset + info.count - 1 },
      info.maxTimestamp,
    );
  }

  /** Forgets producers whose last batch lies below `logStartOffset` (deleted by retention), as Kafka does. */
  removeBefore(logStartOffset: number): void {
    for (const [producerId, entry] of this.producers) {
      if (entry.batches[entry.batches.length - 1]!.lastOffset < logStartOffset) {
        this.producers.delete(producerId);
        this.changed = true;
      }
    }
  }

  /**
   * The lastOffset of each remembered producer's latest batch: the batches
   * the log cleaner keeps (possibly emptied) so that a replay of the log
   * still finds every producer's last sequence (cleaner/).
   */
  lastBatchOffsets(): Set<number> {
    const offsets = new Set<number>();
    for (const entry of this.producers.values()) offsets.add(entry.batches[entry.batches.length - 1]!.lastOffset);
    return offsets;
  }

  /** Forgets producers that appended nothing for producerIdExpirationMs. */
  expire(nowMs: number): void {
    for (const [producerId, entry] of this.producers) {
      if (nowMs - entry.lastAppendMs > this.options.producerIdExpirationMs && !this.pending.some((p) => p.producerId === producerId)) {
        this.producers.delete(producerId);
        this.changed = true;
      }
    }
  }

  /** The acknowledged state, as of `offset` (the high watermark when taken). */
  snapshot(offset: number): ProducerSnapshot {
    this.changed = false;
    return {
      offset,
      producers: [...this.producers].map(([producerId, entry]) => [
        producerId,
        entry.epoch,
        entry.lastAppendMs,
        entry.batches.map((b) => [b.firstSeq, b.lastSeq, b.firstOffset, b.lastOffset]),
      ]),
    };
  }

  /** Replaces the state with a snapshot's. @throws Error when the body is malformed (the caller treats the snapshot as bad) */
  restore(snapshot: ProducerSnapshot): void {
    this.producers.clear();
    this.pending.length = 0;
    for (const [producerId, epoch, lastAppendMs, batches] of snapshot.producers) {
      if (!Number.isSafeInteger(producerId) || !Array.isArray(batches) || batches.length === 0) throw new Error('malformed producer row');
      const entry: ProducerEntry = {
        epoch,
        lastAppendMs,
        batches: batches.map(([firstSeq, lastSeq, firstOffset, lastOffset]) => ({ firstSeq, lastSeq, firstOffset, lastOffset })),
      };
      this.producers.set(producerId, entry);
    }
    this.changed = false;
  }

  private remember(producerId: number, epoch: number, batch: ProducerBatch, nowMs: number): void {
    let entry = this.producers.get(producerId);
    if (entry === undefined || epoch !== entry.epoch) {
      entry = { epoch, batches: [], lastAppendMs: nowMs };
    }
    this.producers.delete(producerId);
    this.producers.set(producerId, entry);
    entry.batches.push(batch);
    if (entry.batches.length > BATCHES_REMEMBERED) entry.batches.shift();
    entry.lastAppendMs = nowMs;
    this.changed = true;
    if (this.producers.size > this.options.producersPerPartitionMax) {
      const oldest = this.producers.keys().next().value!;
      this.producers.delete(oldest);
    }
  }

  /** The producer's latest epoch and last sequence: its newest pending batch, else its acknowledged state; null when unknown. */
  private current(producerId: number): { epoch: number; lastSeq: number } | null {
    for (let i = this.pending.length - 1; i >= 0; i--) {
      const pending = this.pending[i]!;
      if (pending.producerId === producerId) return { epoch: pending.epoch, lastSeq: pending.batch.lastSeq };
    }
    const entry = this.producers.get(producerId);
    if (entry === undefined) return null;
    return { epoch: entry.epoch, lastSeq: entry.batches[entry.batches.length - 1]!.lastSeq };
  }

  private findDuplicate(info: IdempotentBatchInfo): Extract<ProducerCheck, { kind: 'duplicate' }> | null {
    for (const pending of this.pending) {
      if (pending.producerId === info.producerId && pending.epoch === info.epoch && sameSequences(pending.batch, info)) {
        return { kind: 'duplicate', original: pending.batch, acked: pending.acked };
      }
    }
    const entry = this.producers.get(info.producerId);
    if (entry === undefined || entry.epoch !== info.epoch) return null;
    const original = entry.batches.find((batch) => sameSequences(batch, info));
    return original === undefined ? null : { kind: 'duplicate', original, acked: null };
  }

  private checkSequence(info: IdempotentBatchInfo, current: { epoch: number; lastSeq: number } | null): void {
    if (current === null) return;
    if (info.epoch < current.epoch) {
      throw this.error(
        ErrorCode.INVALID_PRODUCER_EPOCH,
        `producer ${info.producerId} sent epoch ${info.epoch}, older than its current epoch ${current.epoch}; a newer instance of this producer fenced it`,
      );
    }
    if (info.epoch > current.epoch) {
      if (info.firstSeq !== 0) {
        throw this.error(
          ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
          `producer ${info.producerId} started epoch ${info.epoch} at sequence ${info.firstSeq}; a new epoch must start at 0`,
        );
      }
      return;
    }
    const expected = current.lastSeq === INT32_MAX ? 0 : current.lastSeq + 1;
    if (info.firstSeq !== expected) {
      throw this.error(
        ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
        `producer ${info.producerId} epoch ${info.epoch} sent sequence ${info.firstSeq}, expected ${expected} (the last appended was ${current.lastSeq})`,
      );
    }
  }

  private error(code: ErrorCode, detail: string): ConcordatError {
    const { topic, partition } = this.options;
    return new ConcordatError(`topic '${topic}' partition ${partition}: ${detail}`, { code, context: { topic, partition } });
  }
}

function sameSequences(batch: ProducerBatch, info: IdempotentBatchInfo): boolean {
  return batch.firstSeq === info.firstSeq && batch.lastSeq === info.lastSeq;
}

/** The idempotent batches of validated append bytes (empty when no batch has a producer ID). */
function idempotentBatches(bytes: Buffer): IdempotentBatchInfo[] {
  const infos: IdempotentBatchInfo[] = [];
  let pos = 0;
  while (pos < bytes.length) {
    const producerId = readInt64(bytes, pos + PRODUCER_ID_OFFSET);
    if (producerId >= 0) infos.push(batchInfo(bytes, pos, producerId));
    pos += LOG_OVERHEAD + bytes.readInt32BE(pos + BATCH_LENGTH_OFFSET);
  }
  return infos;
}

function batchInfo(buf: Buffer, at: number, producerId: number): IdempotentBatchInfo {
  const epoch = buf.readInt16BE(at + PRODUCER_EPOCH_OFFSET);
  const firstSeq = buf.readInt32BE(at + BASE_SEQUENCE_OFFSET);
  const delta = buf.readInt32BE(at + LAST_OFFSET_DELTA_OFFSET);
  if (epoch < 0 || firstSeq < 0) {
    throw new ConcordatError(`batch of producer ${producerId} has epoch ${epoch} and base sequence ${firstSeq}; an idempotent batch needs both ≥ 0`, {
      code: ErrorCode.INVALID_RECORD,
    });
  }
  // Kafka's DefaultRecordBatch.incrementSequence: wrap from 2^31-1 to 0.
  const lastSeq = firstSeq > INT32_MAX - delta ? delta - (INT32_MAX - firstSeq) - 1 : firstSeq + delta;
  return { producerId, epoch, firstSeq, lastSeq, count: delta + 1, maxTimestamp: readInt64(buf, at + MAX_TIMESTAMP_OFFSET) };
}

/** Bytes of the first batch of `bytes`. */
function batchBytesOf(bytes: Buffer): number {
  return LOG_OVERHEAD + bytes.readInt32BE(BATCH_LENGTH_OFFSET);
}
