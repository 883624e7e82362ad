import { describe, expect, it } from 'vitest';
import { GroupCommit } from '../../../src/transactions/coordinator/group-commit.js';
import { BranchState, GlobalTxState, TxMode, advance, transition, type BranchView, type TxView } from '../../../src/transactions/index.js';

/** A run that records its batches and resolves when the test says so. */
function recorder(fail: (items: number[]) => boolean = () => false) {
  const batches: number[][] = [];
  const gates: Array<() => void> = [];
  const run = async (items: number[]): Promise<string[]> => {
    batches.push(items);
    await new Promise<void>((resolve) => gates.push(resolve));
    if (fail(items)) throw new Error(`batch ${items.join(',')} failed`);
    return items.map((i) => `done ${i}`);
  };
  const open = async (): Promise<void> => {
    while (gates.length === 0) await new Promise((r) => setImmediate(r));
    gates.shift()!();
  };
  return { batches, run, open };
}

describe('GroupCommit', () => {
  it('starts at once with a lone item, and batches what arrives while a transaction is in flight', async () => {
    const r = recorder();
    const commit = new GroupCommit(r.run, 100);
    const first = commit.submit(1);
    const rest = [2, 3, 4].map((i) => commit.submit(i));
    expect(r.batches).toEqual([[1]]);
    expect(commit.waiting).toBe(3);
    await r.open();
    expect(await first).toBe('done 1');
    await r.open();
    expect(await Promise.all(rest)).toEqual(['done 2', 'done 3', 'done 4']);
    expect(r.batches).toEqual([[1], [2, 3, 4]]);
  });

  it('bounds a batch by itemsMax', async () => {
    const r = recorder();
    const commit = new GroupCommit(r.run, 2);
    const all = [1, 2, 3, 4, 5].map((i) => commit.submit(i));
    for (let i = 0; i < 3; i++) await r.open();
    await Promise.all(all);
    expect(r.batches).toEqual([[1], [2, 3], [4, 5]]);
  });

  it('runs the items of a failed batch alone, so only the poison one fails', async () => {
    const r = recorder((items) => items.includes(3));
    const commit = new GroupCommit(r.run, 100);
    const first = commit.submit(1);
    const rest = [2, 3, 4].map((i) => commit.submit(i).catch((error: Error) => error.message));
    for (let i = 0; i < 5; i++) await r.open();
    expect(await first).toBe('done 1');
    expect(await Promise.all(rest)).toEqual(['done 2', 'batch 3 failed', 'done 4']);
    expect(r.batches).toEqual([[1], [2, 3, 4], [2], [3], [4]]);
  });

  it('refuses bounds outside their ranges', () => {
    expect(() => new GroupCommit(async () => [], 0)).toThrow('itemsMax must be in 1..10000, got 0');
    expect(() => new GroupCommit(async () => [], 1, 65)).toThrow('concurrency must be in 1..64, got 65');
  });
});

describe('advance: two replies of one global transaction in one batch', () => {
  it('computes the second transition from the state the first left', () => {
    const tx: TxView = { id: 'g', mode: TxMode.TCC, state: GlobalTxState.TRYING, decision: null, reason: null, resendCount: 0, compensationRetry: null };
    const branches: BranchView[] = [1, 2].map((branchId) => ({
      branchId,
      participant: `p${branchId}`,
      state: BranchState.PENDING,
      attempts: 0,
      error: null,
      result: null,
      retryPolicy: null,
    }));
    const timing = { resendIntervalMs: 1000, resendIntervalMaxMs: 5000, random: () => 0 };
    const first = transition(tx, branches, { kind: 'reply', reply: { globalTxId: 'g', branchId: 1, action: 'try', ok: true } }, timing);
    const after = advance(tx, branches, first);
    expect(after.branches.map((b) => b.state)).toEqual(['TRIED', 'PENDING']);
    const second = transition(after.tx, after.branches, { kind: 'reply', reply: { globalTxId: 'g', branchId: 2, action: 'try', ok: true } }, timing);
    expect(second.tx).toMatchObject({ state: 'CONFIRMING' });
    expect(second.commands).toEqual([
      { branchId: 1, action: 'confirm' },
      { branchId: 2, action: 'confirm' },
    ]);
    // Had the second been computed from the stale view, branch 1 would still be PENDING and nothing decided.
    expect(transition(tx, branches, { kind: 'reply', reply: { globalTxId: 'g', branchId: 2, action: 'try', ok: true } }, timing).tx).toBeUndefined();
  });
});
