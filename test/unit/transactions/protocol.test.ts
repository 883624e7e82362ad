import { describe, expect, it } from 'vitest';
import { compileRetryPolicy } from '../../../src/runtime/index.js';
import {
  BranchState,
  GlobalTxState,
  TxMode,
  transition,
  type BranchReply,
  type BranchView,
  type Timing,
  type TxView,
} from '../../../src/transactions/index.js';

const timing: Timing = { resendIntervalMs: 1000, resendIntervalMaxMs: 5000, random: () => 0 };
const stepPolicy = compileRetryPolicy({ maxAttempts: 3, strategy: 'exponential', initialDelayMs: 200, maxDelayMs: 5000, jitter: 0.5 });
const compensationPolicy = compileRetryPolicy({ maxAttempts: 2, strategy: 'fixed', initialDelayMs: 700, maxDelayMs: 700 });

function tx(mode: TxMode, state: GlobalTxState = GlobalTxState.TRYING, extra: Partial<TxView> = {}): TxView {
  return {
    id: 'g1',
    mode,
    state,
    decision: state === GlobalTxState.CONFIRMING || state === GlobalTxState.CANCELLING ? state : null,
    reason: null,
    resendCount: 0,
    compensationRetry: mode === TxMode.SAGA ? compensationPolicy : null,
    ...extra,
  };
}

function branches(...states: BranchState[]): BranchView[] {
  return states.map((state, index) => ({
    branchId: index + 1,
    participant: `p${index + 1}`,
    state,
    attempts: 0,
    error: null,
    result: null,
    retryPolicy: stepPolicy,
  }));
}

const reply = (branchId: number, action: BranchReply['action'], ok: boolean, extra: Partial<BranchReply> = {}) =>
  ({ kind: 'reply', reply: { globalTxId: 'g1', branchId, action, ok, ...extra } }) as const;

const states = (step: { branches: BranchView[] }) => step.branches.map((b) => `${b.branchId}:${b.state}`);
const kinds = (step: { events: Array<{ kind: string }> }) => step.events.map((e) => e.kind);

const { TRYING, CONFIRMING, CANCELLING, CONFIRMED, CANCELLED, FAILED } = GlobalTxState;
const { WAITING, PENDING, TRIED, TRY_FAILED } = BranchState;

