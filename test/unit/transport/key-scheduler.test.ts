import { describe, expect, it } from 'vitest';
import { chunkDelivery } from '../../../src/transport/delivery.js';
import { KeyScheduler, type KeySchedulerOptions } from '../../../src/transport/key-scheduler.js';
import { until } from '../../../src/testing/index.js';
import type { Delivery } from '../../../src/transport/index.js';

function record(offset: number, key: string | null): Delivery {
  return { topic: 't', partition: 0, offset, key: key === null ? null : Buffer.from(key), value: null, headers: {}, timestampMs: 0 };
}

const keyOf = (delivery: Delivery): string => (delivery.key === null ? `null@${delivery.offset}` : delivery.key.toString());

/** Lets promise chains and zero-delay timers run. */
const flush = async (): Promise<void> => {
  for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve));
};

interface Call {
  unit: Delivery[];
  settled: boolean;
  resolve(): void;
  reject(error: unknown): void;
}

/** A scheduler whose deliveries the test ends by hand. */
function harness(options: Pick<KeySchedulerOptions, 'unitsMax' | 'recordsMax'> & Partial<KeySchedulerOptions>) {
  const calls: Call[] = [];
  const failures: Array<{ offset: number; attempt: number }> = [];
  let progress = 0;
  const scheduler = new KeyScheduler({
    startOffset: 0,
    deliver: (unit) =>
      new Promise<void>((resolve, reject) => {
        const call: Call = {
          unit: [...unit],
          settled: false,
          resolve: () => ((call.settled = true), resolve()),
          reject: (error) => ((call.settled = true), reject(error)),
        };
        calls.push(call);
      }),
    onUnitFailed: (_error, first, attempt) => failures.push({ offset: first.offset, attempt }),
    backoffMs: () => 0,
    onProgress: () => progress++,
    ...options,
  });
  const running = (): Call[] => calls.filter((call) => !call.settled);
  const offsets = (call: Call): number[] => call.unit.map((delivery) => delivery.offset);
  return { scheduler, calls, failures, running, offsets, progress: () => progress };
}

