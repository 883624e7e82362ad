import { sleep } from '../util/index.js';
import type { Delivery } from './transport.js';

/** Options of a {@link KeyScheduler}. */
export interface KeySchedulerOptions {
  /** Most units in flight at once (`concurrency.perPartition`). Range 1..256. */
  unitsMax: number;
  /** Most records in one unit: the subscription's chunk size (1 for a `handler`, `batchRecordsMax` for a `batchHandler`). Range 1..10000. */
  recordsMax: number;
  /** The partition's position when the scheduler starts: what {@link KeyScheduler.committable} returns while it holds nothing. */
  startOffset: number;
  /** Handles one unit: records of one partition, in offset order. The unit is done when it resolves; when it rejects it is delivered again, whole. */
  deliver(unit: readonly Delivery[]): Promise<void>;
  /** A unit's delivery rejected (`attempt` from 1); it is delivered again after `backoffMs(attempt)`. Must not throw. */
  onUnitFailed(error: unknown, first: Delivery, attempt: number): void;
  /** Wait before delivering a failed unit again, in ms. */
  backoffMs(attempt: number): number;
  /** Called after each unit is done: the committable offset may have moved. Must not throw. */
  onProgress?(): void;
}

/** One record the scheduler holds, until it is done. */
interface Entry {
  readonly delivery: Delivery;
  done: boolean;
}

/** The records of one key not handed out yet, and whether a unit in flight holds the key. */
interface KeyState {
  readonly id: string | number;
  /** Records of the key not in a unit yet, in offset order, from `head`. */
  readonly queue: Entry[];
  head: number;
  busy: boolean;
}

/** A key that may give its next record to a unit, as of `offset` (stale once its head moved or it became busy). */
interface Candidate {
  readonly offset: number;
  readonly state: KeyState;
}

/**
 * Hands the records of one partition to up to `unitsMax` concurrent
 * deliveries ("units"), keeping each key's records in offset order, and says
 * which offset may be committed: the lowest one not done.
 *
 * **The model: Confluent's parallel consumer in key-ordering mode**
 * (confluentinc/parallel-consumer, `ProcessingOrder.KEY`: records of one key
 * are processed strictly in offset order, records of different keys
 * concurrently up to `maxConcurrency`, and the committed offset is the
 * lowest offset not completed). Records above that offset that were done
 * already are delivered again after a restart or a rebalance; Concordat's
 * inbox makes them duplicates (the handler's transaction recorded the
 * message ID), so unlike the parallel consumer no map of done offsets is
 * kept in the commit's metadata.
 *
 * **Units and batching.** Where the parallel consumer hands a key's records
 * out one at a time, a unit here may carry several records — of several
 * keys, and several consecutive records of one key — because a Concordat
 * unit is one handler transaction of up to `batchRecordsMax` messages,
 * whose fixed cost (BEGIN with the inbox insert, COMMIT with the outbox
 * rows) the records share. The rules that keep per-key order:
 * - a key is *busy* while a unit holding one of its records is in flight,
 *   and a unit takes no record of a busy key: two units in flight never hold
 *   the same key, so a key's records are never handled concurrently;
 * - a unit takes records in offset order, and of each key it takes a
 *   prefix of the records not handed out yet; the unit's delivery (the
 *   dispatcher's batch) handles them in that order;
 * - a unit that fails is delivered again whole, its keys still busy, so
 *   nothing of its keys overtakes it (the other keys go on meanwhile).
 * How large a unit is: the records ready (of keys not busy) spread over the
 * free units, `ceil(ready / free)`, at most `recordsMax`. Under a light
 * load each record gets a unit of its own and nothing waits behind another
 * key's slow handler; under a backlog units fill up to `recordsMax` and
 * cost the least per message.
 *
 * **Records without a key** are each a key of their own: they run
 * concurrently with anything, in no order among themselves. A publisher
 * that gives no key promised no order (Concordat spreads keyless messages
 * over partitions, so two of them published in order may already be
 * handled in either order on two partitions), and treating them all as one
 * key would serialise exactly the messages that need it least (the
 * parallel consumer does, and users asked for the opposite:
 * confluentinc/parallel-consumer#183).
 *
 * Not safe to share between partitions: one scheduler per partition and
 * per run of its delivery loop. `add` and the getters are synchronous; units
 * run on their own and report through `onProgress`.
 */
