/**
 * Group commit of one consumer group's handler transactions (the technique
 * databases use for their log, here for whole handler transactions): the
 * attempts that the group's partitions submit while transactions are in
 * flight wait, and the next transaction takes all of them at once, so that
 * its fixed cost (`BEGIN` with the inbox rows, `COMMIT` with the outbox
 * rows, the round trips between) is shared. Nothing waits for a timer: an
 * idle committer starts at once with what it has.
 *
 * **How many transactions at once: adapted to conflicts.** Transactions of
 * one group that run side by side hold the row locks of their messages at
 * the same time. When handlers write the same rows — an inventory service
 * whose orders all touch a few products — two transactions of several
 * messages each take those rows in different orders and wait on each other,
 * or deadlock, which PostgreSQL finds only after `deadlock_timeout` (1 s by
 * default). When they write different rows, running several at once is what
 * uses the database's cores. So the committer starts with one transaction in
 * flight and adds one more (up to `concurrencyMax`) after a commit of a *full*
 * transaction (`itemsMax` items) while work is still waiting, unless a
 * conflict was seen lately, and takes one away after a commit of a
 * transaction that had room: more transactions only when merging cannot
 * absorb the work any more, since one larger transaction costs less per
 * message than several smaller ones. A transaction that runs beside others is
 * *guarded* (the caller gives it a short lock timeout), so that a wait on
 * another transaction's rows fails within milliseconds instead of stalling.
 * A conflict — a guarded lock wait that timed out, a deadlock, a
 * serialization failure — brings the committer back to one transaction at
 * a time, where the group's messages cannot wait on each other at all, and
 * the failed units run again there. It stays there for a calm period that
 * starts at {@link CONFLICT_CALM_MS}.min and doubles with each conflict up to
 * its max (a workload on hot rows probes less and less often), and goes back
 * to the min once the committer ran at full concurrency without one. This is TCP's congestion control
 * (additive increase, multiplicative decrease to one) applied to row locks.
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
  /** Transactions allowed in flight now: 1..concurrencyMax. */
  private limit = 1;
  /** No increase before this time (ms, `now()`): a conflict was seen shortly before. */
  private calmUntilMs = 0;
  /** The calm period the next conflict starts, in ms. */
  private calmMs: number = CONFLICT_CALM_MS.min;
  /** Conflicts seen (each brought the limit back to 1). */
  conflicts = 0;

  /**
   * @param run runs items in one transaction; `guarded`: others may run beside it, so it must not wait long for a row lock (see the class comment); returns one result per item, in order; throws if the transaction did not commit.
   * @param itemsMax most items in one transaction (a unit larger than this still runs whole). Range 1..10000.
   * @param concurrencyMax most transactions in flight at once. Range 1..64.
   * @param isConflict whether an error means the transaction lost a conflict with another (a lock wait that timed out, a deadlock).
   * @param now the clock, in ms (injectable for tests).
   */
  constructor(
    private readonly run: (items: readonly I[], guarded: boolean) => Promise<R[]>,
    private readonly itemsMax: number,
    private readonly concurrencyMax: number,
    private readonly isConflict: (error: unknown) => boolean = () => false,
    private readonly now: () => number = Date.now,
  ) {
    if (!Number.isInteger(itemsMax) || itemsMax < 1 || itemsMax > 10_000) throw new RangeError(`itemsMax must be in 1..10000, got ${itemsMax}`);
    if (!Number.isInteger(concurrencyMax) || concurrencyMax < 1 || concurrencyMax > 64)
      throw new RangeError(`concurrency must be in 1..64, got ${concurrencyMax}`);
  }

  /** Transactions allowed in flight at the moment. */
  get concurrency(): number {
    return this.limit;
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
      if (this.running < this.limit) void this.drain();
    });
  }

  /**
   * Runs each of `items` as a unit of its own, mergeable, queued together
   * before any transaction takes one (what one delivery brought), so an idle
   * committer does not start with the first alone. @returns the result of each, after its commit
   */
  submitEach(items: readonly I[]): Array<Promise<R>> {
    const results = items.map(
      (item) => new Promise<R>((resolve, reject) => this.queue.push({ items: [item], alone: false, resolve: ([result]) => resolve(result!), reject })),
    );
    if (this.running < this.limit) void this.drain();
    return results;
  }

  /** Units waiting for a transaction. */
  get waiting(): number {
    return this.queue.length;
  }

  private async drain(): Promise<void> {
    this.running++;
    try {
      // A limit brought down by a conflict ends the extra loops at their next turn.
      while (this.running <= this.limit) {
        const units = this.take();
        if (units.length === 0) break;
        const guarded = this.limit > 1;
        if (units.length === 1) await this.runAlone(units[0]!, guarded);
        else await this.runMerged(units, guarded);
      }
    } finally {
      this.running--;
    }
  }

  /**
   * After a commit of `items` items: one more transaction in flight if that
   * one was full, work still waits and no conflict was seen lately; one
   * fewer if it had room (the extra loop ends at its next turn).
   */
  private committed(items: number): void {
    if (items < this.itemsMax) {
      if (this.limit > 1) this.limit--;
      return;
    }
    if (this.limit >= this.concurrencyMax) {
      this.calmMs = CONFLICT_CALM_MS.min;
      return;
    }
    if (this.queue.length === 0 || this.now() < this.calmUntilMs) return;
    this.limit++;
    if (this.running < this.limit) void this.drain();
  }

  /** After a failure: a conflict brings the limit back to one transaction at a time for a while. */
  private failed(error: unknown): void {
    if (!this.isConflict(error)) return;
    this.conflicts++;
    this.limit = 1;
    this.calmUntilMs = this.now() + this.calmMs;
    this.calmMs = Math.min(CONFLICT_CALM_MS.max, this.calmMs * 2);
  }

  /** The next transaction's units: the first waiting one, then the mergeable ones after it while they fit in `itemsMax`. */
  private take(): Array<Unit<I, R>> {
    const first = this.queue.shift();
    if (first === undefined) return [];
    const units = [first];
    if (first.alone) return units;
    let items = first.items.length;
    for (let i = 0; i < this.queue.length && items < this.itemsMax;) {
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

  private async runAlone(unit: Unit<I, R>, guarded: boolean): Promise<void> {
    try {
      unit.resolve(await this.run(unit.items, guarded));
      this.committed(unit.items.length);
    } catch (error) {
      this.failed(error);
      unit.reject(error);
    }
  }

  private async runMerged(units: Array<Unit<I, R>>, guarded: boolean): Promise<void> {
    let results: R[];
    try {
      const items = units.flatMap((unit) => unit.items);
      results = await this.run(items, guarded);
      this.committed(items.length);
    } catch (error) {
      this.failed(error);
      // Rolled back as a whole: each unit again in a transaction of its own, in order.
      for (const unit of units) await this.runAlone(unit, this.limit > 1);
      return;
    }
    let at = 0;
    for (const unit of units) {
      unit.resolve(results.slice(at, at + unit.items.length));
      at += unit.items.length;
    }
  }
}

/** How long the committer stays at one transaction in flight after a conflict, in ms: the first time, and at most. */
export const CONFLICT_CALM_MS = { min: 1000, max: 60_000 } as const;

interface Unit<I, R> {
  items: readonly I[];
  alone: boolean;
  resolve(results: R[]): void;
  reject(error: unknown): void;
}
