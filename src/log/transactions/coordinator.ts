/*
 * Kafka's transaction coordinator (KIP-98) for the log: each transactional ID's state machine, markers, timeouts, and
 * its durable state. One concept, over 400 lines because the state machine's transitions stay together.
 */
import type { CompiledTransactionCoordinatorOptions } from '../../config/index.js';
import { ConcordatError, ErrorCode } from '../../errors.js';
import type { Logger } from '../../observability/index.js';
import { backoffMs, sleep, type Backoff } from '../../util/index.js';
import { ControlRecordType, type TransactionMarker } from '../transaction-index.js';
import { TransactionStateStore, type StoredTransaction } from './state-store.js';

/** Kafka's TransactionState names; see {@link TransactionCoordinator} for the transitions. */
export const TransactionState = {
  EMPTY: 'Empty',
  ONGOING: 'Ongoing',
  PREPARE_COMMIT: 'PrepareCommit',
  PREPARE_ABORT: 'PrepareAbort',
  COMPLETE_COMMIT: 'CompleteCommit',
  COMPLETE_ABORT: 'CompleteAbort',
} as const;
/** One of the {@link TransactionState} values. */
export type TransactionState = (typeof TransactionState)[keyof typeof TransactionState];

/** What the coordinator needs of the log. */
export interface TransactionLogAccess {
  /** Partition count of a topic, or undefined when it does not exist. */
  partitionCount(topic: string): number | undefined;
  /** Appends a marker; resolves once durable. @throws ConcordatError UNKNOWN_TOPIC_OR_PARTITION (deleted), KAFKA_STORAGE_ERROR, LOG_CLOSED */
  appendMarker(topic: string, partition: number, marker: TransactionMarker): Promise<unknown>;
  /** A producer ID never handed out before. */
  allocateProducerId(): Promise<{ producerId: number; producerEpoch: number }>;
  /** Writes a committed transaction's consumer offsets. */
  commitTransactionalOffsets(
    groupId: string,
    offsets: readonly { topic: string; partition: number; offset: number; leaderEpoch: number; metadata: string }[],
  ): Promise<void>;
}

/** Injected faults, for crash tests: runs after the Prepare state is durable and before the first marker. */
export interface TransactionCoordinatorFaults {
  afterPrepare?: (transactionalId: string, state: TransactionState) => Promise<void> | void;
}

/** A topic and partition. */
export interface TopicPartition {
  topic: string;
  partition: number;
}

/** An offset a transactional producer sent with TxnOffsetCommit: committed for its group when the transaction commits, dropped when it aborts. */
export interface PendingOffset extends TopicPartition {
  offset: number;
  leaderEpoch: number;
  metadata: string;
}

/** One transactional ID's state; TransactionDescription is what callers see of it. */
interface TransactionMetadata {
  transactionalId: string;
  producerId: number;
  producerEpoch: number;
  timeoutMs: number;
  state: TransactionState;
  /** `topic\0partition` → partition. */
  partitions: Map<string, TopicPartition>;
  groups: Set<string>;
  /** group → `topic\0partition` → offset. */
  pendingOffsets: Map<string, Map<string, PendingOffset>>;
  /** When the current transaction began (Ongoing), epoch ms. */
  startedMs: number;
  updatedMs: number;
}

/** One transactional ID's state as {@link TransactionCoordinator.describe} and `list` report it; times are epoch ms. */
export interface TransactionDescription {
  transactionalId: string;
  producerId: number;
  producerEpoch: number;
  timeoutMs: number;
  state: TransactionState;
  partitions: TopicPartition[];
  groups: string[];
  startedMs: number;
}

const EPOCH_MAX = 32766;
const COORDINATOR_EPOCH = 0;
/** Backoff between attempts to write a transaction's markers: 50 ms doubling up to 2 s. */
const MARKER_RETRY: Backoff = { firstMs: 50, maxMs: 2000 };

