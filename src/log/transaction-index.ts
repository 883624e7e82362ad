import { ConcordatError, ErrorCode } from '../errors.js';
import {
  ATTRIBUTES_OFFSET,
  BATCH_LENGTH_OFFSET,
  encodeRecordBatch,
  LOG_OVERHEAD,
  PRODUCER_EPOCH_OFFSET,
  PRODUCER_ID_OFFSET,
  RECORDS_OFFSET,
  readInt64,
} from './record-batch.js';
import { cursor, readVarint, readVarlong } from './varint.js';

/** Type of a control record (the key's second INT16): Kafka's ControlRecordType. */
export const ControlRecordType = { ABORT: 0, COMMIT: 1 } as const;
/** One of the {@link ControlRecordType} values. */
export type ControlRecordType = (typeof ControlRecordType)[keyof typeof ControlRecordType];

/** A transaction marker the coordinator writes. */
export interface TransactionMarker {
  producerId: number;
  producerEpoch: number;
  type: ControlRecordType;
  coordinatorEpoch: number;
}

/** What a read_committed Fetch tells the client to drop: the producer's batches from `firstOffset` until its ABORT marker. */
export interface AbortedTransaction {
  producerId: number;
  firstOffset: number;
}

/** Snapshot body part: `ongoing: [[producerId, firstOffset]]`, `aborted: [[producerId, firstOffset, lastOffset]]`, `fences: [[producerId, epoch]]`. */
export interface TransactionsSnapshot {
  ongoing: [number, number][];
  aborted: [number, number, number][];
  fences: [number, number][];
}

const TRANSACTIONAL_BIT = 0x10;
const CONTROL_BIT = 0x20;

/**
 * Kafka transactions (KIP-98) as one partition sees them: which producers
 * have a transaction open here, which transactions were aborted, and the
 * last stable offset (LSO) that follows from them. Kafka keeps the open
 * ones in its `ProducerStateManager` and the aborted ones in per-segment
 * `.txnindex` files; here both live in this class, rebuilt on open from the
 * producer snapshot (producer-snapshots.ts writes {@link TransactionsSnapshot}
 * into it) plus a replay of the batch headers after it.
 *
 * - A transactional batch (attributes bit 4) of a producer with no open
 *   transaction here opens one at the batch's base offset.
 * - A control batch (bits 4 and 5) holds one control record, the marker the
 *   transaction coordinator writes: key `version INT16, type INT16` (0 ABORT,
 *   1 COMMIT), value `version INT16, coordinator_epoch INT32`. It closes the
 *   producer's open transaction; an ABORT adds `(producerId, firstOffset,
 *   lastOffset = the marker's offset)` to the aborted list.
 * - LSO = min(high watermark, first offset of every open transaction). A
 *   read_committed Fetch returns batches below it only, and the aborted
 *   transactions that overlap what it returns, which the client drops.
 * - A marker's producer epoch fences older epochs of its producer: a batch
 *   with a lower epoch is refused with INVALID_PRODUCER_EPOCH from the moment
 *   the marker is accepted (before it is durable: the coordinator bumps an
 *   epoch only forwards, so a fence that outlives a failed marker append
 *   fences nothing that should pass).
 *
 * Open transactions and aborted entries are taken from acknowledged appends
 * only ({@link acknowledge}), so they agree with the high watermark.
 *
 * Bounds: one entry per producer with an open transaction (bounded by the
 * coordinator's transactional IDs); aborted entries are dropped once the
 * log start passes their marker (retention), as Kafka drops `.txnindex`
 * files with their segments; a fence goes when the partition forgets its
 * producer (producerIdExpirationMs, producersPerPartitionMax).
 *
 * Not safe for concurrent use from several partitions; the partition calls
 * it from its own synchronous paths only (append check, acknowledge, open).
 */
export class PartitionTransactions {
  /** Producer ID → first offset of its open transaction (acknowledged batches only). */
  private readonly ongoing = new Map<number, number>();
  /** Aborted transactions in marker order, so sorted by lastOffset. */
  private aborted: { producerId: number; firstOffset: number; lastOffset: number }[] = [];
  /** Producer ID → epoch of its latest marker. */
  private readonly fences = new Map<number, number>();
  private changed = false;

  constructor(
    private readonly topic: string,
    private readonly partition: number,
  ) {}