describe('coordinator protocol: TCC and 2PC votes', () => {
  it('records a yes vote and decides nothing while another branch has not voted', () => {
    const step = transition(tx(TxMode.TCC), branches(PENDING, PENDING), reply(1, 'try', true, { result: { held: 2 } }), timing);
    expect(step.tx).toBeUndefined();
    expect(step.branches).toEqual([{ ...branches(PENDING)[0], state: TRIED, result: { held: 2 } }]);
    expect(step.commands).toEqual([]);
    expect(step.events).toEqual([{ kind: 'REPLIED', branchId: 1, state: null, detail: 'try: ok' }]);
  });

  it('decides CONFIRMING on the last yes and sends Confirm to every branch', () => {
    const step = transition(tx(TxMode.TCC), branches(TRIED, PENDING), reply(2, 'try', true), timing);
    expect(step.tx).toEqual({ state: CONFIRMING, decision: CONFIRMING, reason: null, resendAfterMs: 1000, resendCount: 0, terminal: false });
    expect(step.commands).toEqual([
      { branchId: 1, action: 'confirm' },
      { branchId: 2, action: 'confirm' },
    ]);
    expect(kinds(step)).toEqual(['REPLIED', 'DECIDED', 'SENT']);
    expect(step.events[2]!.detail).toBe('confirm → branch 1, 2');
  });

  it('decides CANCELLING on the first no: the refusing branch is cancelled without a command, the others get Cancel', () => {
    const step = transition(tx(TxMode.TCC), branches(TRIED, PENDING, PENDING), reply(2, 'try', false, { error: 'no stock' }), timing);
    expect(step.tx).toMatchObject({ state: CANCELLING, decision: CANCELLING, reason: 'p2 refused: no stock', terminal: false });
    expect(states(step)).toEqual(['2:CANCELLED']);
    expect(step.branches[0]!.error).toBe('no stock');
    expect(step.commands).toEqual([
      { branchId: 1, action: 'cancel' },
      { branchId: 3, action: 'cancel' },
    ]);
  });

  it('ends CANCELLED at once when the only branch refuses', () => {
    const step = transition(tx(TxMode.TWO_PHASE), branches(PENDING), reply(1, 'prepare', false, { error: 'locked' }), timing);
    expect(step.tx).toMatchObject({ state: CANCELLED, reason: 'p1 refused: locked', terminal: true, resendAfterMs: null });
    expect(step.ended).toBe(true);
    expect(step.commands).toEqual([]);
  });

  it('ignores a duplicate vote', () => {
    const step = transition(tx(TxMode.TCC), branches(TRIED, PENDING), reply(1, 'try', true), timing);
    expect(step).toEqual({ branches: [], tx: undefined, commands: [], events: [], ended: false });
  });

  it('decides CANCELLING at the deadline, only while undecided', () => {
    const step = transition(tx(TxMode.TCC), branches(TRIED, PENDING), { kind: 'deadline' }, timing);
    expect(step.tx).toMatchObject({ state: CANCELLING, reason: 'deadline passed before every branch voted' });
    expect(step.commands).toEqual([
      { branchId: 1, action: 'cancel' },
      { branchId: 2, action: 'cancel' },
    ]);
    expect(transition(tx(TxMode.TCC, CONFIRMING), branches(TRIED, TRIED), { kind: 'deadline' }, timing).tx).toBeUndefined();
  });

  it('records a vote that arrives after the decision; the rollback already went to that branch', () => {
    const step = transition(tx(TxMode.TWO_PHASE, CANCELLING), branches(CANCELLED, PENDING), reply(2, 'prepare', true), timing);
    expect(states(step)).toEqual(['2:TRIED']);
    expect(step.tx).toBeUndefined();
    expect(step.commands).toEqual([]);
  });
});

describe('coordinator protocol: a heuristic no vote (a 2PC branch that committed its own work)', () => {
  const heuristic = { error: 'PREPARE_WITHOUT_TRANSACTION: committed', retriable: false, heuristic: true };
  const reason = 'p2 (branch 2) voted no but may have committed work outside the global transaction: PREPARE_WITHOUT_TRANSACTION: committed';

  it('fails the branch, rolls back the others, and ends FAILED (not CANCELLED) once they acknowledge', () => {
    const t = tx(TxMode.TWO_PHASE);
    const step = transition(t, branches(TRIED, PENDING, PENDING), reply(2, 'prepare', false, heuristic), timing);
    expect(step.tx).toMatchObject({ state: CANCELLING, decision: CANCELLING, reason, terminal: false });
    expect(states(step)).toEqual(['2:FAILED']);
    expect(step.branches[0]!.error).toBe('PREPARE_WITHOUT_TRANSACTION: committed');
    expect(step.commands).toEqual([
      { branchId: 1, action: 'rollback' },
      { branchId: 3, action: 'rollback' },
    ]);
    expect(kinds(step)).toEqual(['REPLIED', 'BRANCH_FAILED', 'DECIDED', 'SENT']);

    const decided = { ...t, state: CANCELLING, decision: CANCELLING, reason } as TxView;
    const after = branches(TRIED, BranchState.FAILED, TRIED).map((b) => (b.branchId === 2 ? { ...b, error: 'PREPARE_WITHOUT_TRANSACTION: committed' } : b));
    const first = transition(decided, after, reply(1, 'rollback', true), timing);
    expect(first.tx).toBeUndefined();
    after[0]!.state = BranchState.CANCELLED;
    const last = transition(decided, after, reply(3, 'rollback', true), timing);
    expect(last.tx).toMatchObject({ state: FAILED, reason, terminal: true });
    expect(last.ended).toBe(true);
  });

  it('ends FAILED at once when the only branch votes no heuristically; a plain no (PREPARE_ABORTED) still ends CANCELLED', () => {
    const step = transition(tx(TxMode.TWO_PHASE), branches(PENDING), reply(1, 'prepare', false, { ...heuristic }), timing);
    expect(step.tx).toMatchObject({ state: FAILED, decision: CANCELLING, reason: reason.replace('p2 (branch 2)', 'p1 (branch 1)'), terminal: true });
    expect(step.commands).toEqual([]);
    const plain = transition(tx(TxMode.TWO_PHASE), branches(PENDING), reply(1, 'prepare', false, { error: 'PREPARE_ABORTED: x', retriable: false }), timing);
    expect(plain.tx).toMatchObject({ state: CANCELLED, reason: 'p1 refused: PREPARE_ABORTED: x' });
  });

  it('after the deadline decided: the branch fails and the transaction ends FAILED with the heuristic reason', () => {
    const decided = tx(TxMode.TWO_PHASE, CANCELLING, { reason: 'deadline passed before every branch voted' });
    const step = transition(decided, branches(BranchState.CANCELLED, PENDING), reply(2, 'prepare', false, heuristic), timing);
    expect(states(step)).toEqual(['2:FAILED']);
    expect(step.tx).toMatchObject({ state: FAILED, reason, terminal: true });
    // The rollback the deadline sent it is then refused (the fence holds the commit) and changes nothing.
    const late = transition(
      { ...decided, reason },
      branches(BranchState.CANCELLED, BranchState.FAILED),
      reply(2, 'rollback', false, { error: 'ROLLBACK_AFTER_COMMIT', retriable: false }),
      timing,
    );
    expect(late.tx).toBeUndefined();
  });
});

