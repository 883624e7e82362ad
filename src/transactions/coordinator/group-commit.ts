import { HandlerGroupCommit } from '../../runtime/index.js';

/**
 * Group commit for message handlers (the technique databases use for their
 * log, here for whole transactions): handler calls that arrive while a
 * transaction is in flight wait, and the next transaction takes all of them
 * at once, so its fixed cost — `BEGIN`, the inbox and outbox statements,
 * `COMMIT`, the round trips in between — is shared. Nothing waits for a
 * timer: an idle committer starts at once with what it has, so a lone call
 * costs what it did before and a busy one batches as much as arrived.
 *
 * Every call resolves only after the transaction holding it committed, so a
 * caller that acknowledges a delivery afterwards (the transport commits the
 * offset) keeps the exactly-once effect of the inbox.
 *
 * When a batch of several fails, each of its items is run again alone, so
 * one poison item fails only its own call (which the dispatcher retries and
 * finally dead-letters) and never its neighbours.
 *
 * The coordinator's replies, item by item, on the dispatcher's committer
 * (`runtime/group-commit.ts`), each item a unit of its own.
 */
export class GroupCommit<I, R> {
  private readonly committer: HandlerGroupCommit<I, R>;

  /**
   * @param run runs items in one transaction and returns one result per item, in order.
   * @param itemsMax most items in one transaction. Range 1..10000.
   * @param concurrency most transactions in flight at once. Range 1..64.
   */
  constructor(run: (items: I[]) => Promise<R[]>, itemsMax: number, concurrency = 1) {
    this.committer = new HandlerGroupCommit((items) => run([...items]), itemsMax, concurrency);
  }

  /** Runs `item` in the next transaction. @returns its result, after the commit. */
  async submit(item: I): Promise<R> {
    const [result] = await this.committer.submit([item]);
    return result!;
  }

  /**
   * Runs `items` in the next transactions, together (a batch the transport
   * delivered): all are queued before a transaction takes any, so an idle
   * committer does not start with the first alone.
   * @returns the result of each, after its commit.
   */
  submitAll(items: readonly I[]): Array<Promise<R>> {
    return this.committer.submitEach(items);
  }

  /** Items waiting for a transaction. */
  get waiting(): number {
    return this.committer.waiting;
  }
}