/**
 * Kafka's transaction coordinator (KIP-98) for this single broker: the
 * state of every transactional ID, and the two-phase commit that writes the
 * COMMIT or ABORT markers into the partitions of a transaction.
 *
 * States (Kafka's `TransactionState`):
 * ```
 * Empty ──AddPartitions/AddOffsets──► Ongoing ──EndTxn──► PrepareCommit ──markers, offsets──► CompleteCommit
 *                                       │                 PrepareAbort  ──markers──────────► CompleteAbort
 *                                       └─ timeout / InitProducerId of a newer producer: PrepareAbort with the epoch bumped
 * ```
 * CompleteCommit and CompleteAbort behave as Empty for the next transaction.
 *
 * Durability: every change is in the state file (state-store.ts) before it
 * is answered. The Prepare state is written before the first marker, so a
 * crash between prepare and complete is finished on the next open: the
 * markers are written again (a second marker for a producer with no open
 * transaction in a partition changes nothing there) and, for a commit, the
 * transaction's consumer offsets are committed again (the same values).
 * Ongoing transactions survive a restart as they are, and time out if the
 * producer does not come back.
 *
 * Fencing: InitProducerId for a transactional ID that already has a
 * producer bumps the epoch (a transaction left open is first aborted with
 * its own bump, so its markers fence the old epoch in each partition); any
 * request with an older epoch gets PRODUCER_FENCED (the broker shows old
 * clients INVALID_PRODUCER_EPOCH, as Kafka does). When the epoch would pass
 * 32766 the producer gets a new producer ID at epoch 0.
 *
 * Concurrency: operations on one transactional ID run one at a time (a
 * promise chain per ID); different IDs run concurrently.
 */
export class TransactionCoordinator {
  private readonly transactions = new Map<string, TransactionMetadata>();
  private readonly chains = new Map<string, Promise<unknown>>();
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly closing = new AbortController();

  private constructor(
    private readonly options: CompiledTransactionCoordinatorOptions,
    private readonly transactionLog: TransactionLogAccess,
    private readonly logger: Logger,
    private readonly faults: TransactionCoordinatorFaults,
    private readonly store: TransactionStateStore,
  ) {}

  /**
   * Loads the state file of `dataDir`, finishes the transactions a crash
   * left prepared (markers, then offsets), and starts the timeout timer.
   * @throws ConcordatError STORAGE_CORRUPT (a damaged state file), or a marker's storage error
   */
  static async open(
    dataDir: string,
    options: CompiledTransactionCoordinatorOptions,
    transactionLog: TransactionLogAccess,
    logger: Logger,
    faults: TransactionCoordinatorFaults = {},
  ): Promise<TransactionCoordinator> {
    const holder: { coordinator?: TransactionCoordinator } = {};
    const { store, stored } = await TransactionStateStore.open(dataDir, () => [...holder.coordinator!.transactions.values()].map(toStored));
    const coordinator = new TransactionCoordinator(options, transactionLog, logger, faults, store);
    holder.coordinator = coordinator;
    for (const record of stored) coordinator.transactions.set(record.transactionalId, fromStored(record));
    const prepared = [...coordinator.transactions.values()].filter(
      (t) => t.state === TransactionState.PREPARE_COMMIT || t.state === TransactionState.PREPARE_ABORT,
    );
    for (const txn of prepared) {
      logger.info(
        { transactionalId: txn.transactionalId, producerId: txn.producerId, state: txn.state },
        'completing a transaction prepared before the restart',
      );
      await coordinator.writeMarkersAndComplete(txn);
    }
    coordinator.startTimer();
    return coordinator;
  }

  /** Transactional IDs known. */
  get size(): number {
    return this.transactions.size;
  }

  /** The state of one transactional ID, or undefined when the coordinator does not know it. */
  describe(transactionalId: string): TransactionDescription | undefined {
    const t = this.transactions.get(transactionalId);
    if (t === undefined) return undefined;
    return {
      transactionalId: t.transactionalId,
      producerId: t.producerId,
      producerEpoch: t.producerEpoch,
      timeoutMs: t.timeoutMs,
      state: t.state,
      partitions: [...t.partitions.values()],
      groups: [...t.groups],
      startedMs: t.startedMs,
    };
  }

