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
 */
export class GroupCommit<I, R> {
  private readonly queue: Array<{ item: I; resolve: (result: R) => void; reject: (error: unknown) => void }> = [];
  private running = 0;

  /**
   * @param run runs items in one transaction and returns one result per item, in order.
   * @param itemsMax most items in one transaction. Range 1..10000.
   * @param concurrency transactions in flight at once. Range 1..64.
   */
  constructor(
    private readonly run: (items: I[]) => Promise<R[]>,
    private readonly itemsMax: number,
    private readonly concurrency = 1,
  ) {
    if (!Number.isInteger(itemsMax) || itemsMax < 1 || itemsMax > 10_000) throw new RangeError(`itemsMax must be in 1..10000, got ${itemsMax}`);
    if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64) throw new RangeError(`concurrency must be in 1..64, got ${concurrency}`);
  }

  /** Runs `item` in the next transaction. @returns its result, after the commit. */
  submit(item: I): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      if (this.running < this.concurrency) void this.drain();
    });
  }

  /**
   * Runs `items` in the next transactions, together (a batch the transport
   * delivered): all are queued before a transaction takes any, so an idle
   * committer does not start with the first alone.
   * @returns the result of each, after its commit.
   */
  submitAll(items: readonly I[]): Array<Promise<R>> {
    const results = items.map((item) => new Promise<R>((resolve, reject) => this.queue.push({ item, resolve, reject })));
    if (this.running < this.concurrency) void this.drain();
    return results;
  }

  /** Items waiting for a transaction. */
  get waiting(): number {
    return this.queue.length;
  }

  private async drain(): Promise<void> {
    this.running++;
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, this.itemsMax);
        try {
          const results = await this.run(batch.map((entry) => entry.item));
          batch.forEach((entry, i) => entry.resolve(results[i]!));
        } catch (error) {
          if (batch.length === 1) batch[0]!.reject(error);
          else await this.isolate(batch);
        }
      }
    } finally {
      this.running--;
    }
  }

  private async isolate(batch: typeof this.queue): Promise<void> {
    for (const entry of batch) {
      try {
        const [result] = await this.run([entry.item]);
        entry.resolve(result!);
      } catch (error) {
        entry.reject(error);
      }
    }
  }
}