  /** Whether the state changed since the last {@link snapshot}. */
  get hasChanges(): boolean {
    return this.changed;
  }

  /** Whether there is anything to snapshot. */
  get isEmpty(): boolean {
    return this.ongoing.size === 0 && this.aborted.length === 0 && this.fences.size === 0;
  }

  /** The last stable offset for a partition whose high watermark is `highWatermark`. */
  lastStableOffset(highWatermark: number): number {
    let lso = highWatermark;
    for (const firstOffset of this.ongoing.values()) if (firstOffset < lso) lso = firstOffset;
    return lso;
  }

  /**
   * Refuses batches of a producer whose epoch a marker has fenced.
   * @throws ConcordatError INVALID_PRODUCER_EPOCH
   */
  checkFence(bytes: Buffer): void {
    if (this.fences.size === 0) return;
    for (let pos = 0; pos + LOG_OVERHEAD <= bytes.length; pos += LOG_OVERHEAD + bytes.readInt32BE(pos + BATCH_LENGTH_OFFSET)) {
      const producerId = readInt64(bytes, pos + PRODUCER_ID_OFFSET);
      const fence = this.fences.get(producerId);
      const epoch = bytes.readInt16BE(pos + PRODUCER_EPOCH_OFFSET);
      if (fence !== undefined && epoch < fence) {
        throw new ConcordatError(
          `topic '${this.topic}' partition ${this.partition}: producer ${producerId} sent epoch ${epoch}, but its transaction coordinator ` +
            `moved it to epoch ${fence}; a newer producer with the same transactional ID fenced this one (or its transaction timed out)`,
          { code: ErrorCode.INVALID_PRODUCER_EPOCH, context: { topic: this.topic, partition: this.partition, producerId } },
        );
      }
    }
  }

  /** A marker was accepted for appending: from now on its epoch fences older ones. */
  fence(producerId: number, epoch: number): void {
    if ((this.fences.get(producerId) ?? -1) >= epoch) return;
    this.fences.set(producerId, epoch);
    this.changed = true;
  }

  /** Takes the transactional and control batches of acknowledged append bytes (offsets assigned). */
  acknowledge(bytes: Buffer): void {
    for (let pos = 0; pos + LOG_OVERHEAD <= bytes.length; pos += LOG_OVERHEAD + bytes.readInt32BE(pos + BATCH_LENGTH_OFFSET)) {
      this.replay(bytes, pos);
    }
  }

  /** Takes one batch read back from the log (header, and the control record of a control batch). */
  replay(buf: Buffer, at: number): void {
    const attributes = buf.readInt16BE(at + ATTRIBUTES_OFFSET);
    if ((attributes & TRANSACTIONAL_BIT) === 0) return;
    const producerId = readInt64(buf, at + PRODUCER_ID_OFFSET);
    const baseOffset = readInt64(buf, at);
    if ((attributes & CONTROL_BIT) === 0) {
      if (!this.ongoing.has(producerId)) {
        this.ongoing.set(producerId, baseOffset);
        this.changed = true;
      }
      return;
    }
    const type = controlRecordType(buf, at);
    this.fence(producerId, buf.readInt16BE(at + PRODUCER_EPOCH_OFFSET));
    const firstOffset = this.ongoing.get(producerId);
    if (firstOffset === undefined) return;
    this.ongoing.delete(producerId);
    if (type === ControlRecordType.ABORT) this.aborted.push({ producerId, firstOffset, lastOffset: baseOffset });
    this.changed = true;
  }