  /**
   * The partitions of `groupId` whose offsets an open transaction has
   * committed (TxnOffsetCommit) but not yet completed: KIP-447's unstable
   * offsets, which OffsetFetch with require_stable answers with
   * UNSTABLE_OFFSET_COMMIT. Keys are `topic\0partition`. Scans every
   * transactional ID (at most transactionalIdsMax).
   */
  pendingOffsetPartitions(groupId: string): Set<string> {
    const keys = new Set<string>();
    for (const t of this.transactions.values()) {
      for (const key of t.pendingOffsets.get(groupId)?.keys() ?? []) keys.add(key);
    }
    return keys;
  }

  /** The state of every transactional ID the coordinator knows. */
  list(): TransactionDescription[] {
    return [...this.transactions.keys()].map((id) => this.describe(id)!);
  }

  // ------------------------------------------------------------------ InitProducerId

  /**
   * Kafka's InitProducerId with a transactional ID: the producer ID and a
   * bumped epoch (a new ID at epoch 0 the first time). A transaction left
   * open by an older producer is aborted first; one being completed is
   * waited for.
   * `current` (KIP-360, InitProducerId v3+): the producer's own ID and
   * epoch; the ID must have exactly that producer ID and epoch, else
   * PRODUCER_FENCED (a zombie must not fence the live producer). null: any
   * producer may (re)initialise the ID.
   * @throws ConcordatError INVALID_TRANSACTION_TIMEOUT, LIMIT_EXCEEDED (transactionalIdsMax),
   *   PRODUCER_FENCED, COORDINATOR_NOT_AVAILABLE (closed), KAFKA_STORAGE_ERROR
   */
  initProducerId(
    transactionalId: string,
    timeoutMs: number,
    current: { producerId: number; producerEpoch: number } | null = null,
  ): Promise<{ producerId: number; producerEpoch: number }> {
    this.checkOpen();
    if (!Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > this.options.transactionMaxTimeoutMs) {
      throw txnError(
        ErrorCode.INVALID_TRANSACTION_TIMEOUT,
        `transaction timeout ${timeoutMs} ms of '${transactionalId}' is outside 1..${this.options.transactionMaxTimeoutMs} ms; ` +
          "lower the producer's transaction.timeout.ms or raise the broker's transactions.transactionMaxTimeoutMs",
      );
    }
    return this.serialized(transactionalId, async () => {
      let txn = this.transactions.get(transactionalId);
      if (txn === undefined) {
        if (this.transactions.size >= this.options.transactionalIdsMax) {
          throw new ConcordatError(
            `the transaction coordinator already has ${this.transactions.size} transactional IDs (transactionalIdsMax); ` +
              'reuse transactional IDs or raise the log option transactions.transactionalIdsMax',
            { code: ErrorCode.LIMIT_EXCEEDED, context: { limit: 'transactions.transactionalIdsMax' } },
          );
        }
        const { producerId } = await this.transactionLog.allocateProducerId();
        txn = newTransaction(transactionalId, producerId, timeoutMs);
        this.transactions.set(transactionalId, txn);
        await this.persistOrForget(txn);
        this.logger.info({ transactionalId, producerId }, 'new transactional producer');
        return { producerId, producerEpoch: 0 };
      }
      if (current !== null && (current.producerId !== txn.producerId || current.producerEpoch !== txn.producerEpoch)) {
        throw txnError(
          ErrorCode.PRODUCER_FENCED,
          `producer ${current.producerId} epoch ${current.producerEpoch} of '${transactionalId}' is not the current one ` +
            `(${txn.producerId} epoch ${txn.producerEpoch}): it was fenced; start a new producer`,
        );
      }
      if (txn.state === TransactionState.PREPARE_COMMIT || txn.state === TransactionState.PREPARE_ABORT) await this.writeMarkersAndComplete(txn);
      if (txn.state === TransactionState.ONGOING) await this.prepareAndComplete(txn, false, true, 'a newer producer with the same transactional ID started');
      if (txn.producerEpoch >= EPOCH_MAX) {
        txn.producerId = (await this.transactionLog.allocateProducerId()).producerId;
        txn.producerEpoch = 0;
      } else {
        txn.producerEpoch += 1;
      }
      txn.timeoutMs = timeoutMs;
      txn.state = TransactionState.EMPTY;
      txn.updatedMs = Date.now();
      await this.store.persist();
      this.logger.info(
        { transactionalId, producerId: txn.producerId, producerEpoch: txn.producerEpoch },
        'transactional producer (re)initialised; older epochs fenced',
      );
      return { producerId: txn.producerId, producerEpoch: txn.producerEpoch };
    });
  }

