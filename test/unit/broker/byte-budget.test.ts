import { describe, expect, it } from 'vitest';
import { ByteBudget } from '../../../src/broker/byte-budget.js';

describe('ByteBudget', () => {
  it('reserves while there is room and hands released bytes to waiters in order', () => {
    const budget = new ByteBudget(100);
    expect(budget.tryReserve(60)).toBe(true);
    expect(budget.tryReserve(50)).toBe(false);
    const granted: string[] = [];
    budget.wait(50, () => granted.push('a'));
    budget.wait(10, () => granted.push('b'));
    // b would fit, but a waits before it: first come, first served.
    expect(budget.tryReserve(10)).toBe(false);
    expect(granted).toEqual([]);
    budget.release(60);
    expect(granted).toEqual(['a', 'b']);
    expect(budget.reserved).toBe(60);
  });

  it('forgets a cancelled waiter and serves the next', () => {
    const budget = new ByteBudget(10);
    expect(budget.tryReserve(10)).toBe(true);
    const granted: string[] = [];
    const cancel = budget.wait(8, () => granted.push('big'));
    budget.wait(2, () => granted.push('small'));
    cancel();
    expect(granted).toEqual([]);
    budget.release(2);
    expect(granted).toEqual(['small']);
    expect(budget.reserved).toBe(10);
  });

  it('refuses to release more than was reserved', () => {
    const budget = new ByteBudget(10);
    expect(() => budget.release(1)).toThrow('released more request bytes than were reserved (-1)');
  });
});
