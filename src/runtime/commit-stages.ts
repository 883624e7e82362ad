import type { EntityManager } from 'typeorm';
import type { TransactionContext } from './context.js';

/**
 * Work that a component defers to the end of a handler transaction: after
 * every handler the transaction holds has run, before its `COMMIT`, once
 * for all the items deferred to it. What it writes commits with the
 * handlers' writes, or not at all.
 *
 * Why a stage rather than work done inside each handler: a dispatcher
 * transaction holds the messages of a whole batch, and work that locks rows
 * shared with other consumer groups (the coordinator locking global
 * transactions) must lock them all at once, in one order, at the end — so
 * that two groups' transactions cannot deadlock on them, and hold them for
 * as short a time as possible.
 */
export interface CommitStage<T> {
  /**
   * Runs with every item deferred to this stage in the transaction, in the
   * order they were deferred; may write through `manager` and publish
   * through the items' contexts. Throwing rolls the whole transaction back.
   * @returns statements to send with the `COMMIT` (no parameters: values as escaped literals), and what to do once the transaction committed (logs, fault points), if anything
   */
  beforeCommit(manager: EntityManager, items: ReadonlyArray<Deferred<T>>): Promise<StageResult | undefined>;
}

/** What a {@link CommitStage} leaves for the end of its transaction. */
export interface StageResult {
  /** SQL sent in the `COMMIT` round trip, before the outbox insert, in order. */
  commitStatements?: readonly string[];
  /** Run after the `COMMIT` succeeded. */
  afterCommit?: () => Promise<void>;
}

/** An item deferred to a {@link CommitStage}, with the context of the message that deferred it. */
export interface Deferred<T> {
  item: T;
  context: TransactionContext;
}

/**
 * The stages one handler transaction has been asked to run: filled by
 * handlers through their contexts, run by the dispatcher before `COMMIT`
 * ({@link runBeforeCommit}) and after it ({@link runAfterCommit}). Not safe
 * to share between transactions.
 */
export class CommitStages {
  private readonly deferred = new Map<CommitStage<unknown>, Array<Deferred<unknown>>>();
  private afterCommit: Array<() => Promise<void>> = [];

  /** Queues `item` for `stage`, to run before the handler transaction's `COMMIT` with the other items deferred to it. */
  defer<T>(stage: CommitStage<T>, item: T, context: TransactionContext): void {
    const key = stage as CommitStage<unknown>;
    const items = this.deferred.get(key);
    if (items === undefined) this.deferred.set(key, [{ item, context }]);
    else items.push({ item, context });
  }

  /**
   * Runs every stage, in the order each was first deferred to.
   * @returns the statements the stages want sent with the `COMMIT`, in order
   * @throws what a stage threw (the caller rolls back)
   */
  async runBeforeCommit(manager: EntityManager): Promise<string[]> {
    const statements: string[] = [];
    for (const [stage, items] of this.deferred) {
      const result = await stage.beforeCommit(manager, items);
      if (result?.commitStatements !== undefined) statements.push(...result.commitStatements);
      if (result?.afterCommit !== undefined) this.afterCommit.push(result.afterCommit);
    }
    this.deferred.clear();
    return statements;
  }

  /** Runs what the stages asked for after the commit, in order. */
  async runAfterCommit(): Promise<void> {
    const after = this.afterCommit;
    this.afterCommit = [];
    for (const run of after) await run();
  }
}
