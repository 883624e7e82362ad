import { describe, expect, it } from 'vitest';
import { HandlerGroupCommit } from '../../../src/runtime/group-commit.js';
import { isTransactionConflict } from '../../../src/runtime/retry.js';

/** A transaction runner the test steps by hand: each call waits until `release()`. */
function steppedRunner(fail: (items: readonly string[]) => boolean = () => false) {
  const transactions: string[][] = [];
  const gates: Array<() => void> = [];
  let inFlight = 0;
  let inFlightMax = 0;
  const run = async (items: readonly string[]): Promise<string[]> => {
    transactions.push([...items]);
    inFlight++;
    inFlightMax = Math.max(inFlightMax, inFlight);
    await new Promise<void>((resolve) => gates.push(resolve));
    inFlight--;
    if (fail(items)) throw new Error(`rolled back: ${items.join(',')}`);
    return items.map((item) => `done ${item}`);
  };
  const release = async (): Promise<void> => {
    // Let queued microtasks reach the gate first.
    for (let i = 0; i < 5 && gates.length === 0; i++) await Promise.resolve();
    gates.shift()?.();
    for (let i = 0; i < 5; i++) await Promise.resolve();
  };
  return { run, release, transactions, inFlightMax: () => inFlightMax };
}

describe('HandlerGroupCommit', () => {
  it('an idle committer starts at once; what arrives meanwhile shares the next transaction, up to itemsMax', async () => {
    const runner = steppedRunner();
    const commit = new HandlerGroupCommit(runner.run, 4, 1);
    const first = commit.submit(['a']);
    const second = commit.submit(['b', 'c']);
    const third = commit.submit(['d']);
    const fourth = commit.submit(['e', 'f']); // would make 5: waits for the transaction after
    await runner.release();
    expect(await first).toEqual(['done a']);
    await runner.release();
    expect(await second).toEqual(['done b', 'done c']);
    expect(await third).toEqual(['done d']);
    await runner.release();
    expect(await fourth).toEqual(['done e', 'done f']);
    expect(runner.transactions).toEqual([['a'], ['b', 'c', 'd'], ['e', 'f']]);
    expect(runner.inFlightMax()).toBe(1);
  });

  it('a unit marked alone gets a transaction of its own, and units behind it may pass it', async () => {
    const runner = steppedRunner();
    const commit = new HandlerGroupCommit(runner.run, 10, 1);
    const results = [commit.submit(['a']), commit.submit(['retry'], true), commit.submit(['b']), commit.submit(['c'])];
    for (let i = 0; i < 3; i++) await runner.release();
    await Promise.all(results);
    expect(runner.transactions).toEqual([['a'], ['retry'], ['b', 'c']]);
  });

  it('a merged transaction that fails runs each unit again alone, in order; only the failing unit is rejected', async () => {
    const runner = steppedRunner((items) => items.includes('bad'));
    const commit = new HandlerGroupCommit(runner.run, 10, 1);
    const head = commit.submit(['head']);
    const ok1 = commit.submit(['x', 'y']);
    const bad = commit.submit(['bad']);
    const ok2 = commit.submit(['z']);
    for (let i = 0; i < 5; i++) await runner.release();
    expect(await head).toEqual(['done head']);
    expect(await ok1).toEqual(['done x', 'done y']);
    await expect(bad).rejects.toThrow('rolled back: bad');
    expect(await ok2).toEqual(['done z']);
    expect(runner.transactions).toEqual([['head'], ['x', 'y', 'bad', 'z'], ['x', 'y'], ['bad'], ['z']]);
  });

  it('runs up to `concurrency` transactions at once', async () => {
    const runner = steppedRunner();
    const commit = new HandlerGroupCommit(runner.run, 1, 2);
    const all = [commit.submit(['a']), commit.submit(['b']), commit.submit(['c'])];
    for (let i = 0; i < 3; i++) await runner.release();
    await Promise.all(all);
    expect(runner.inFlightMax()).toBe(2);
  });

  it('adds a transaction in flight after each commit while work waits; a conflict brings it back to one, and guarded transactions are those beside others', async () => {
    let clock = 0;
    const guards: boolean[] = [];
    const failures = new Set<string>();
    const gates: Array<() => void> = [];
    const run = async (items: readonly string[], guarded: boolean): Promise<string[]> => {
      guards.push(guarded);
      await new Promise<void>((resolve) => gates.push(resolve));
      if (items.some((item) => failures.has(item))) throw Object.assign(new Error('lock timeout'), { code: '55P03' });
      return [...items];
    };
    const release = async (): Promise<void> => {
      for (let i = 0; i < 5 && gates.length === 0; i++) await Promise.resolve();
      gates.shift()?.();
      for (let i = 0; i < 5; i++) await Promise.resolve();
    };
    const commit = new HandlerGroupCommit(
      run,
      1,
      3,
      (error) => (error as { code?: string }).code === '55P03',
      () => clock,
    );
    const all = ['a', 'b', 'c', 'd', 'e'].map((item) => commit.submit([item]));
    expect(commit.concurrency).toBe(1);
    await release(); // a commits: b waits, so one more
    expect(commit.concurrency).toBe(2);
    failures.add('b');
    await release(); // b fails with a conflict
    expect(commit.concurrency).toBe(1);
    expect(commit.conflicts).toBe(1);
    await expect(all[1]).rejects.toThrow('lock timeout');
    for (let i = 0; i < 3; i++) await release(); // the rest, one at a time: no increase within the calm period
    expect(commit.concurrency).toBe(1);
    await Promise.all([all[0], all[2], all[3], all[4]]);
    // Only the transactions that ran while more than one was allowed were guarded.
    expect(guards[0]).toBe(false);
    expect(guards.slice(1, 3)).toEqual([true, true]);
    clock += 1000; // the first calm period
    const later = [commit.submit(['f']), commit.submit(['g'])];
    await release();
    expect(commit.concurrency).toBe(2); // calm again: the increase resumes
    await release();
    await Promise.all(later);
  });

  it('adds a transaction in flight only after a full one, and takes one away after one with room', async () => {
    const gates: Array<() => void> = [];
    const run = async (items: readonly string[]): Promise<string[]> => {
      await new Promise<void>((resolve) => gates.push(resolve));
      return [...items];
    };
    const release = async (): Promise<void> => {
      for (let i = 0; i < 5 && gates.length === 0; i++) await Promise.resolve();
      gates.shift()?.();
      for (let i = 0; i < 5; i++) await Promise.resolve();
    };
    const commit = new HandlerGroupCommit(run, 2, 4);
    const first = commit.submit(['a']); // starts alone, with room for one more
    const queued = [commit.submit(['b']), commit.submit(['c']), commit.submit(['d']), commit.submit(['e'])];
    await release(); // [a] had room: work waits, but no increase
    expect(await first).toEqual(['a']);
    expect(commit.concurrency).toBe(1);
    await release(); // [b, c] was full and [d, e] waits: one more
    expect(commit.concurrency).toBe(2);
    await release(); // [d, e] full, nothing waits: no increase
    expect(commit.concurrency).toBe(2);
    await Promise.all(queued);
    const late = commit.submit(['f']);
    await release(); // [f] had room: back to one
    await late;
    expect(commit.concurrency).toBe(1);
  });

  it('refuses bounds out of range and empty units', () => {
    expect(() => new HandlerGroupCommit(async () => [], 0, 1)).toThrow('itemsMax must be in 1..10000, got 0');
    expect(() => new HandlerGroupCommit(async () => [], 1, 65)).toThrow('concurrency must be in 1..64, got 65');
    expect(() => new HandlerGroupCommit(async () => [], 1, 1).submit([])).toThrow('needs at least one item');
  });
});

describe('isTransactionConflict', () => {
  const withCode = (code: string): Error => Object.assign(new Error(code), { code });
  it('is true for a deadlock or a serialization failure, also wrapped by TypeORM or as a cause', () => {
    expect(isTransactionConflict(withCode('40P01'))).toBe(true);
    expect(isTransactionConflict(withCode('40001'))).toBe(true);
    expect(isTransactionConflict(Object.assign(new Error('query failed'), { driverError: withCode('40P01') }))).toBe(true);
    expect(isTransactionConflict(new Error('wrapped', { cause: withCode('40001') }))).toBe(true);
  });
  it('is false for other failures', () => {
    expect(isTransactionConflict(withCode('23505'))).toBe(false);
    expect(isTransactionConflict(withCode('55P03'))).toBe(false);
    expect(isTransactionConflict(new Error('40P01'))).toBe(false);
    expect(isTransactionConflict('40P01')).toBe(false);
  });
});