describe('coordinator protocol: acknowledgements and failures', () => {
  it('ends CONFIRMED when the last branch confirms', () => {
    const step = transition(tx(TxMode.TCC, CONFIRMING), branches(BranchState.CONFIRMED, TRIED), reply(2, 'confirm', true), timing);
    expect(step.tx).toMatchObject({ state: CONFIRMED, terminal: true, resendAfterMs: null });
    expect(step.ended).toBe(true);
    expect(kinds(step)).toEqual(['REPLIED', 'ENDED']);
  });

  it('ignores an acknowledgement of the other decision or of a finished transaction', () => {
    expect(transition(tx(TxMode.TCC, CANCELLING), branches(TRIED), reply(1, 'confirm', true), timing).events).toEqual([]);
    expect(transition(tx(TxMode.TCC, CONFIRMED), branches(BranchState.CONFIRMED), reply(1, 'confirm', true), timing).events).toEqual([]);
  });

  it('keeps resending after a retriable refusal, recording the error', () => {
    const step = transition(tx(TxMode.TCC, CONFIRMING), branches(TRIED), reply(1, 'confirm', false, { error: 'db busy' }), timing);
    expect(step.tx).toBeUndefined();
    expect(step.branches).toEqual([expect.objectContaining({ state: TRIED, attempts: 1, error: 'db busy' })]);
  });

  it('fails a branch refused as not retriable, and ends FAILED once the others finished', () => {
    const heuristic = 'HEURISTIC: gone';
    const first = transition(
      tx(TxMode.TWO_PHASE, CONFIRMING),
      branches(TRIED, TRIED),
      reply(1, 'commit', false, { error: heuristic, retriable: false }),
      timing,
    );
    expect(states(first)).toEqual(['1:FAILED']);
    expect(first.tx).toBeUndefined();
    expect(kinds(first)).toEqual(['REPLIED', 'BRANCH_FAILED']);
    const second = transition(tx(TxMode.TWO_PHASE, CONFIRMING), first.branches.concat(branches(TRIED, TRIED)[1]!), reply(2, 'commit', true), timing);
    expect(second.tx).toMatchObject({ state: FAILED, terminal: true, reason: `p1 (branch 1) could not commit: ${heuristic}` });
    expect(second.ended).toBe(true);
  });

  it('resends the decision to the branches that did not acknowledge, with doubling backoff up to the cap', () => {
    const step = transition(tx(TxMode.TCC, CANCELLING, { resendCount: 1 }), branches(CANCELLED, TRIED, TRY_FAILED), { kind: 'resend' }, timing);
    expect(step.commands).toEqual([
      { branchId: 2, action: 'cancel' },
      { branchId: 3, action: 'cancel' },
    ]);
    expect(step.tx).toMatchObject({ state: CANCELLING, resendCount: 2, resendAfterMs: 4000 });
    const capped = transition(tx(TxMode.TCC, CANCELLING, { resendCount: 5 }), branches(TRIED), { kind: 'resend' }, timing);
    expect(capped.tx!.resendAfterMs).toBe(5000);
  });
});

