/*
 * The producer-state snapshots of one partition: taking, writing, pruning,
 * loading and replaying them. The snapshot half of Kafka's
 * ProducerStateManager (takeSnapshot, truncateAndReload, removeStraySnapshots)
 * with UnifiedLog.rebuildProducerState; the in-memory half is producer-state.ts
 * (sequences) and transaction-index.ts (transactions), which this file saves
 * and restores but does not change otherwise.
 */
import { join } from 'node:path';
import { readCheckpoint, writeCheckpoint } from './checkpoint-file.js';
import { logFs } from './file-system.js';
import type { ProducerSnapshot, ProducerStateManager } from './producer-state.js';
import { BATCH_LENGTH_OFFSET, LAST_OFFSET_DELTA_OFFSET, LOG_OVERHEAD, readInt64 } from './record-batch.js';
import type { RecoveryPoint } from './recovery-point.js';
import type { SegmentEvent } from './segment.js';
import type { PartitionTransactions, TransactionsSnapshot } from './transaction-index.js';

/** Bytes per read when replaying producer state. */
const REPLAY_READ_BYTES = 1024 * 1024;
/** The checkpoint-file kind of a snapshot (checkpoint-file.ts). */
const SNAPSHOT_KIND = 'producer-state';

/** Where a partition's producer state stands as of a recovery point (the two fields of {@link RecoveryPoint} it sets). */
export interface ProducerStateAt {
  /** Offset the state is as of (at most the recovery point's `nextOffset`): the snapshot's, or, without one, the point's. */
  producerStateOffset: number;
  /** True: in `<producerStateOffset>.snapshot`; false: the state was empty as of that offset. */
  producerSnapshot: boolean;
}

/** What the snapshots need from their partition. */
export interface ProducerSnapshotsEnv {
  /** The partition directory, where the `.snapshot` files live. */
  dir: string;
  /** Told when a snapshot is unusable and the state is rebuilt from the whole log. */
  report(event: SegmentEvent): void;
}

/**
 * Reads whole batches from `offset` (at least one when there is one, about
 * `maxBytes`), up to the high watermark; empty past it. The partition's own read.
 */
export type ReplayRead = (offset: number, maxBytes: number) => Promise<Buffer>;

/**
 * The `.snapshot` files of one partition (KIP-98's producer state across
 * restarts; Kafka's `<offset>.snapshot` files of ProducerStateManager).
 *
 * File `<partition dir>/<20-digit offset>.snapshot`, a checkpoint file
 * (checkpoint-file.ts: replaced atomically, length and CRC-32C in its
 * header, synced), kind `producer-state`, body a {@link ProducerSnapshot}:
 * every idempotent producer's state (producer-state.ts) and the partition's
 * transactions (transaction-index.ts) as of `offset`, the high watermark
 * when taken. The partition takes one at each recovery checkpoint in which
 * the state changed, and on close ({@link take}, {@link write}; else
 * {@link kept}); the recovery point names the one it relies on
 * (recovery-point.ts). The newest
 * two are kept, and the one the recorded recovery point names if older, so
 * the file the recovery-point file names exists whether or not the new
 * point reached the disk.
 *
 * On open ({@link load}) the state is restored from the snapshot the
 * recovery point names and the batch headers after it are replayed up to
 * the log end; every other snapshot file is removed. An unusable snapshot
 * (missing, damaged, holding another offset, malformed) is reported and the
 * state is rebuilt from the whole log, from the log start offset.
 *
 * Concurrency: {@link write} runs from the partition's checkpoint, one at a
 * time; {@link load} runs once, while the partition opens, before any
 * append. The other methods are synchronous.
 */
export class ProducerSnapshots {
  /** Offsets of the snapshots on disk, oldest first. */
  private offsets: number[] = [];

  constructor(
    private readonly env: ProducerSnapshotsEnv,
    private readonly producers: ProducerStateManager,
    private readonly transactions: PartitionTransactions,
  ) {}

  /**
   * The producer state to snapshot as of `offset` (the high watermark), taken
   * now, synchronously, so that it matches what readers see: null when
   * there is nothing to write, either because nothing changed since the
   * snapshot `previous` names, or because there is no state at all.
   */
  take(offset: number, previous: RecoveryPoint | null): ProducerSnapshot | null {
    const due = this.producers.hasChanges || this.transactions.hasChanges || previous === null || !previous.producerSnapshot;
    if (!due) return null;
    if (this.producers.producerCount === 0 && !this.producers.hasChanges && this.transactions.isEmpty && !this.transactions.hasChanges) return null;
    const snapshot = this.producers.snapshot(offset);
    if (!this.transactions.isEmpty || this.transactions.hasChanges) snapshot.transactions = this.transactions.snapshot();
    return snapshot;
  }

  /**
   * Where the producer state stands when a checkpoint writes no snapshot: the
   * snapshot `previous` names, or, when it names none, empty as of `offset`.
   */
  kept(previous: RecoveryPoint | null, offset: number): ProducerStateAt {
    if (previous !== null && previous.producerSnapshot) return { producerStateOffset: previous.producerStateOffset, producerSnapshot: true };
    // No producer state: empty as of the point.
    return { producerStateOffset: offset, producerSnapshot: false };
  }

