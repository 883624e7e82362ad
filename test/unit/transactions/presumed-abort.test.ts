import { describe, expect, it } from 'vitest';
import { BranchAction } from '../../../src/transactions/index.js';
import { fenceRetentionWarning } from '../../../src/transactions/coordinator/coordinator.js';
import { decisionMessageId, presumedAbortMessageId } from '../../../src/transactions/coordinator/messages.js';

const tx = '0b8f5b8e-8f7e-4c1e-9d7e-2d1f0a9c6b11';
const DAY_MS = 24 * 3600 * 1000;

describe('presumed abort message IDs', () => {
  it('differ from the decision ID; one per reply, the same for the same reply', () => {
    const first = presumedAbortMessageId(tx, 1, BranchAction.CANCEL, 'reply-1');
    expect(first).not.toBe(decisionMessageId(tx, 1, BranchAction.CANCEL));
    expect(presumedAbortMessageId(tx, 1, BranchAction.CANCEL, 'reply-1')).toBe(first);
    expect(presumedAbortMessageId(tx, 1, BranchAction.CANCEL, 'reply-2')).not.toBe(first);
    expect(presumedAbortMessageId(tx, 2, BranchAction.CANCEL, 'reply-1')).not.toBe(first);
    expect(first).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });
});

describe('fence retention against the inbox dedup window', () => {
  it('warns, naming both values and the options, when the fence retention is shorter', () => {
    const warning = fenceRetentionWarning(7 * DAY_MS, 14 * DAY_MS, 'orders');
    expect(warning).toContain(`fenceRetentionMs (${7 * DAY_MS} ms)`);
    expect(warning).toContain(`inbox dedup window of app 'orders' (inbox.dedupWindowMs: ${14 * DAY_MS} ms)`);
    expect(warning).toContain(`raise fenceRetentionMs (COORDINATOR_OPTIONS) to at least ${14 * DAY_MS}`);
    expect(fenceRetentionWarning(7 * DAY_MS, Infinity, 'orders')).toContain('inbox.dedupWindowMs: Infinity');
  });
  it('is quiet when the fence retention covers the window', () => {
    expect(fenceRetentionWarning(7 * DAY_MS, 7 * DAY_MS, 'orders')).toBeUndefined();
    expect(fenceRetentionWarning(14 * DAY_MS, 7 * DAY_MS, 'orders')).toBeUndefined();
  });
});