export class KeyScheduler {
  /** Every record added and not yet known done-and-committable, in offset order, from `windowHead`. */
  private readonly window: Entry[] = [];
  private windowHead = 0;
  /** The offset after the last record added (or the position given by {@link advanceTo}). */
  private end: number;
  private readonly keys = new Map<string | number, KeyState>();
  /** Min-heap by offset of keys that may give a record to a unit; entries are checked when taken. */
  private readonly candidates: Candidate[] = [];
  /** Records of keys not busy, not handed out yet. */
  private ready = 0;
  private added = 0;
  private completed = 0;
  private readonly running = new Set<Promise<void>>();
  private stopped = false;
  private readonly abort = new AbortController();
  private progressWaiters: Array<() => void> = [];

  /** @throws RangeError when `unitsMax` or `recordsMax` is out of range (a programmer error: the subscription validated them) */
  constructor(private readonly options: KeySchedulerOptions) {
    const { unitsMax, recordsMax, startOffset } = options;
    if (!Number.isInteger(unitsMax) || unitsMax < 1 || unitsMax > 256) throw new RangeError(`unitsMax must be in 1..256, got ${unitsMax}`);
    if (!Number.isInteger(recordsMax) || recordsMax < 1 || recordsMax > 10_000) throw new RangeError(`recordsMax must be in 1..10000, got ${recordsMax}`);
    this.end = startOffset;
  }

  /** Records added and not done (in units or waiting for one). */
  get buffered(): number {
    return this.added - this.completed;
  }

  /** The offset after the last record added (or the position given to {@link advanceTo}): the next record added must be at or after it. */
  get endOffset(): number {
    return this.end;
  }

  /** Units in flight (delivering, or waiting for their backoff). */
  get inFlight(): number {
    return this.running.size;
  }

  /**
   * The offset to commit: the lowest offset added and not done, or the
   * offset after everything added when all of it is done. Never more than
   * the offset of a record not done (a record in a unit that failed and
   * waits, or was abandoned by {@link stop}, holds it back).
   */
  committable(): number {
    const window = this.window;
    while (this.windowHead < window.length && window[this.windowHead]!.done) this.windowHead++;
    if (this.windowHead > 1024 && this.windowHead * 2 > window.length) {
      window.splice(0, this.windowHead);
      this.windowHead = 0;
    }
    return this.windowHead < window.length ? window[this.windowHead]!.delivery.offset : this.end;
  }

  /**
   * Adds records of the partition, in offset order, each after every record
   * added before, and starts units for them while fewer than `unitsMax`
   * are in flight. `end`: the offset after them (past control records and
   * compacted offsets a read skipped). Ignored after {@link stop}.
   * @throws RangeError when a record is not after the ones added before (a programmer error)
   */
  add(deliveries: readonly Delivery[], end = this.end): void {
    if (this.stopped) return;
    for (const delivery of deliveries) {
      if (delivery.offset < this.end) throw new RangeError(`offset ${delivery.offset} added after offset ${this.end - 1}`);
      this.end = delivery.offset + 1;
      const entry: Entry = { delivery, done: false };
      this.window.push(entry);
      this.added++;
      this.enqueue(entry);
    }
    this.advanceTo(end);
    this.fill();
  }

  /** Moves the end past offsets that hold no record (a read that returned only control batches, an offset reset). */
  advanceTo(end: number): void {
    if (end > this.end) this.end = end;
  }

  /** Resolves when a unit is done, or at once when stopped. */
  whenProgress(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return new Promise((resolve) => this.progressWaiters.push(resolve));
  }

  /** Resolves when every record added is done, or when stopped and no delivery is running any more. */
  async whenIdle(): Promise<void> {
    while (!this.stopped && this.buffered > 0) await this.whenProgress();
    if (this.stopped) await this.settled();
  }

  /**
   * Starts no more units and ends the backoffs of failed ones (they are
   * abandoned, their records not done); resolves when every delivery
   * running has settled. Idempotent.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    this.wake();
    await this.settled();
  }

  private async settled(): Promise<void> {
    while (this.running.size > 0) await Promise.allSettled([...this.running]);
  }

  private enqueue(entry: Entry): void {
    const id = keyId(entry.delivery);
    let state = this.keys.get(id);
    if (state === undefined) {
      state = { id, queue: [], head: 0, busy: false };
      this.keys.set(id, state);
    }
    const wasEmpty = state.head === state.queue.length;
    state.queue.push(entry);
    if (state.busy) return;
    this.ready++;
    if (wasEmpty) this.pushCandidate(state);
  }

  /** Starts units while there is room and work: each of `ceil(ready / free units)` records, at most `recordsMax`. */
  private fill(): void {
    while (!this.stopped && this.running.size < this.options.unitsMax && this.ready > 0) {
      const free = this.options.unitsMax - this.running.size;
      const size = Math.min(this.options.recordsMax, Math.ceil(this.ready / free));
      const unit = this.take(size);
      if (unit.entries.length === 0) throw new Error(`assertion failed: ${this.ready} records ready and no key to take them from`);
      this.launch(unit.entries, unit.keys);
    }
  }