  /**
   * Writes `<offset>.snapshot` (durably: checkpoint-file.ts syncs it) and
   * removes all but the two newest and the one `recorded()` names (read
   * after the write). A snapshot that turned out empty is not written.
   * @returns where the producer state stands for the new recovery point
   * @throws the file error of the write (ConcordatError KAFKA_STORAGE_ERROR when the disk is full); nothing is removed then
   */
  async write(snapshot: ProducerSnapshot, recorded: () => RecoveryPoint | null): Promise<ProducerStateAt> {
    if (snapshot.producers.length === 0 && (snapshot.transactions === undefined || isEmptyTransactions(snapshot.transactions))) {
      return { producerStateOffset: snapshot.offset, producerSnapshot: false };
    }
    await writeCheckpoint(join(this.env.dir, snapshotFileName(snapshot.offset)), SNAPSHOT_KIND, snapshot);
    this.offsets = [...this.offsets.filter((offset) => offset !== snapshot.offset), snapshot.offset];
    // Keep the new one, the one before it, and the one the recovery-point file may still name.
    const point = recorded();
    const named = point?.producerSnapshot === true ? point.producerStateOffset : -1;
    const keep = new Set([...this.offsets.slice(-2), named]);
    for (const old of this.offsets.filter((offset) => !keep.has(offset))) {
      await logFs()
        .unlink(join(this.env.dir, snapshotFileName(old)))
        .catch(() => {});
    }
    this.offsets = this.offsets.filter((offset) => keep.has(offset));
    return { producerStateOffset: snapshot.offset, producerSnapshot: true };
  }

  /**
   * Restores the producer state and the transactions from the snapshot the
   * recovery point `point` names, removes every other `.snapshot` file
   * among `files` (the directory listing taken at open), then replays the
   * batch headers from the snapshot's offset (at least `logStartOffset`) to
   * `logEndOffset`. Without a point the whole log is replayed. An unusable
   * snapshot is reported and the whole log replayed.
   * @throws the errors of `read` (the partition is then closed by its caller)
   */
  async load(files: readonly string[], point: RecoveryPoint | null, logStartOffset: number, logEndOffset: number, read: ReplayRead): Promise<void> {
    let from = logStartOffset;
    if (point !== null) {
      from = point.producerStateOffset;
      if (point.producerSnapshot) from = await this.restore(point.producerStateOffset, logStartOffset);
    }
    const kept = point?.producerSnapshot === true ? point.producerStateOffset : -1;
    for (const name of files) {
      const match = /^(\d{20})\.snapshot$/.exec(name);
      if (match === null) continue;
      if (Number(match[1]) === kept && from === kept) this.offsets.push(kept);
      else
        await logFs()
          .unlink(join(this.env.dir, name))
          .catch(() => {});
    }
    await this.replay(Math.max(from, logStartOffset), logEndOffset, read);
  }

  /** Loads a snapshot; returns the offset to replay from (`logStartOffset` when the snapshot is unusable). */
  private async restore(offset: number, logStartOffset: number): Promise<number> {
    const path = join(this.env.dir, snapshotFileName(offset));
    try {
      const body = (await readCheckpoint(path, SNAPSHOT_KIND)) as ProducerSnapshot | null;
      if (body === null) throw new Error('the file is missing');
      if (body.offset !== offset || !Array.isArray(body.producers)) throw new Error(`it holds offset ${body.offset}`);
      this.producers.restore(body);
      this.transactions.restore(body.transactions);
      return offset;
    } catch (error) {
      this.env.report({
        file: path,
        action: 'index-rebuilt',
        detail: `the producer snapshot is unusable (${error instanceof Error ? error.message : String(error)}); producer state rebuilt from the whole log`,
      });
      this.producers.restore({ offset: logStartOffset, producers: [] });
      this.transactions.restore(undefined);
      return logStartOffset;
    }
  }

  /** Rebuilds producer state and transactions from the batch headers in [from, logEndOffset). */
  private async replay(from: number, logEndOffset: number, read: ReplayRead): Promise<void> {
    let offset = from;
    while (offset < logEndOffset) {
      const records = await read(offset, REPLAY_READ_BYTES);
      if (records.length === 0) break;
      let pos = 0;
      while (pos + LOG_OVERHEAD <= records.length) {
        const base = readInt64(records, pos);
        if (base >= offset) {
          this.producers.replay(records, pos);
          this.transactions.replay(records, pos);
        }
        offset = Math.max(offset, base + records.readInt32BE(pos + LAST_OFFSET_DELTA_OFFSET) + 1);
        pos += LOG_OVERHEAD + records.readInt32BE(pos + BATCH_LENGTH_OFFSET);
      }
    }
  }
}

function snapshotFileName(offset: number): string {
  return `${String(offset).padStart(20, '0')}.snapshot`;
}

function isEmptyTransactions(t: TransactionsSnapshot): boolean {
  return t.ongoing.length === 0 && t.aborted.length === 0 && t.fences.length === 0;
}