describe('coordinator protocol: 2PC recovery', () => {
  it('answers a repeated yes vote with the decision, to that branch only', () => {
    const committing = transition(tx(TxMode.TWO_PHASE, CONFIRMING), branches(TRIED, TRIED), reply(2, 'prepare', true), timing);
    expect(committing.commands).toEqual([{ branchId: 2, action: 'commit' }]);
    const rolledBack = transition(tx(TxMode.TWO_PHASE, CANCELLED), branches(CANCELLED, CANCELLED), reply(1, 'prepare', true), timing);
    expect(rolledBack.commands).toEqual([{ branchId: 1, action: 'rollback' }]);
    const undecided = transition(tx(TxMode.TWO_PHASE), branches(TRIED, PENDING), reply(1, 'prepare', true), timing);
    expect(undecided.commands).toEqual([]);
  });

  it('does not answer a repeated vote in TCC (a duplicate Try reply)', () => {
    expect(transition(tx(TxMode.TCC, CONFIRMING), branches(TRIED), reply(1, 'try', true), timing).commands).toEqual([]);
  });
});

describe('coordinator protocol: sagas', () => {
  it('runs the steps one at a time and ends CONFIRMED after the last, every step CONFIRMED', () => {
    const first = transition(tx(TxMode.SAGA), branches(PENDING, WAITING, WAITING), reply(1, 'execute', true, { result: 'r1' }), timing);
    expect(states(first)).toEqual(['1:TRIED', '2:PENDING']);
    expect(first.commands).toEqual([{ branchId: 2, action: 'execute' }]);
    const last = transition(tx(TxMode.SAGA), branches(TRIED, TRIED, PENDING), reply(3, 'execute', true), timing);
    expect(last.tx).toMatchObject({ state: CONFIRMED, terminal: true });
    expect(states(last)).toEqual(['1:CONFIRMED', '2:CONFIRMED', '3:CONFIRMED']);
    expect(last.commands).toEqual([]);
  });

  it('retries a step that failed retriably under its policy, then compensates the done steps, last first', () => {
    const retried = transition(tx(TxMode.SAGA), branches(TRIED, PENDING, WAITING), reply(2, 'execute', false, { error: 'timeout' }), timing);
    expect(retried.tx).toMatchObject({ state: TRYING, resendAfterMs: 200 });
    expect(retried.branches).toEqual([expect.objectContaining({ branchId: 2, state: PENDING, attempts: 1, error: 'timeout' })]);
    expect(retried.events.map((e) => e.detail)).toEqual(['execute: timeout', 'attempt 2 of 3 in 200 ms']);
    const resent = transition(
      tx(TxMode.SAGA),
      retried.branches.length === 1 ? [branches(TRIED)[0]!, retried.branches[0]!, branches(TRIED, TRIED, WAITING)[2]!] : [],
      { kind: 'resend' },
      timing,
    );
    expect(resent.commands).toEqual([{ branchId: 2, action: 'execute' }]);
    expect(resent.tx).toMatchObject({ state: TRYING, resendAfterMs: null });

    const lastTry = branches(TRIED, TRIED, PENDING, WAITING);
    lastTry[2]!.attempts = 2;
    const failed = transition(tx(TxMode.SAGA), lastTry, reply(3, 'execute', false, { error: 'timeout' }), timing);
    expect(failed.tx).toMatchObject({ state: CANCELLING, reason: 'p3 failed: timeout' });
    expect(states(failed).sort()).toEqual(['3:CANCELLED', '4:CANCELLED']);
    expect(failed.commands).toEqual([{ branchId: 2, action: 'compensate' }]);
  });

  it('compensates at once on a non-retriable failure, and ends CANCELLED when step 1 fails', () => {
    const step = transition(tx(TxMode.SAGA), branches(PENDING, WAITING), reply(1, 'execute', false, { error: 'declined', retriable: false }), timing);
    expect(step.tx).toMatchObject({ state: CANCELLED, reason: 'p1 failed: declined', terminal: true });
    expect(states(step)).toEqual(['1:CANCELLED', '2:CANCELLED']);
    expect(step.commands).toEqual([]);
  });

  it('compensates down to step 1, then ends CANCELLED', () => {
    const next = transition(tx(TxMode.SAGA, CANCELLING), branches(TRIED, TRIED, CANCELLED), reply(2, 'compensate', true), timing);
    expect(states(next)).toEqual(['2:CANCELLED']);
    expect(next.commands).toEqual([{ branchId: 1, action: 'compensate' }]);
    const done = transition(tx(TxMode.SAGA, CANCELLING), branches(TRIED, CANCELLED, CANCELLED), reply(1, 'compensate', true), timing);
    expect(done.tx).toMatchObject({ state: CANCELLED, terminal: true });
  });

  it('at the deadline compensates the step in flight first (its fence makes that empty if it never ran)', () => {
    const step = transition(tx(TxMode.SAGA), branches(TRIED, PENDING, WAITING), { kind: 'deadline' }, timing);
    expect(step.tx).toMatchObject({ state: CANCELLING, reason: 'deadline passed before every step completed' });
    expect(step.commands).toEqual([{ branchId: 2, action: 'compensate' }]);
    expect(states(step)).toEqual(['3:CANCELLED']);
    const late = transition(tx(TxMode.SAGA, CANCELLING), branches(TRIED, PENDING, CANCELLED), reply(2, 'execute', true), timing);
    expect(states(late)).toEqual(['2:PENDING']);
    expect(late.commands).toEqual([]);
  });

  it('retries a failing compensation under the compensation policy, then ends FAILED, visibly', () => {
    const once = transition(tx(TxMode.SAGA, CANCELLING), branches(TRIED, CANCELLED), reply(1, 'compensate', false, { error: 'ledger down' }), timing);
    expect(once.tx).toMatchObject({ state: CANCELLING, resendAfterMs: 700 });
    expect(once.branches).toEqual([expect.objectContaining({ state: TRIED, attempts: 1 })]);
    const twice = transition(
      tx(TxMode.SAGA, CANCELLING),
      [once.branches[0]!, branches(TRIED, CANCELLED)[1]!],
      reply(1, 'compensate', false, { error: 'ledger down' }),
      timing,
    );
    expect(twice.tx).toMatchObject({ state: FAILED, terminal: true, reason: 'compensation of p1 failed: ledger down' });
    expect(twice.ended).toBe(true);
    expect(kinds(twice)).toEqual(['REPLIED', 'BRANCH_FAILED', 'ENDED']);
  });

  it('fails at once on a compensation refused as not retriable', () => {
    const step = transition(
      tx(TxMode.SAGA, CANCELLING),
      branches(TRIED),
      reply(1, 'compensate', false, { error: 'refund window closed', retriable: false }),
      timing,
    );
    expect(step.tx).toMatchObject({ state: FAILED, reason: 'compensation of p1 failed: refund window closed' });
  });
});

