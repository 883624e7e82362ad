import { afterEach, describe, expect, it, vi } from 'vitest';
import { causeChain, rootCause, someCause } from '../../../src/errors.js';
import { isPoisonRecordError } from '../../../src/outbox/poison.js';
import { restartBackoffMs } from '../../../src/transport/embedded/supervision.js';
import { backoffMs, sleep } from '../../../src/util/index.js';

describe('backoffMs: capped exponential backoff', () => {
  it('doubles from the first delay and stops at the cap', () => {
    const backoff = { firstMs: 100, maxMs: 1000 };
    expect([1, 2, 3, 4, 5, 6].map((n) => backoffMs(backoff, n))).toEqual([100, 200, 400, 800, 1000, 1000]);
  });

  it('stays finite for a loop failing for days, uncapped or not', () => {
    expect(backoffMs({ firstMs: 1, maxMs: Infinity }, 1_000_000)).toBe(2 ** 20);
    expect(backoffMs({ firstMs: 50, maxMs: 2000 }, Infinity)).toBe(2000);
    expect(backoffMs({ firstMs: 0, maxMs: Infinity }, 1_000_000)).toBe(0);
  });

  it("a worker's restart backoff is capped at 30 s whatever retryBackoffMaxMs says", () => {
    expect(restartBackoffMs({ retryBackoffMs: 100, retryBackoffMaxMs: 60_000 }, 3)).toBe(400);
    expect(restartBackoffMs({ retryBackoffMs: 100, retryBackoffMaxMs: 60_000 }, Infinity)).toBe(30_000);
    expect(restartBackoffMs({ retryBackoffMs: 100, retryBackoffMaxMs: 250 }, 3)).toBe(250);
  });
});

describe('sleep: abortable', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('resolves after its time', async () => {
    vi.useFakeTimers();
    let done = false;
    const slept = sleep(1000).then(() => (done = true));
    await vi.advanceTimersByTimeAsync(999);
    expect(done).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    await slept;
    expect(done).toBe(true);
  });

  it('resolves when its signal aborts, and at once when it was aborted already, leaving no timer or listener', async () => {
    vi.useFakeTimers();
    const controller = new AbortController();
    const slept = sleep(60_000, controller.signal);
    expect(vi.getTimerCount()).toBe(1);
    controller.abort();
    await slept;
    expect(vi.getTimerCount()).toBe(0);
    await sleep(60_000, controller.signal);
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe('causeChain: the one walk of a failure', () => {
  it('yields the error and what it wraps, driverError before cause, objects only', () => {
    const driver = Object.assign(new Error('pg'), { code: '40001' });
    const typeorm = Object.assign(new Error('query failed'), { driverError: driver });
    const outer = new Error('outer', { cause: typeorm });
    expect([...causeChain(outer)]).toEqual([outer, typeorm, driver]);
    expect([...causeChain(new Error('x', { cause: 'a string' }))]).toHaveLength(1);
    expect([...causeChain(undefined)]).toEqual([]);
    expect(someCause(outer, (e) => e.code === '40001')).toBe(true);
    expect(rootCause(outer)).toBe(driver);
    expect(rootCause('plain')).toBe('plain');
  });

  it('ends at a cycle and after its depth bound', () => {
    const self = new Error('self');
    (self as { cause?: unknown }).cause = self;
    expect([...causeChain(self)]).toEqual([self]);
    const a = new Error('a');
    const b = new Error('b', { cause: a });
    (a as { cause?: unknown }).cause = b;
    expect([...causeChain(a)]).toEqual([a, b]);
    let deep: unknown = new Error('root');
    for (let i = 0; i < 30; i++) deep = new Error(`level ${i}`, { cause: deep });
    expect([...causeChain(deep)]).toHaveLength(16);
    expect([...causeChain(deep, 3)]).toHaveLength(3);
  });

  it('finds a poison record error up to five levels deep, not six', () => {
    const wrap = (error: unknown, times: number): unknown => (times === 0 ? error : wrap(new Error('wrapped', { cause: error }), times - 1));
    const tooLarge = Object.assign(new Error('too large'), { type: 'MESSAGE_TOO_LARGE' });
    expect(isPoisonRecordError(wrap(tooLarge, 4))).toBe(true);
    expect(isPoisonRecordError(wrap(tooLarge, 5))).toBe(false);
  });
});