  /**
   * The aborted transactions a read_committed reader of offsets
   * [fromOffset, toOffset] must know about: those with data in that range
   * (first offset ≤ toOffset, marker ≥ fromOffset), by first offset.
   */
  abortedBetween(fromOffset: number, toOffset: number): AbortedTransaction[] {
    let low = 0;
    let high = this.aborted.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (this.aborted[mid]!.lastOffset < fromOffset) low = mid + 1;
      else high = mid;
    }
    const found: AbortedTransaction[] = [];
    for (let i = low; i < this.aborted.length; i++) {
      const entry = this.aborted[i]!;
      if (entry.firstOffset <= toOffset) found.push({ producerId: entry.producerId, firstOffset: entry.firstOffset });
    }
    return found.sort((a, b) => a.firstOffset - b.firstOffset);
  }

  /**
   * Forgets the fences of producers with no open transaction that `keep`
   * rejects (the partition forgot them as idempotent producers: expired),
   * so the fences stay bounded by the producers the partition remembers.
   */
  forgetFences(keep: (producerId: number) => boolean): void {
    for (const producerId of this.fences.keys()) {
      if (this.ongoing.has(producerId) || keep(producerId)) continue;
      this.fences.delete(producerId);
      this.changed = true;
    }
  }

  /** Drops aborted entries whose marker lies below `logStartOffset` (retention deleted them). */
  removeBefore(logStartOffset: number): void {
    const kept = this.aborted.filter((entry) => entry.lastOffset >= logStartOffset);
    if (kept.length === this.aborted.length) return;
    this.aborted = kept;
    this.changed = true;
  }

  /** The state to store in the partition's producer snapshot; clears {@link hasChanges}. */
  snapshot(): TransactionsSnapshot {
    this.changed = false;
    return {
      ongoing: [...this.ongoing],
      aborted: this.aborted.map((entry) => [entry.producerId, entry.firstOffset, entry.lastOffset]),
      fences: [...this.fences],
    };
  }

  /** Replaces the state with a snapshot's (none: empty). @throws Error when the body is malformed */
  restore(snapshot: TransactionsSnapshot | undefined): void {
    this.ongoing.clear();
    this.fences.clear();
    this.aborted = [];
    if (snapshot !== undefined) {
      if (!Array.isArray(snapshot.ongoing) || !Array.isArray(snapshot.aborted) || !Array.isArray(snapshot.fences)) throw new Error('malformed transactions');
      for (const [producerId, firstOffset] of snapshot.ongoing) this.ongoing.set(producerId, firstOffset);
      for (const [producerId, epoch] of snapshot.fences) this.fences.set(producerId, epoch);
      this.aborted = snapshot.aborted.map(([producerId, firstOffset, lastOffset]) => ({ producerId, firstOffset, lastOffset }));
    }
    this.changed = false;
  }
}

/** Whether the batch at `at` is a control batch. */
export function isControlBatch(buf: Buffer, at: number): boolean {
  return (buf.readInt16BE(at + ATTRIBUTES_OFFSET) & CONTROL_BIT) !== 0;
}

/** Whether any batch of `bytes` is transactional (data or control). */
export function hasTransactionalBatch(bytes: Buffer): boolean {
  for (let pos = 0; pos + LOG_OVERHEAD <= bytes.length; pos += LOG_OVERHEAD + bytes.readInt32BE(pos + BATCH_LENGTH_OFFSET)) {
    if ((bytes.readInt16BE(pos + ATTRIBUTES_OFFSET) & TRANSACTIONAL_BIT) !== 0) return true;
  }
  return false;
}

/**
 * The control batch of a marker (Kafka's `EndTransactionMarker`): one
 * record, key `version 0, type`, value `version 0, coordinator_epoch`,
 * base sequence -1, transactional and control bits set.
 */
export function encodeMarkerBatch(marker: TransactionMarker, timestampMs: number): Buffer {
  const key = Buffer.alloc(4);
  key.writeInt16BE(0, 0);
  key.writeInt16BE(marker.type, 2);
  const value = Buffer.alloc(6);
  value.writeInt16BE(0, 0);
  value.writeInt32BE(marker.coordinatorEpoch, 2);
  return encodeRecordBatch([{ key, value, timestampMs }], {
    producerId: marker.producerId,
    producerEpoch: marker.producerEpoch,
    baseSequence: -1,
    transactional: true,
    control: true,
    timestampMs,
  });
}

/** The type of the control record in the (uncompressed) control batch at `at`. */
function controlRecordType(buf: Buffer, at: number): ControlRecordType {
  // Record: length varint, attributes INT8, timestampDelta varlong, offsetDelta varint, keyLength varint, key.
  const c = cursor(buf, at + RECORDS_OFFSET, at + LOG_OVERHEAD + buf.readInt32BE(at + BATCH_LENGTH_OFFSET));
  readVarint(c); // length
  c.pos += 1; // attributes
  readVarlong(c); // timestampDelta
  readVarint(c); // offsetDelta
  const keyLength = readVarint(c);
  if (keyLength < 4) throw new Error(`control record key of ${keyLength} bytes`);
  const type = buf.readInt16BE(c.pos + 2);
  return type === ControlRecordType.COMMIT ? ControlRecordType.COMMIT : ControlRecordType.ABORT;
}