  // ------------------------------------------------------------------ AddPartitionsToTxn, AddOffsetsToTxn

  /**
   * Kafka's AddPartitionsToTxn: the partitions join the producer's
   * transaction (which begins if none is open). If any partition does not
   * exist, none is added: that one gets UNKNOWN_TOPIC_OR_PARTITION, the
   * others OPERATION_NOT_ATTEMPTED.
   * @throws ConcordatError (whole request) INVALID_PRODUCER_ID_MAPPING, PRODUCER_FENCED,
   *   CONCURRENT_TRANSACTIONS, COORDINATOR_NOT_AVAILABLE, KAFKA_STORAGE_ERROR
   */
  addPartitions(
    transactionalId: string,
    producerId: number,
    producerEpoch: number,
    partitions: readonly TopicPartition[],
  ): Promise<{ topic: string; partition: number; errorCode: ErrorCode | null }[]> {
    return this.inProducerTransaction({ transactionalId, producerId, producerEpoch }, async (txn) => {
      const unknown = partitions.filter((p) => !this.partitionExists(p.topic, p.partition));
      if (unknown.length > 0) {
        return partitions.map((p) => ({
          ...p,
          errorCode: unknown.includes(p) ? ErrorCode.UNKNOWN_TOPIC_OR_PARTITION : ErrorCode.OPERATION_NOT_ATTEMPTED,
        }));
      }
      const added = partitions.filter((p) => !txn.partitions.has(partitionKey(p)));
      if (added.length > 0 || txn.state !== TransactionState.ONGOING) {
        this.begin(txn);
        for (const p of added) txn.partitions.set(partitionKey(p), { topic: p.topic, partition: p.partition });
        txn.updatedMs = Date.now();
        await this.store.persist();
      }
      return partitions.map((p) => ({ ...p, errorCode: null }));
    });
  }

  /**
   * Kafka's AddOffsetsToTxn: the group's offsets may be committed in the
   * producer's transaction (TxnOffsetCommit), visible when it commits.
   * @throws ConcordatError INVALID_PRODUCER_ID_MAPPING, PRODUCER_FENCED, CONCURRENT_TRANSACTIONS,
   *   COORDINATOR_NOT_AVAILABLE, KAFKA_STORAGE_ERROR
   */
  addOffsets(transactionalId: string, producerId: number, producerEpoch: number, groupId: string): Promise<void> {
    return this.inProducerTransaction({ transactionalId, producerId, producerEpoch }, async (txn) => {
      if (txn.groups.has(groupId) && txn.state === TransactionState.ONGOING) return;
      this.begin(txn);
      txn.groups.add(groupId);
      txn.updatedMs = Date.now();
      await this.store.persist();
    });
  }

  /**
   * Kafka's TxnOffsetCommit: consumer offsets held in the transaction until
   * it commits (dropped if it aborts). The group must have been added with
   * AddOffsetsToTxn. Per partition: UNKNOWN_TOPIC_OR_PARTITION.
   * @throws ConcordatError INVALID_PRODUCER_ID_MAPPING, PRODUCER_FENCED, INVALID_TXN_STATE,
   *   CONCURRENT_TRANSACTIONS, COORDINATOR_NOT_AVAILABLE, KAFKA_STORAGE_ERROR
   */
  commitOffsets(
    transactionalId: string,
    producerId: number,
    producerEpoch: number,
    groupId: string,
    offsets: readonly PendingOffset[],
  ): Promise<{ topic: string; partition: number; errorCode: ErrorCode | null }[]> {
    return this.inProducerTransaction({ transactionalId, producerId, producerEpoch }, async (txn) => {
      if (txn.state !== TransactionState.ONGOING || !txn.groups.has(groupId)) {
        throw txnError(
          ErrorCode.INVALID_TXN_STATE,
          `transactional ID '${transactionalId}' commits offsets of group '${groupId}' outside a transaction that added the group (AddOffsetsToTxn first)`,
        );
      }
      const pending = txn.pendingOffsets.get(groupId) ?? new Map<string, PendingOffset>();
      const results = offsets.map((o) => {
        if (!this.partitionExists(o.topic, o.partition)) return { topic: o.topic, partition: o.partition, errorCode: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION };
        if (!Number.isSafeInteger(o.offset)) throw new RangeError(`committed offset ${o.offset} is not a safe integer`);
        pending.set(partitionKey(o), { ...o });
        return { topic: o.topic, partition: o.partition, errorCode: null };
      });
      txn.pendingOffsets.set(groupId, pending);
      txn.updatedMs = Date.now();
      await this.store.persist();
      return results;
    });
  }