describe('coordinator protocol: operators', () => {
  it('aborts an undecided transaction and refuses to abort a decided one', () => {
    const step = transition(tx(TxMode.TWO_PHASE), branches(TRIED, PENDING), { kind: 'abort', reason: 'stuck order' }, timing);
    expect(step.tx).toMatchObject({ state: CANCELLING, reason: 'aborted by operator: stuck order' });
    expect(kinds(step)).toEqual(['OPERATOR', 'DECIDED', 'SENT']);
    expect(() => transition(tx(TxMode.TCC, CONFIRMING), branches(TRIED), { kind: 'abort', reason: 'x' }, timing)).toThrow(
      'global transaction g1 is CONFIRMING: only an undecided (TRYING) one can be aborted',
    );
  });

  it('reopens a FAILED saga in its decision and compensates again', () => {
    const failed = branches(TRIED, BranchState.FAILED, CANCELLED);
    failed[1]!.attempts = 2;
    const step = transition(tx(TxMode.SAGA, FAILED, { decision: CANCELLING }), failed, { kind: 'retry' }, timing);
    expect(step.tx).toMatchObject({ state: CANCELLING, terminal: false, resendCount: 0, resendAfterMs: 1000 });
    expect(step.branches).toEqual([expect.objectContaining({ branchId: 2, state: TRIED, attempts: 0 })]);
    expect(step.commands).toEqual([{ branchId: 2, action: 'compensate' }]);
  });

  it('sends phase one again to branches that have not voted, and refuses to retry an ended transaction', () => {
    const step = transition(tx(TxMode.TCC), branches(TRIED, PENDING), { kind: 'retry' }, timing);
    expect(step.commands).toEqual([{ branchId: 2, action: 'try' }]);
    expect(() => transition(tx(TxMode.TCC, CONFIRMED), branches(BranchState.CONFIRMED), { kind: 'retry' }, timing)).toThrow(
      'global transaction g1 already ended CONFIRMED; there is nothing to retry',
    );
  });
});