  /** Up to `size` records in offset order from keys not busy (a prefix of each key's queue); marks their keys busy. */
  private take(size: number): { entries: Entry[]; keys: KeyState[] } {
    const entries: Entry[] = [];
    const keys = new Set<KeyState>();
    while (entries.length < size) {
      const state = this.popCandidate();
      if (state === undefined) break;
      entries.push(state.queue[state.head++]!);
      this.ready--;
      keys.add(state);
      // The key's next record may join this unit too, in offset order with the other keys' records.
      if (state.head < state.queue.length) this.pushCandidate(state);
    }
    for (const state of keys) {
      state.busy = true;
      this.ready -= state.queue.length - state.head;
    }
    return { entries, keys: [...keys] };
  }

  private launch(entries: readonly Entry[], keys: readonly KeyState[]): void {
    const unit = this.run(entries, keys).finally(() => {
      this.running.delete(unit);
      this.wake();
      // After this unit left `running`, so that its room counts.
      this.fill();
    });
    this.running.add(unit);
  }

  /** Delivers the unit until it succeeds (then its records are done and its keys free) or the scheduler stops. */
  private async run(entries: readonly Entry[], keys: readonly KeyState[]): Promise<void> {
    const unit = entries.map((entry) => entry.delivery);
    for (let attempt = 1; ; attempt++) {
      if (this.stopped) return;
      try {
        await this.options.deliver(unit);
        break;
      } catch (error) {
        try {
          this.options.onUnitFailed(error, unit[0]!, attempt);
        } catch {
          // It must not throw; if it does, the unit is retried all the same (an abandoned unit would hold its keys for good).
        }
        await sleep(this.options.backoffMs(attempt), this.abort.signal);
      }
    }
    for (const entry of entries) entry.done = true;
    this.completed += entries.length;
    for (const state of keys) this.release(state);
    this.committable(); // drops the done records from the front of the window
    this.options.onProgress?.();
  }

  private release(state: KeyState): void {
    state.busy = false;
    const left = state.queue.length - state.head;
    if (left === 0) {
      this.keys.delete(state.id);
      return;
    }
    if (state.head > 64 && state.head * 2 > state.queue.length) {
      state.queue.splice(0, state.head);
      state.head = 0;
    }
    this.ready += left;
    this.pushCandidate(state);
  }

  private wake(): void {
    const waiters = this.progressWaiters;
    this.progressWaiters = [];
    for (const resolve of waiters) resolve();
  }

  private pushCandidate(state: KeyState): void {
    const heap = this.candidates;
    heap.push({ offset: state.queue[state.head]!.delivery.offset, state });
    for (let i = heap.length - 1; i > 0;) {
      const parent = (i - 1) >> 1;
      if (heap[parent]!.offset <= heap[i]!.offset) break;
      [heap[parent], heap[i]] = [heap[i]!, heap[parent]!];
      i = parent;
    }
  }

  /** The key holding the lowest offset ready; stale candidates (the key busy, or its head moved on) are dropped on the way. */
  private popCandidate(): KeyState | undefined {
    const heap = this.candidates;
    while (heap.length > 0) {
      const top = heap[0]!;
      const last = heap.pop()!;
      if (heap.length > 0) {
        heap[0] = last;
        for (let i = 0; ;) {
          const left = 2 * i + 1;
          const right = left + 1;
          let least = i;
          if (left < heap.length && heap[left]!.offset < heap[least]!.offset) least = left;
          if (right < heap.length && heap[right]!.offset < heap[least]!.offset) least = right;
          if (least === i) break;
          [heap[least], heap[i]] = [heap[i]!, heap[least]!];
          i = least;
        }
      }
      const { state, offset } = top;
      if (!state.busy && state.head < state.queue.length && state.queue[state.head]!.delivery.offset === offset) return state;
    }
    return undefined;
  }
}

/** The ordering key of a record: its key's bytes, or for a record without a key its offset (a key of its own). */
function keyId(delivery: Delivery): string | number {
  return delivery.key === null ? delivery.offset : delivery.key.toString('latin1');
}