  /**
   * Checks, synchronously (so that the append that follows at once is
   * ordered before any marker appended later), that a transactional batch
   * for `topic`-`partition` belongs to the producer's ongoing transaction
   * with that partition added. Without this a batch to a partition never
   * added would open a transaction there that no marker closes, and hold
   * the partition's last stable offset for good (Kafka's "hanging
   * transactions", which KIP-890 closes the same way).
   * @throws ConcordatError INVALID_PRODUCER_ID_MAPPING, PRODUCER_FENCED, INVALID_TXN_STATE
   */
  checkProduce(transactionalId: string, producerId: number, producerEpoch: number, topic: string, partition: number): void {
    const txn = this.transactions.get(transactionalId);
    if (txn === undefined || txn.producerId !== producerId) {
      throw txnError(
        ErrorCode.INVALID_PRODUCER_ID_MAPPING,
        `transactional ID '${transactionalId}' does not belong to producer ${producerId}; call InitProducerId first`,
      );
    }
    if (producerEpoch < txn.producerEpoch) {
      throw txnError(
        ErrorCode.PRODUCER_FENCED,
        `producer ${producerId} of '${transactionalId}' has epoch ${producerEpoch}, but the current epoch is ${txn.producerEpoch}: it was fenced`,
      );
    }
    if (txn.state !== TransactionState.ONGOING || !txn.partitions.has(partitionKey({ topic, partition }))) {
      throw txnError(
        ErrorCode.INVALID_TXN_STATE,
        `transactional ID '${transactionalId}' writes to ${topic}-${partition} outside its transaction (state ${txn.state}); ` +
          'add the partition with AddPartitionsToTxn first',
      );
    }
  }

  // ------------------------------------------------------------------ EndTxn

  /**
   * Kafka's EndTxn: commits or aborts the open transaction. Resolves when
   * the markers are in every partition of the transaction (and, for a
   * commit, its offsets are committed). A retry of an EndTxn that completed
   * succeeds again.
   * @throws ConcordatError INVALID_PRODUCER_ID_MAPPING, PRODUCER_FENCED, INVALID_TXN_STATE,
   *   COORDINATOR_NOT_AVAILABLE, KAFKA_STORAGE_ERROR
   */
  endTransaction(transactionalId: string, producerId: number, producerEpoch: number, commit: boolean): Promise<void> {
    return this.inProducerTransaction({ transactionalId, producerId, producerEpoch, ending: true }, async (txn) => {
      if (txn.state === TransactionState.ONGOING) {
        await this.prepareAndComplete(txn, commit, false, null);
        return;
      }
      const done = commit ? TransactionState.COMPLETE_COMMIT : TransactionState.COMPLETE_ABORT;
      if (txn.state === done) return;
      throw txnError(
        ErrorCode.INVALID_TXN_STATE,
        `transactional ID '${transactionalId}' is in state ${txn.state}; ${commit ? 'commit' : 'abort'} needs an ongoing transaction`,
      );
    });
  }

  // ------------------------------------------------------------------ timeouts and expiry