describe('coordinator protocol: a decision nobody acknowledges (a participant no service declares)', () => {
  const bounded: Timing = { ...timing, decisionResendsMax: 3 };

  it('resends up to decisionResendsMax times, then fails the silent branches and ends FAILED naming them', () => {
    const typo = branches(CANCELLED, PENDING);
    typo[1]!.participant = 'roomz.reserve';
    const last = transition(tx(TxMode.TCC, CANCELLING, { resendCount: 2 }), typo, { kind: 'resend' }, bounded);
    expect(last.commands).toEqual([{ branchId: 2, action: 'cancel' }]);
    expect(last.tx).toMatchObject({ state: CANCELLING, resendCount: 3 });

    const giveUp = transition(tx(TxMode.TCC, CANCELLING, { resendCount: 3 }), typo, { kind: 'resend' }, bounded);
    expect(giveUp.commands).toEqual([]);
    expect(giveUp.tx).toMatchObject({
      state: FAILED,
      terminal: true,
      resendAfterMs: null,
      reason: 'gave up after 3 resends of cancel: roomz.reserve (branch 2) never answered',
    });
    expect(giveUp.ended).toBe(true);
    expect(giveUp.branches).toEqual([expect.objectContaining({ branchId: 2, state: BranchState.FAILED, error: 'no answer to cancel after 3 resends' })]);
    expect(kinds(giveUp)).toEqual(['BRANCH_FAILED', 'ENDED']);
    // Without a bound (the default of the pure function), it keeps resending.
    expect(transition(tx(TxMode.TCC, CANCELLING, { resendCount: 3 }), typo, { kind: 'resend' }, timing).tx).toMatchObject({
      state: CANCELLING,
      resendCount: 4,
    });
  });

  it('names a branch that kept refusing with its last error, and a saga compensation that answers is bounded by its policy, not by the resends', () => {
    const refusing = branches(TRIED, TRIED);
    refusing[0]!.attempts = 4;
    refusing[0]!.error = 'ledger closed';
    const step = transition(tx(TxMode.TCC, CONFIRMING, { resendCount: 3 }), refusing, { kind: 'resend' }, bounded);
    expect(step.tx!.reason).toBe('gave up after 3 resends of confirm: p1 (branch 1) refused: ledger closed; p2 (branch 2) never answered');

    const saga = transition(tx(TxMode.SAGA, CANCELLING, { resendCount: 3 }), branches(TRIED, TRIED), reply(2, 'compensate', false, { error: 'busy' }), bounded);
    expect(saga.tx).toMatchObject({ state: CANCELLING, resendCount: 0 });
  });
});

