/**
 * Group commit of one consumer group's handler transactions (the technique
 * databases use for their log, here for whole handler transactions): the
 * attempts that the group's partitions submit while a transaction is in
 * flight wait, and the next transaction takes all of them at once, so that
 * its fixed cost (`BEGIN` with the inbox rows, `COMMIT` with the outbox
 * rows, the round trips between) is shared. Nothing waits for a timer: an
 * idle committer starts at once with what it has.
 *
 * Why one transaction at a time (by default) rather than one per partition:
 * transactions of one group that run side by side hold the row locks of
 * their messages at the same time. When handlers write the same rows — an
 * inventory service whose orders all touch a few products — two
 * transactions of several messages each take those rows in different orders
 * and wait on each other, or deadlock, which PostgreSQL finds only after
 * `deadlock_timeout` (1 s by default). With one transaction in flight, the
 * group's messages never wait on each other's row locks, whatever the
 * handlers write; the throughput lost is the overlap of round trips, which
 * the larger shared transactions more than give back. kafkajs makes the same
 * default choice (`partitionsConsumedConcurrently: 1`).
 *
 * Units: what one caller submits (the records a partition delivered
 * together, or one message's attempt) is a unit; a unit is never split
 * across transactions here. A unit marked `alone` runs in a transaction of
 * its own (a retry, a batch being split around a failing message): merging it
 * would make its failure fail its neighbours again. When a transaction of
 * several units fails, each unit is run again alone, in order, so a failure
 * reaches only the caller whose unit holds it.
 *
 * Every submission resolves only after the transaction holding it committed
 * (or rolled back with nothing to commit), so a caller that commits offsets
 * afterwards keeps the exactly-once effect of the inbox.
 */
export class HandlerGroupCommit<I, R> {
  private readonly queue: Array<Unit<I, R>> = [];
  private running = 0;

  /**
   * @param run runs items in one transaction; returns one result per item, in order; throws if the transaction did not commit.
   * @param itemsMax most items in one transaction (a unit larger than this still runs whole). Range 1..10000.
   * @param concurrency transactions in flight at once. Range 1..64.
   */
  constructor(
    private readonly run: (items: readonly I[]) => Promise<R[]>,
    private readonly itemsMax: number,
    private readonly concurrency: number,
  ) {
    if (!Number.isInteger(itemsMax) || itemsMax < 1 || itemsMax > 10_000) throw new RangeError(`itemsMax must be in 1..10000, got ${itemsMax}`);
    if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64) throw new RangeError(`concurrency must be in 1..64, got ${concurrency}`);
  }

  /**
   * Runs `items` (at least one) in a coming transaction, with other units
   * unless `alone`. @returns one result per item, after the commit.
   * @throws what the transaction of this unit alone threw
   */
  submit(items: readonly I[], alone = false): Promise<R[]> {
    if (items.length === 0) throw new Error('assertion failed: a group-commit unit needs at least one item');
    return new Promise<R[]>((resolve, reject) => {
      this.queue.push({ items, alone, resolve, reject });
      if (this.running < this.concurrency) void this.drain();
    });
  }

  /** Units waiting for a transaction. */
  get waiting(): number {
    return this.queue.length;
  }

  private async drain(): Promise<void> {
    this.running++;
    try {
      for (let units = this.take(); units.length > 0; units = this.take()) {
        if (units.length === 1) await this.runAlone(units[0]!);
        else await this.runMerged(units);
      }
    } finally {
      this.running--;
    }
  }

  /** The next transaction's units: the first waiting one, then the mergeable ones after it while they fit in `itemsMax`. */
  private take(): Array<Unit<I, R>> {
    const first = this.queue.shift();
    if (first === undefined) return [];
    const units = [first];
    if (first.alone) return units;
    let items = first.items.length;
    for (let i = 0; i < this.queue.length && items < this.itemsMax; ) {
      const unit = this.queue[i]!;
      if (unit.alone || items + unit.items.length > this.itemsMax) {
        i++;
        continue;
      }
      this.queue.splice(i, 1);
      units.push(unit);
      items += unit.items.length;
    }
    return units;
  }

  private async runAlone(unit: Unit<I, R>): Promise<void> {
    try {
      unit.resolve(await this.run(unit.items));
    } catch (error) {
      unit.reject(error);
    }
  }

  private async runMerged(units: Array<Unit<I, R>>): Promise<void> {
    let results: R[];
    try {
      results = await this.run(units.flatMap((unit) => unit.items));
    } catch {
      // Rolled back as a whole: each unit again in a transaction of its own, in order.
      for (const unit of units) await this.runAlone(unit);
      return;
    }
    let at = 0;
    for (const unit of units) {
      unit.resolve(results.slice(at, at + unit.items.length));
      at += unit.items.length;
    }
  }
}

interface Unit<I, R> {
  items: readonly I[];
  alone: boolean;
  resolve(results: R[]): void;
  reject(error: unknown): void;
}