  /**
   * Aborts ongoing transactions open longer than their timeout (bumping the
   * epoch, so the producer is fenced, as Kafka does), and forgets idle
   * transactional IDs past transactionalIdExpirationMs. Runs on a timer;
   * returns the IDs aborted.
   */
  async abortTimedOut(nowMs = Date.now()): Promise<string[]> {
    const aborted: string[] = [];
    for (const txn of [...this.transactions.values()]) {
      if (this.closed) break;
      if (txn.state !== TransactionState.ONGOING || nowMs - txn.startedMs <= txn.timeoutMs) continue;
      await this.serialized(txn.transactionalId, async () => {
        if (txn.state !== TransactionState.ONGOING || nowMs - txn.startedMs <= txn.timeoutMs) return;
        await this.prepareAndComplete(txn, false, true, `the transaction was open longer than its timeout of ${txn.timeoutMs} ms`);
        aborted.push(txn.transactionalId);
      });
    }
    let expired = false;
    for (const txn of [...this.transactions.values()]) {
      if (txn.state === TransactionState.ONGOING || txn.state === TransactionState.PREPARE_ABORT || txn.state === TransactionState.PREPARE_COMMIT) continue;
      if (nowMs - txn.updatedMs <= this.options.transactionalIdExpirationMs || this.chains.has(txn.transactionalId)) continue;
      this.transactions.delete(txn.transactionalId);
      expired = true;
    }
    if (expired) await this.store.persist();
    return aborted;
  }

  private startTimer(): void {
    this.timer = setInterval(() => {
      this.abortTimedOut().catch((error: unknown) => {
        if (!this.closed) this.logger.error({ err: error }, 'aborting timed-out transactions failed; will retry');
      });
    }, this.options.abortTimedOutTransactionsIntervalMs);
    this.timer.unref();
  }

  /** Stops the timer, waits for the operations in progress, and refuses new ones with COORDINATOR_NOT_AVAILABLE. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.closing.abort();
    if (this.timer !== null) clearInterval(this.timer);
    await Promise.allSettled([...this.chains.values()]);
    await this.store.idle();
  }

  // ------------------------------------------------------------------ two-phase completion

  /** Ongoing → Prepare (durable) → markers → offsets → Complete (durable). */
  private async prepareAndComplete(txn: TransactionMetadata, commit: boolean, bumpEpoch: boolean, reason: string | null): Promise<void> {
    const before = { state: txn.state, producerEpoch: txn.producerEpoch };
    txn.state = commit ? TransactionState.PREPARE_COMMIT : TransactionState.PREPARE_ABORT;
    if (bumpEpoch) txn.producerEpoch = Math.min(txn.producerEpoch + 1, EPOCH_MAX + 1);
    txn.updatedMs = Date.now();
    try {
      await this.store.persist();
    } catch (error) {
      Object.assign(txn, before);
      throw error;
    }
    if (reason !== null) {
      this.logger.warn({ transactionalId: txn.transactionalId, producerId: txn.producerId, producerEpoch: txn.producerEpoch, reason }, 'aborting transaction');
    }
    await this.faults.afterPrepare?.(txn.transactionalId, txn.state);
    await this.writeMarkersAndComplete(txn);
  }

  /** From a Prepare state: writes the markers (retrying storage errors until they are in), the offsets, then Complete. */
  private async writeMarkersAndComplete(txn: TransactionMetadata): Promise<void> {
    const commit = txn.state === TransactionState.PREPARE_COMMIT;
    const marker: TransactionMarker = {
      producerId: txn.producerId,
      producerEpoch: txn.producerEpoch,
      type: commit ? ControlRecordType.COMMIT : ControlRecordType.ABORT,
      coordinatorEpoch: COORDINATOR_EPOCH,
    };
    await Promise.all([...txn.partitions.values()].map((p) => this.writeMarker(txn, p, marker)));
    if (commit) {
      for (const [groupId, offsets] of txn.pendingOffsets) {
        await this.retrying(`committing the offsets of group '${groupId}'`, txn, () =>
          this.transactionLog.commitTransactionalOffsets(groupId, [...offsets.values()]),
        );
      }
    }
    txn.state = commit ? TransactionState.COMPLETE_COMMIT : TransactionState.COMPLETE_ABORT;
    txn.partitions.clear();
    txn.groups.clear();
    txn.pendingOffsets.clear();
    txn.updatedMs = Date.now();
    await this.retrying('recording the completed transaction', txn, () => this.store.persist());
  }