describe('coordinator protocol: ending by hand (concordat tx end)', () => {
  const end = (as: 'CANCELLED' | 'FAILED', force = false) => ({ kind: 'end', as, reason: 'typo in the participant name', by: 'alice@ops', force }) as const;

  it('ends a FAILED transaction CANCELLED without sending anything, recording who and why', () => {
    const step = transition(tx(TxMode.TCC, FAILED, { decision: CANCELLING }), branches(CANCELLED, BranchState.FAILED), end('CANCELLED'), timing);
    expect(step.commands).toEqual([]);
    expect(step.tx).toMatchObject({
      state: CANCELLED,
      terminal: true,
      resendAfterMs: null,
      reason: 'ended by hand by alice@ops: typo in the participant name',
    });
    expect(step.ended).toBe(true);
    expect(step.events).toEqual([
      { kind: 'OPERATOR', branchId: null, state: null, detail: 'end as CANCELLED by alice@ops: typo in the participant name' },
      { kind: 'ENDED', branchId: null, state: CANCELLED, detail: 'ended by hand by alice@ops: typo in the participant name' },
    ]);
  });

  it('refuses while branches may still act unless forced, names them, and refuses what already ended', () => {
    expect(() => transition(tx(TxMode.TCC, CANCELLING), branches(CANCELLED, PENDING), end('FAILED'), timing)).toThrow(
      'global transaction g1 is CANCELLING: branches may still act: p2 (branch 2, PENDING). Ending it by hand sends them nothing more, and what they hold stays held; ' +
        'the coordinator sends its decision until they answer, and gives up after its resends (decisionResendsMax), ending it FAILED. Pass --force to end it anyway',
    );
    expect(() => transition(tx(TxMode.TCC), branches(TRIED, PENDING), end('CANCELLED'), timing)).toThrow('tx abort rolls it back instead');
    const forced = transition(tx(TxMode.TCC, CANCELLING), branches(CANCELLED, PENDING), end('FAILED', true), timing);
    expect(forced.tx).toMatchObject({ state: FAILED, terminal: true });
    expect(forced.commands).toEqual([]);
    expect(() => transition(tx(TxMode.TCC, FAILED, { decision: CONFIRMING }), branches(BranchState.FAILED), end('CANCELLED'), timing)).toThrow(
      'its decision was CONFIRMING, so branches may have confirmed',
    );
    expect(() => transition(tx(TxMode.TCC, FAILED, { decision: CANCELLING }), branches(BranchState.FAILED), end('FAILED'), timing)).toThrow(
      'it has already ended FAILED',
    );
    expect(() => transition(tx(TxMode.TCC, CANCELLED), branches(CANCELLED), end('FAILED', true), timing)).toThrow(
      'global transaction g1 is CANCELLED: it has already ended; there is nothing to end',
    );
  });
});

describe('coordinator protocol: a saga step nobody answers', () => {
  it('gives up on its compensation after decisionResendsMax resends, compensates the steps below, then ends FAILED naming it', () => {
    const bounded: Timing = { ...timing, decisionResendsMax: 2 };
    const steps = branches(TRIED, PENDING, CANCELLED);
    steps[1]!.participant = 'roomz.reserve';
    const giveUp = transition(tx(TxMode.SAGA, CANCELLING, { resendCount: 2 }), steps, { kind: 'resend' }, bounded);
    expect(giveUp.tx).toMatchObject({
      state: CANCELLING,
      terminal: false,
      resendCount: 0,
      reason: 'gave up after 2 resends of compensate: roomz.reserve (branch 2) never answered',
    });
    expect(states(giveUp)).toEqual(['2:FAILED']);
    expect(giveUp.commands).toEqual([{ branchId: 1, action: 'compensate' }]);

    const after = steps.map((b) => ({ ...b, ...giveUp.branches.find((c) => c.branchId === b.branchId) }));
    const last = transition(tx(TxMode.SAGA, CANCELLING, { reason: giveUp.tx!.reason }), after, reply(1, 'compensate', true), bounded);
    expect(last.tx).toMatchObject({ state: FAILED, terminal: true, reason: 'gave up after 2 resends of compensate: roomz.reserve (branch 2) never answered' });
    expect(states(last)).toEqual(['1:CANCELLED']);
  });
});