describe('KeyScheduler (parallel keys within a partition)', () => {
  it('spreads ready records over the free units, at most recordsMax each, in offset order', async () => {
    const h = harness({ unitsMax: 4, recordsMax: 32 });
    h.scheduler.add(Array.from({ length: 20 }, (_, i) => record(i, `k${i}`)));
    expect(h.calls.map(h.offsets)).toEqual([
      [0, 1, 2, 3, 4],
      [5, 6, 7, 8, 9],
      [10, 11, 12, 13, 14],
      [15, 16, 17, 18, 19],
    ]);
    expect(h.scheduler.inFlight).toBe(4);

    const backlog = harness({ unitsMax: 2, recordsMax: 3 });
    backlog.scheduler.add(Array.from({ length: 20 }, (_, i) => record(i, `k${i}`)));
    expect(backlog.calls.map(backlog.offsets)).toEqual([
      [0, 1, 2],
      [3, 4, 5],
    ]);
  });

  it('never holds one key in two units at once; a unit takes a prefix of each key; the committed offset stops at the lowest record not done', async () => {
    const h = harness({ unitsMax: 3, recordsMax: 2 });
    const keys = ['A', 'B', 'A', 'C', 'A', 'D', 'E', 'A', 'F', 'G'];
    h.scheduler.add(
      keys.map((key, offset) => record(offset, key)),
      12,
    );
    // 10 ready over 3 units: 2 each (recordsMax); A and B busy, then C D, then E F.
    expect(h.calls.map(h.offsets)).toEqual([
      [0, 1],
      [3, 5],
      [6, 8],
    ]);
    expect(h.scheduler.committable()).toBe(0);
    // The last unit finishes first: nothing below it is done, so nothing more is committable.
    h.calls[2]!.resolve();
    await flush();
    expect(h.scheduler.committable()).toBe(0);
    // The next unit takes G only: A is busy (offsets 2, 4, 7 wait behind offset 0).
    expect(h.offsets(h.calls[3]!)).toEqual([9]);
    h.calls[0]!.resolve();
    await flush();
    expect(h.scheduler.committable()).toBe(2);
    // A is free again: its next records, in order, in one unit.
    expect(h.offsets(h.calls[4]!)).toEqual([2, 4]);
    for (const call of h.running()) call.resolve();
    await flush();
    expect(h.offsets(h.calls[5]!)).toEqual([7]);
    h.calls[5]!.resolve();
    await h.scheduler.whenIdle();
    // Everything done: the offset after the read (past records it skipped, such as control batches).
    expect(h.scheduler.committable()).toBe(12);
    expect(h.scheduler.buffered).toBe(0);
  });

  it('records without a key are each a key of their own', () => {
    const h = harness({ unitsMax: 4, recordsMax: 1 });
    h.scheduler.add([record(0, null), record(1, null), record(2, null), record(3, 'K'), record(4, 'K')]);
    expect(h.calls.map(h.offsets)).toEqual([[0], [1], [2], [3]]);
  });

  it('a failed unit is delivered again whole after its backoff, its keys still busy, while other keys go on', async () => {
    const h = harness({ unitsMax: 2, recordsMax: 1 });
    h.scheduler.add([record(0, 'A'), record(1, 'B'), record(2, 'A'), record(3, 'C')]);
    expect(h.calls.map(h.offsets)).toEqual([[0], [1]]);
    h.calls[0]!.reject(new Error('boom'));
    h.calls[1]!.resolve();
    // The retry comes after a timer (a backoff of 0 ms): wait for it rather than for a number of turns.
    await until(() => h.calls.length === 4, { timeoutMs: 5000, intervalMs: 1, message: 'the retry and the next unit' });
    expect(h.failures).toEqual([{ offset: 0, attempt: 1 }]);
    // Offset 0 again, and C; not A's offset 2.
    expect(h.calls.slice(2).map(h.offsets).sort()).toEqual([[0], [3]]);
    expect(h.scheduler.committable()).toBe(0);
    for (const call of h.running()) call.resolve();
    await flush();
    expect(h.offsets(h.calls[4]!)).toEqual([2]);
    h.calls[4]!.resolve();
    await h.scheduler.whenIdle();
    expect(h.scheduler.committable()).toBe(4);
  });

  it('stop: no new unit starts, a unit waiting for its backoff is abandoned, and the running ones finish before it resolves', async () => {
    const h = harness({ unitsMax: 2, recordsMax: 1, backoffMs: () => 3_600_000 });
    h.scheduler.add([record(0, 'A'), record(1, 'B'), record(2, 'C')]);
    h.calls[0]!.reject(new Error('boom'));
    await flush();
    let stopped = false;
    const stopping = h.scheduler.stop().then(() => (stopped = true));
    await flush();
    expect(stopped).toBe(false); // B's delivery still runs
    h.calls[1]!.resolve();
    await stopping;
    expect(h.calls).toHaveLength(2); // neither A again nor C
    expect(h.scheduler.committable()).toBe(0);
    h.scheduler.add([record(3, 'D')]);
    expect(h.calls).toHaveLength(2);
  });

  it('refuses a record that is not after the ones added before', () => {
    const h = harness({ unitsMax: 2, recordsMax: 1 });
    h.scheduler.add([record(5, 'A')]);
    expect(() => h.scheduler.add([record(5, 'B')])).toThrow(new RangeError('offset 5 added after offset 5'));
  });

  it('random keys, completions in random order and failures: per-key order, one unit per key, committed offset = lowest record not done', async () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const random = mulberry32(seed);
      const unitsMax = 1 + Math.floor(random() * 16);
      const recordsMax = 1 + Math.floor(random() * 8);
      const h = harness({ unitsMax, recordsMax });
      const doneOffsets = new Set<number>();
      const lastDoneOfKey = new Map<string, number>();
      let next = 0;
      const total = 600;
      while (doneOffsets.size < total) {
        if (next < total && random() < 0.3) {
          const count = Math.min(total - next, 1 + Math.floor(random() * 40));
          const batch = Array.from({ length: count }, (_, i) => record(next + i, random() < 0.1 ? null : `k${Math.floor(random() * 12)}`));
          next += count;
          h.scheduler.add(batch);
        }
        const running = h.running();
        // Invariants while units are in flight.
        expect(running.length).toBeLessThanOrEqual(unitsMax);
        const held = running.flatMap((call) => [...new Set(call.unit.map(keyOf))]);
        expect(new Set(held).size).toBe(held.length);
        const lowestNotDone = [...Array(next).keys()].find((offset) => !doneOffsets.has(offset)) ?? next;
        expect(h.scheduler.committable()).toBe(lowestNotDone);
        if (running.length === 0) {
          await flush();
          continue;
        }
        const call = running[Math.floor(random() * running.length)]!;
        expect(call.unit.length).toBeLessThanOrEqual(recordsMax);
        if (random() < 0.15) {
          call.reject(new Error('injected'));
        } else {
          for (const delivery of call.unit) {
            const key = keyOf(delivery);
            // Each key's records finish in offset order, each once.
            expect(delivery.offset).toBeGreaterThan(lastDoneOfKey.get(key) ?? -1);
            expect(doneOffsets.has(delivery.offset)).toBe(false);
            lastDoneOfKey.set(key, delivery.offset);
            doneOffsets.add(delivery.offset);
          }
          call.resolve();
        }
        await flush();
      }
      await h.scheduler.whenIdle();
      expect(h.scheduler.committable()).toBe(total);
      expect(h.failures.length).toBeGreaterThan(0);
    }
  });
});

/** A small seeded PRNG (mulberry32), so that a failing seed can be replayed. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('subscribe: concurrency.perPartition', () => {
  const base = { groupId: 'g', topics: ['a', 'b'], handler: async () => undefined };

  it('is 1 unless given, for every topic or per topic', () => {
    expect(chunkDelivery(base).perPartition('a')).toBe(1);
    expect(chunkDelivery({ ...base, concurrency: { perPartition: 8 } }).perPartition('b')).toBe(8);
    const perTopic = chunkDelivery({ ...base, concurrency: { perPartition: { a: 16 } } });
    expect([perTopic.perPartition('a'), perTopic.perPartition('b')]).toEqual([16, 1]);
  });

  it('refuses a value outside 1..256, naming the option', () => {
    expect(() => chunkDelivery({ ...base, concurrency: { perPartition: 0 } })).toThrow(
      'invalid options: subscribe.concurrency.perPartition: must be an integer in 1..256 (got 0)',
    );
    expect(() => chunkDelivery({ ...base, concurrency: { perPartition: { a: 300 } } })).toThrow(
      'invalid options: subscribe.concurrency.perPartition.a: must be an integer in 1..256 (got 300)',
    );
    // A topic name that does not read as a property name is quoted, so its dots are not taken for nesting.
    expect(() => chunkDelivery({ ...base, concurrency: { perPartition: { 'orders.v1': 2.5 } } })).toThrow(
      "invalid options: subscribe.concurrency.perPartition['orders.v1']: must be an integer in 1..256 (got 2.5)",
    );
  });
});