  private async writeMarker(txn: TransactionMetadata, p: TopicPartition, marker: TransactionMarker): Promise<void> {
    await this.retrying(`writing the ${commitWord(marker)} marker to ${p.topic}-${p.partition}`, txn, async () => {
      try {
        await this.transactionLog.appendMarker(p.topic, p.partition, marker);
      } catch (error) {
        // A topic deleted during the transaction has no partition to mark.
        if (error instanceof ConcordatError && error.code === ErrorCode.UNKNOWN_TOPIC_OR_PARTITION) return;
        throw error;
      }
    });
  }

  /**
   * Runs `task` until it succeeds: a transaction's outcome, once prepared,
   * must reach every partition (Kafka retries marker writes the same way).
   * Gives up only when the log closes (the next open completes it).
   */
  private async retrying(what: string, txn: TransactionMetadata, task: () => Promise<unknown>): Promise<void> {
    for (let failures = 1; ; failures++) {
      try {
        await task();
        return;
      } catch (error) {
        const closing = error instanceof ConcordatError && error.code === ErrorCode.LOG_CLOSED;
        if (closing || this.closing.signal.aborted) {
          throw txnError(ErrorCode.COORDINATOR_NOT_AVAILABLE, `the log closed while ${what}; the transaction completes when it reopens`, error);
        }
        const waitMs = backoffMs(MARKER_RETRY, failures);
        this.logger.error({ err: error, transactionalId: txn.transactionalId, retryInMs: waitMs }, `${what} failed; retrying`);
        await sleep(waitMs);
      }
    }
  }

  // ------------------------------------------------------------------ helpers

  private begin(txn: TransactionMetadata): void {
    if (txn.state === TransactionState.ONGOING) return;
    if (txn.state === TransactionState.PREPARE_COMMIT || txn.state === TransactionState.PREPARE_ABORT) {
      throw txnError(ErrorCode.CONCURRENT_TRANSACTIONS, `transactional ID '${txn.transactionalId}' is completing its previous transaction; retry`);
    }
    txn.state = TransactionState.ONGOING;
    txn.startedMs = Date.now();
    txn.partitions.clear();
    txn.groups.clear();
    txn.pendingOffsets.clear();
  }

  /** The transaction of a request, after Kafka's checks: known ID, same producer ID, current epoch. */
  private producerTransaction(transactionalId: string, producerId: number, producerEpoch: number, ending = false): TransactionMetadata {
    const txn = this.transactions.get(transactionalId);
    if (txn === undefined || txn.producerId !== producerId) {
      throw txnError(
        ErrorCode.INVALID_PRODUCER_ID_MAPPING,
        `transactional ID '${transactionalId}' ${txn === undefined ? 'is unknown' : `belongs to producer ${txn.producerId}, not ${producerId}`}; call InitProducerId first`,
      );
    }
    if (producerEpoch !== txn.producerEpoch) {
      // EndTxn retried after a timeout-abort bumped the epoch by one: Kafka answers it as fenced too.
      throw txnError(
        ErrorCode.PRODUCER_FENCED,
        `producer ${producerId} of '${transactionalId}' has epoch ${producerEpoch}, but the current epoch is ${txn.producerEpoch}: ` +
          `a newer producer with the same transactional ID fenced it${ending ? ', or its transaction timed out' : ''}`,
      );
    }
    if (txn.state === TransactionState.PREPARE_COMMIT || txn.state === TransactionState.PREPARE_ABORT) {
      throw txnError(ErrorCode.CONCURRENT_TRANSACTIONS, `transactional ID '${transactionalId}' is completing its previous transaction; retry`);
    }
    return txn;
  }

  private partitionExists(topic: string, partition: number): boolean {
    const count = this.transactionLog.partitionCount(topic);
    return count !== undefined && Number.isInteger(partition) && partition >= 0 && partition < count;
  }

