import { join } from 'node:path';
import { ConcordatError, ErrorCode } from '../../errors.js';
import { readCheckpoint, writeCheckpoint } from '../checkpoint-file.js';

/** Name of the transaction coordinator's state file in the data directory (a checkpoint file). */
export const TRANSACTIONS_FILE = 'transactions';
/** Kafka's TransactionState names (coordinator.ts). */
const STATES = new Set(['Empty', 'Ongoing', 'PrepareCommit', 'PrepareAbort', 'CompleteCommit', 'CompleteAbort']);
const KIND = 'transactions';

/** One transactional ID's state as the file stores it (partitions as `[topic, partition]`, pending offsets as `[group, topic, partition, offset, leaderEpoch, metadata]`). */
export interface StoredTransaction {
  transactionalId: string;
  producerId: number;
  producerEpoch: number;
  timeoutMs: number;
  state: string;
  partitions: [string, number][];
  groups: string[];
  pendingOffsets: [string, string, number, number, number, string][];
  startedMs: number;
  updatedMs: number;
}

/**
 * The transaction coordinator's durable state: one checkpoint file
 * `<dataDir>/transactions` (checkpoint-file.ts: written to a temp file,
 * fdatasynced, renamed, directory fsynced; a header with length and
 * CRC-32C), holding every transactional ID's metadata:
 * ```
 * { "transactions": [ { transactionalId, producerId, producerEpoch, timeoutMs, state,
 *     partitions: [[topic, partition], ...], groups: [groupId, ...],
 *     pendingOffsets: [[groupId, topic, partition, offset, leaderEpoch, metadata], ...],
 *     startedMs, updatedMs }, ... ] }
 * ```
 * Kafka keeps the same records in its `__transaction_state` topic; one
 * small file rewritten whole per state change is enough for one broker
 * (the file has one entry per transactional ID, bounded by
 * `transactions.transactionalIdsMax`). After a crash the file holds the last
 * state whose write completed: a transaction is never answered as
 * prepared or completed before that state is on disk.
 *
 * Writes are coalesced: {@link persist} resolves once a write that started
 * after the call completed, so concurrent state changes share one write.
 */
export class TransactionStateStore {
  private requested = 0;
  private written = 0;
  private writing: Promise<void> | null = null;

  private constructor(
    readonly path: string,
    private readonly body: () => StoredTransaction[],
  ) {}

  /**
   * Reads the stored state of `dataDir` and returns it with a store that
   * writes what `body` returns.
   * @throws ConcordatError STORAGE_CORRUPT (the file is damaged or malformed)
   */
  static async open(dataDir: string, body: () => StoredTransaction[]): Promise<{ store: TransactionStateStore; stored: StoredTransaction[] }> {
    const path = join(dataDir, TRANSACTIONS_FILE);
    const content = (await readCheckpoint(path, KIND)) as { transactions?: unknown } | null;
    const stored = content === null ? [] : content.transactions;
    if (!Array.isArray(stored) || !stored.every(isStoredTransaction)) {
      throw new ConcordatError(`checkpoint ${path} is corrupt: transactions is not a list of transaction records`, { code: ErrorCode.STORAGE_CORRUPT });
    }
    return { store: new TransactionStateStore(path, body), stored };
  }

  /**
   * Makes the current state durable: resolves once a write that began after
   * this call completed. @throws ConcordatError KAFKA_STORAGE_ERROR (disk full), or the file error
   */
  async persist(): Promise<void> {
    const target = ++this.requested;
    while (this.written < target) {
      if (this.writing !== null) {
        await this.writing.catch(() => {});
        continue;
      }
      const version = this.requested;
      this.writing = writeCheckpoint(this.path, KIND, { transactions: this.body() })
        .then(() => {
          this.written = Math.max(this.written, version);
        })
        .finally(() => {
          this.writing = null;
        });
      await this.writing;
    }
  }

  /** Waits for a write in progress. */
  async idle(): Promise<void> {
    await this.writing?.catch(() => {});
  }
}

function isStoredTransaction(value: unknown): value is StoredTransaction {
  const t = value as StoredTransaction;
  return (
    typeof t === 'object' &&
    t !== null &&
    typeof t.transactionalId === 'string' &&
    Number.isSafeInteger(t.producerId) &&
    Number.isInteger(t.producerEpoch) &&
    Number.isInteger(t.timeoutMs) &&
    STATES.has(t.state) &&
    Array.isArray(t.partitions) &&
    Array.isArray(t.groups) &&
    Array.isArray(t.pendingOffsets) &&
    Number.isFinite(t.startedMs) &&
    Number.isFinite(t.updatedMs)
  );
}