  /**
   * Runs `task` on the producer's transaction, checked by {@link producerTransaction}
   * (`ending` as there), after every earlier operation on the same
   * transactional ID. Throws COORDINATOR_NOT_AVAILABLE at once when closed;
   * the other checks reject the returned promise.
   */
  private inProducerTransaction<T>(
    request: { transactionalId: string; producerId: number; producerEpoch: number; ending?: boolean },
    task: (txn: TransactionMetadata) => Promise<T>,
  ): Promise<T> {
    const { transactionalId, producerId, producerEpoch, ending = false } = request;
    this.checkOpen();
    return this.serialized(transactionalId, () => task(this.producerTransaction(transactionalId, producerId, producerEpoch, ending)));
  }

  /** Runs `task` after every earlier operation on the same transactional ID. */
  private serialized<T>(transactionalId: string, task: () => Promise<T>): Promise<T> {
    const previous = this.chains.get(transactionalId) ?? Promise.resolve();
    const run = previous.then(task, task);
    const settled = run.catch(() => {});
    this.chains.set(transactionalId, settled);
    void settled.then(() => {
      if (this.chains.get(transactionalId) === settled) this.chains.delete(transactionalId);
    });
    return run;
  }

  private async persistOrForget(txn: TransactionMetadata): Promise<void> {
    try {
      await this.store.persist();
    } catch (error) {
      this.transactions.delete(txn.transactionalId);
      throw error;
    }
  }

  private checkOpen(): void {
    if (this.closed) throw txnError(ErrorCode.COORDINATOR_NOT_AVAILABLE, 'the transaction coordinator is closed');
  }
}

function newTransaction(transactionalId: string, producerId: number, timeoutMs: number): TransactionMetadata {
  const now = Date.now();
  return {
    transactionalId,
    producerId,
    producerEpoch: 0,
    timeoutMs,
    state: TransactionState.EMPTY,
    partitions: new Map(),
    groups: new Set(),
    pendingOffsets: new Map(),
    startedMs: now,
    updatedMs: now,
  };
}

function partitionKey(p: TopicPartition): string {
  return `${p.topic}\0${p.partition}`;
}

function commitWord(marker: TransactionMarker): string {
  return marker.type === ControlRecordType.COMMIT ? 'COMMIT' : 'ABORT';
}

function toStored(t: TransactionMetadata): StoredTransaction {
  return {
    transactionalId: t.transactionalId,
    producerId: t.producerId,
    producerEpoch: t.producerEpoch,
    timeoutMs: t.timeoutMs,
    state: t.state,
    partitions: [...t.partitions.values()].map((p) => [p.topic, p.partition]),
    groups: [...t.groups],
    pendingOffsets: [...t.pendingOffsets].flatMap(([groupId, offsets]) =>
      [...offsets.values()].map((o): StoredTransaction['pendingOffsets'][number] => [groupId, o.topic, o.partition, o.offset, o.leaderEpoch, o.metadata]),
    ),
    startedMs: t.startedMs,
    updatedMs: t.updatedMs,
  };
}

function fromStored(s: StoredTransaction): TransactionMetadata {
  const pendingOffsets = new Map<string, Map<string, PendingOffset>>();
  for (const [groupId, topic, partition, offset, leaderEpoch, metadata] of s.pendingOffsets) {
    const offsets = pendingOffsets.get(groupId) ?? new Map<string, PendingOffset>();
    offsets.set(partitionKey({ topic, partition }), { topic, partition, offset, leaderEpoch, metadata });
    pendingOffsets.set(groupId, offsets);
  }
  return {
    transactionalId: s.transactionalId,
    producerId: s.producerId,
    producerEpoch: s.producerEpoch,
    timeoutMs: s.timeoutMs,
    state: s.state as TransactionState,
    partitions: new Map(s.partitions.map(([topic, partition]) => [partitionKey({ topic, partition }), { topic, partition }])),
    groups: new Set(s.groups),
    pendingOffsets,
    startedMs: s.startedMs,
    updatedMs: s.updatedMs,
  };
}

/** A ConcordatError with `code`, retriable as the error table says for it (CONCURRENT_TRANSACTIONS and COORDINATOR_NOT_AVAILABLE are). */
function txnError(code: ErrorCode, message: string, cause?: unknown): ConcordatError {
  return new ConcordatError(message, { code, ...(cause === undefined ? {} : { cause }) });
}
