/**
 * The coordinator's state machine for TCC, 2PC and sagas, as a pure
 * function: `transition(tx, branches, input, timing)` returns what to write
 * (branch rows, the global transaction row, timeline events) and which
 * commands to send. The coordinator applies it in one database transaction
 * with the reply it consumed and the commands it sends, so a transition
 * happens exactly once whoever drives it (a reply, the deadline scan, the
 * resend scan, an operator).
 *
 * Sources: two-phase commit with presumed abort (C. Mohan, B. Lindsay,
 * R. Obermarck, "Transaction Management in the R* Distributed Database
 * Management System", ACM TODS 11(4), 1986); TCC (P. Helland, "Life beyond
 * Distributed Transactions", CIDR 2007; the TCC mode of Seata); sagas
 * (H. Garcia-Molina, K. Salem, "Sagas", SIGMOD 1987): steps run one at a
 * time, and on failure the completed steps are compensated in reverse order.
 *
 * Votes (phase one):
 * - TCC and 2PC send phase one to every branch at begin; all yes decides
 *   CONFIRMING; the first no, the deadline or an operator's abort decides
 *   CANCELLING. A branch that voted no holds nothing, so it is marked
 *   CANCELLED without a command.
 * - A saga sends step 1; each success sends the next step; after the last
 *   the saga is CONFIRMED. A step that fails retriably is sent again after
 *   its policy's delay while attempts remain; otherwise (or at the deadline)
 *   the saga decides CANCELLING.
 *
 * Decisions (phase two): commands go to the branches that hold something and
 * are sent again with backoff until acknowledged. A saga compensates one
 * step at a time, highest first, including the step in flight at the
 * deadline (the participant's fence turns that into an empty compensation if
 * the step never ran, and refuses the step if it arrives later). A refusal
 * marked not retriable, or a compensation that keeps failing past its
 * policy, fails the branch; the global transaction then ends FAILED, for an
 * operator (`concordat tx retry` reopens it). So does a phase-one no marked
 * heuristic (a 2PC branch that committed its own work instead of preparing
 * it): the other branches are rolled back, and the end is FAILED. So does a
 * decision that `Timing.decisionResendsMax` resends in a row did not get
 * acknowledged (a participant no running service declares, a participant
 * down for good): its silent branches fail and the reason names them (see
 * {@link giveUp}). An operator can also end any global transaction by hand
 * (`concordat tx end`, see {@link endByHand}).
 *
 * @module
 */

import { ConcordatError, ErrorCode } from '../../errors.js';
import { retryDelayMs, type CompiledRetryPolicy } from '../../runtime/index.js';
import { backoffMs as cappedBackoffMs } from '../../util/index.js';
import { MODE_ACTIONS, type BranchAction, type BranchReply } from './messages.js';
import { BranchState, GlobalTxState, TxEventKind, TxMode, type Decision } from './states.js';

/** What the state machine reads of a global transaction row. */
export interface TxView {
  id: string;
  mode: TxMode;
  state: GlobalTxState;
  /** The decision taken, kept when the transaction ends FAILED. */
  decision: Decision | null;
  reason: string | null;
  resendCount: number;
  /** Saga: the policy of compensations that fail. */
  compensationRetry: CompiledRetryPolicy | null;
}

/** What the state machine reads of a branch row. */
export interface BranchView {
  branchId: number;
  participant: string;
  state: BranchState;
  /** Failures reported in the current phase (saga step retries, compensation failures). */
  attempts: number;
  error: string | null;
  result: unknown;
  /** Saga step: its retry policy. */
  retryPolicy: CompiledRetryPolicy | null;
}

/** What drives one transition: a branch's reply, the deadline, a resend, or an operator's abort, retry or end. */
export type TxInput =
  | { kind: 'reply'; reply: BranchReply }
  /** The deadline passed (the scan saw it on the database clock). */
  | { kind: 'deadline' }
  /** `resend_at` passed: send again what is not acknowledged (or a saga step's retry). */
  | { kind: 'resend' }
  /** An operator's abort; `by` names who (`alice@host`, `alice (console)`) in the timeline. */
  | { kind: 'abort'; reason: string; by?: string }
  /** An operator's retry; `by` names who in the timeline. */
  | { kind: 'retry'; by?: string }
  | EndInput;

/** End states an operator may end a global transaction in by hand (`concordat tx end --as`). */
export type EndByHandState = typeof GlobalTxState.CANCELLED | typeof GlobalTxState.FAILED;

/** An operator's `concordat tx end`: ends the global transaction in `as` without sending anything (see {@link endByHand}). */
export interface EndInput {
  kind: 'end';
  as: EndByHandState;
  /** Why, for the timeline and the reason. */
  reason: string;
  /** Who, for the timeline and the reason (`alice@host`). */
  by: string;
  /** End it even though branches may still act, or as CANCELLED against a CONFIRMING decision. */
  force: boolean;
}

/** The timing the state machine applies (from the compiled coordinator options; see timingOf). */
export interface Timing {
  /** First wait before sending a decision's commands again, in ms; doubles per resend. */
  resendIntervalMs: number;
  /** Longest wait between resends, in ms. */
  resendIntervalMaxMs: number;
  /**
   * Resends of a decision (or of one saga compensation) in a row without an
   * acknowledgement after which the coordinator gives up: the silent
   * branches fail and the global transaction ends FAILED. Undefined: never
   * give up.
   */
  decisionResendsMax?: number;
  /** [0, 1) random source for retry jitter (injectable for tests). */
  random: () => number;
}

/** The global transaction row's new values after a transition. */
export interface TxChange {
  state: GlobalTxState;
  reason: string | null;
  decision: Decision | null;
  /** Next resend from now, in ms, or null for none. */
  resendAfterMs: number | null;
  resendCount: number;
  terminal: boolean;
}

/** One timeline row (`concordat.global_tx_event`) a transition writes. */
export interface TxEvent {
  kind: TxEventKind;
  branchId: number | null;
  state: string | null;
  detail: string | null;
}

/** One command a transition sends: `action` to branch `branchId`. */
export interface Command {
  branchId: number;
  action: BranchAction;
}

/** What a transition writes and sends; the coordinator applies all of it in one database transaction. */
export interface Transition {
  /** New values of the branches that changed. */
  branches: BranchView[];
  /** New values of the global transaction row, when it changed. */
  tx: TxChange | undefined;
  commands: Command[];
  events: TxEvent[];
  /** The transaction ended: publish its outcome. */
  ended: boolean;
}

/**
 * Computes one transition.
 * @throws ConcordatError GLOBAL_TX_STATE_INVALID for an operator action the state does not allow.
 */
export function transition(tx: TxView, branches: readonly BranchView[], input: TxInput, timing: Timing): Transition {
  const draft = new Draft(tx, branches, timing);
  switch (input.kind) {
    case 'reply':
      onReply(draft, input.reply);
      break;
    case 'deadline':
      if (draft.tx.state === GlobalTxState.TRYING) {
        const what = tx.mode === TxMode.SAGA ? 'every step completed' : 'every branch voted';
        decide(draft, GlobalTxState.CANCELLING, `deadline passed before ${what}`);
      }
      break;
    case 'resend':
      resend(draft);
      break;
    case 'abort':
      abort(draft, input.reason, input.by);
      break;
    case 'retry':
      retry(draft, input.by);
      break;
    case 'end':
      endByHand(draft, input);
      break;
  }
  return draft.finish();
}

/** The working copy a transition edits; it remembers what changed. */
class Draft {
  readonly tx: TxView & { resendAfterMs: number | null | undefined };
  readonly branches: BranchView[];
  readonly commands: Command[] = [];
  readonly events: TxEvent[] = [];
  private readonly changed = new Set<number>();
  private txChanged = false;
  terminal = false;
  ended = false;

  constructor(
    tx: TxView,
    branches: readonly BranchView[],
    readonly timing: Timing,
  ) {
    this.tx = { ...tx, resendAfterMs: undefined };
    this.branches = branches.map((branch) => ({ ...branch }));
  }

  get actions() {
    return MODE_ACTIONS[this.tx.mode];
  }

  branch(branchId: number): BranchView | undefined {
    return this.branches.find((b) => b.branchId === branchId);
  }

  setBranch(branch: BranchView, patch: Partial<Omit<BranchView, 'branchId' | 'participant'>>): void {
    Object.assign(branch, patch);
    this.changed.add(branch.branchId);
  }

  setTx(patch: Partial<Omit<TxView, 'id' | 'mode'>> & { resendAfterMs?: number | null }): void {
    Object.assign(this.tx, patch);
    this.txChanged = true;
  }

  send(branch: BranchView, action: BranchAction): void {
    this.commands.push({ branchId: branch.branchId, action });
  }

  event(kind: TxEventKind, branchId: number | null = null, state: string | null = null, detail: string | null = null): void {
    this.events.push({ kind, branchId, state, detail });
  }

  /** Resend backoff after `resends` resends: resendIntervalMs × 2^resends, capped. */
  backoffMs(resends: number): number {
    return cappedBackoffMs({ firstMs: this.timing.resendIntervalMs, maxMs: this.timing.resendIntervalMaxMs }, resends + 1);
  }

  finish(): Transition {
    if (this.commands.length > 0) {
      const byAction = new Map<string, number[]>();
      for (const c of this.commands) byAction.set(c.action, [...(byAction.get(c.action) ?? []), c.branchId]);
      for (const [action, ids] of byAction) this.event(TxEventKind.SENT, null, null, `${action} → branch ${ids.join(', ')}`);
    }
    const { tx } = this;
    return {
      branches: this.branches.filter((b) => this.changed.has(b.branchId)),
      tx: this.txChanged
        ? {
            state: tx.state,
            reason: tx.reason,
            decision: tx.decision,
            resendAfterMs: tx.resendAfterMs === undefined ? null : tx.resendAfterMs,
            resendCount: tx.resendCount,
            terminal: this.terminal,
          }
        : undefined,
      commands: this.commands,
      events: this.events,
      ended: this.ended,
    };
  }
}

function onReply(d: Draft, reply: BranchReply): void {
  const branch = d.branch(reply.branchId);
  if (branch === undefined) return;
  if (reply.action === d.actions.phaseOne) return onVote(d, branch, reply);
  const expected = reply.action === d.actions.commit ? GlobalTxState.CONFIRMING : reply.action === d.actions.rollback ? GlobalTxState.CANCELLING : null;
  if (expected !== null) onAcknowledgement(d, branch, reply, expected);
}

function describeReply(reply: BranchReply): string {
  return reply.ok ? `${reply.action}: ok` : `${reply.action}: ${reply.error ?? 'refused'}${reply.retriable === false ? ' (not retriable)' : ''}`;
}

function onVote(d: Draft, branch: BranchView, reply: BranchReply): void {
  if (branch.state !== BranchState.PENDING) return onRepeatedVote(d, branch, reply);
  d.event(TxEventKind.REPLIED, branch.branchId, null, describeReply(reply));
  const result = reply.result === undefined ? branch.result : reply.result;
  if (!reply.ok && reply.heuristic === true && d.tx.mode !== TxMode.SAGA) return onHeuristicVote(d, branch, reply, result);
  if (d.tx.state !== GlobalTxState.TRYING) {
    // Decided already (deadline, abort): the rollback command went to this
    // branch with the decision. Record the vote; a saga keeps the step
    // PENDING, as it is being compensated.
    const state = d.tx.mode === TxMode.SAGA ? BranchState.PENDING : reply.ok ? BranchState.TRIED : BranchState.TRY_FAILED;
    d.setBranch(branch, { state, result, error: reply.ok ? branch.error : (reply.error ?? 'refused') });
    return;
  }
  if (d.tx.mode === TxMode.SAGA) return onStepReply(d, branch, reply, result);
  if (reply.ok) {
    d.setBranch(branch, { state: BranchState.TRIED, result });
    // Sequential prepares (2PC): the next branch is asked once this one voted yes.
    const next = d.branches.find((b) => b.state === BranchState.WAITING);
    if (next !== undefined) {
      d.setBranch(next, { state: BranchState.PENDING });
      d.send(next, d.actions.phaseOne);
      return;
    }
    if (d.branches.every((b) => b.state === BranchState.TRIED)) decide(d, GlobalTxState.CONFIRMING, null);
  } else {
    const error = reply.error ?? 'no reason given';
    d.setBranch(branch, { state: BranchState.TRY_FAILED, result, error });
    decide(d, GlobalTxState.CANCELLING, `${branch.participant} refused: ${error}`);
  }
}

/**
 * A no vote marked heuristic: the branch prepared nothing, but work of its
 * own may have committed outside the global transaction (a 2PC `@Prepare`
 * that ended the branch transaction itself). Rolling the other branches back
 * is still the decision (this branch cannot take part in a commit), but the
 * transaction must not end CANCELLED as if nothing happened: the branch
 * FAILS (no rollback is sent to it: there is nothing prepared, and its fence
 * may hold the commit), and once the others acknowledge, the transaction
 * ends FAILED with a reason naming the branch and its error, for an
 * operator. Decided already (deadline, abort): the same, the rollback it was
 * sent will find nothing to do.
 */
function onHeuristicVote(d: Draft, branch: BranchView, reply: BranchReply, result: unknown): void {
  const error = reply.error ?? 'no reason given';
  d.setBranch(branch, { state: BranchState.FAILED, result, error });
  d.event(TxEventKind.BRANCH_FAILED, branch.branchId, BranchState.FAILED, error);
  if (d.tx.state === GlobalTxState.TRYING) return decide(d, GlobalTxState.CANCELLING, heuristicReason(branch, error));
  d.setTx({ reason: heuristicReason(branch, error) });
  finishIfDone(d);
}

/** Reason of a global transaction one of whose branches voted no heuristically (see {@link onHeuristicVote}). */
function heuristicReason(branch: Pick<BranchView, 'participant' | 'branchId'>, error: string): string {
  return `${branch.participant} (branch ${branch.branchId}) voted no but may have committed work outside the global transaction: ${error}`;
}

/**
 * A vote for a branch that already voted: a duplicate, or a 2PC participant
 * that restarted with the branch still prepared and asks for the decision
 * (its recovery votes again). The answer is the decision, sent to that branch
 * now; an undecided transaction keeps the first vote.
 */
function onRepeatedVote(d: Draft, branch: BranchView, reply: BranchReply): void {
  if (d.tx.mode !== TxMode.TWO_PHASE || !reply.ok) return;
  const commit = d.actions.commit!;
  const rollback = d.actions.rollback;
  if (branch.state === BranchState.CONFIRMED || d.tx.state === GlobalTxState.CONFIRMING) d.send(branch, commit);
  else if (branch.state === BranchState.CANCELLED || d.tx.state === GlobalTxState.CANCELLING) d.send(branch, rollback);
  else if (branch.state === BranchState.FAILED && d.tx.decision !== null) d.send(branch, d.tx.decision === GlobalTxState.CONFIRMING ? commit : rollback);
  else return;
  d.event(TxEventKind.REPLIED, branch.branchId, null, `${reply.action}: ok again (recovery); decision sent to the branch`);
}

function onStepReply(d: Draft, branch: BranchView, reply: BranchReply, result: unknown): void {
  if (reply.ok) {
    d.setBranch(branch, { state: BranchState.TRIED, result, attempts: 0 });
    const next = d.branches.find((b) => b.state === BranchState.WAITING);
    if (next === undefined) return end(d, GlobalTxState.CONFIRMED, null);
    d.setBranch(next, { state: BranchState.PENDING, attempts: 0 });
    d.send(next, d.actions.phaseOne);
    return;
  }
  const error = reply.error ?? 'no reason given';
  const attempts = branch.attempts + 1;
  const policy = branch.retryPolicy;
  if (reply.retriable !== false && policy !== null && attempts < policy.maxAttempts) {
    const delayMs = retryDelayMs(policy, attempts, d.timing.random);
    d.setBranch(branch, { attempts, error });
    d.setTx({ resendAfterMs: delayMs });
    d.event(TxEventKind.RETRY_SCHEDULED, branch.branchId, null, `attempt ${attempts + 1} of ${policy.maxAttempts} in ${delayMs} ms`);
    return;
  }
  d.setBranch(branch, { state: BranchState.TRY_FAILED, attempts, error });
  decide(d, GlobalTxState.CANCELLING, `${branch.participant} failed: ${error}`);
}

function onAcknowledgement(d: Draft, branch: BranchView, reply: BranchReply, expected: Decision): void {
  if (d.tx.state !== expected) return; // a late duplicate
  const done = expected === GlobalTxState.CONFIRMING ? BranchState.CONFIRMED : BranchState.CANCELLED;
  if (branch.state === done || branch.state === BranchState.FAILED) return;
  d.event(TxEventKind.REPLIED, branch.branchId, null, describeReply(reply));
  if (!reply.ok) return onRefusal(d, branch, reply);
  d.setBranch(branch, { state: done, attempts: 0 });
  if (d.tx.mode === TxMode.SAGA) return compensateNext(d);
  finishIfDone(d);
}

/**
 * A participant could not apply the decision. Not retriable: the branch
 * fails at once. Retriable: TCC and 2PC rely on the resend backoff; a saga
 * compensation counts the failure against its policy and is sent again after
 * the policy's delay, until the policy runs out.
 */
function onRefusal(d: Draft, branch: BranchView, reply: BranchReply): void {
  const error = reply.error ?? 'refused';
  const attempts = branch.attempts + 1;
  const policy = d.tx.mode === TxMode.SAGA ? d.tx.compensationRetry : null;
  const exhausted = policy !== null && attempts >= policy.maxAttempts;
  if (reply.retriable !== false && !exhausted) {
    d.setBranch(branch, { attempts, error });
    if (policy !== null) {
      const delayMs = retryDelayMs(policy, attempts, d.timing.random);
      // The compensation answered: its policy bounds it, not the resends without an answer (decisionResendsMax).
      d.setTx({ resendAfterMs: delayMs, resendCount: 0 });
      d.event(TxEventKind.RETRY_SCHEDULED, branch.branchId, null, `attempt ${attempts + 1} of ${policy.maxAttempts} in ${delayMs} ms`);
    }
    return;
  }
  d.setBranch(branch, { state: BranchState.FAILED, attempts, error });
  d.event(TxEventKind.BRANCH_FAILED, branch.branchId, BranchState.FAILED, error);
  if (d.tx.mode === TxMode.SAGA) return end(d, GlobalTxState.FAILED, `compensation of ${branch.participant} failed: ${error}`);
  finishIfDone(d);
}

/** Writes the decision and sends it to every branch that needs it. */
function decide(d: Draft, decision: Decision, reason: string | null): void {
  d.setTx({ state: decision, decision, reason: reason ?? d.tx.reason, resendCount: 0, resendAfterMs: d.timing.resendIntervalMs });
  d.event(TxEventKind.DECIDED, null, decision, reason);
  if (d.tx.mode === TxMode.SAGA) {
    for (const b of d.branches) {
      if (b.state === BranchState.WAITING || b.state === BranchState.TRY_FAILED) d.setBranch(b, { state: BranchState.CANCELLED });
    }
    return compensateNext(d);
  }
  for (const b of d.branches) {
    if (decision === GlobalTxState.CONFIRMING) d.send(b, d.actions.commit!);
    else if (b.state === BranchState.TRY_FAILED || b.state === BranchState.WAITING)
      d.setBranch(b, { state: BranchState.CANCELLED }); // WAITING: never asked
    else if (b.state !== BranchState.FAILED) d.send(b, d.actions.rollback); // FAILED: a heuristic no vote, nothing to roll back
  }
  finishIfDone(d);
}

/**
 * Saga: the highest step that is done or in flight gets its compensation;
 * none left ends the saga CANCELLED, or FAILED when a step was given up on
 * on the way down ({@link giveUp}), with the reason that names it.
 */
function compensateNext(d: Draft): void {
  const cursor = sagaCursor(d.branches);
  if (cursor === undefined) {
    const failed = d.branches.some((b) => b.state === BranchState.FAILED);
    return failed ? end(d, GlobalTxState.FAILED, d.tx.reason) : end(d, GlobalTxState.CANCELLED, null);
  }
  if (cursor.attempts !== 0) d.setBranch(cursor, { attempts: 0 });
  d.send(cursor, d.actions.rollback);
  d.setTx({ resendCount: 0, resendAfterMs: d.timing.resendIntervalMs });
}

/**
 * The step to compensate next: the highest done or in flight. A FAILED step
 * is passed over: while compensating, only a step given up on is FAILED (a
 * compensation that fails ends the saga at once), and `tx retry` turns
 * FAILED steps back to TRIED before it looks.
 */
function sagaCursor(branches: readonly BranchView[]): BranchView | undefined {
  return [...branches].reverse().find((b) => b.state === BranchState.TRIED || b.state === BranchState.PENDING);
}

/** TCC/2PC: ends the transaction once every branch acknowledged (or failed). */
function finishIfDone(d: Draft): void {
  const done = d.tx.state === GlobalTxState.CONFIRMING ? BranchState.CONFIRMED : BranchState.CANCELLED;
  if (d.branches.every((b) => b.state === done)) return end(d, done === BranchState.CONFIRMED ? GlobalTxState.CONFIRMED : GlobalTxState.CANCELLED, null);
  const failed = d.branches.filter((b) => b.state === BranchState.FAILED);
  if (failed.length > 0 && d.branches.every((b) => b.state === done || b.state === BranchState.FAILED)) {
    // A branch that failed at its vote (heuristic) keeps the reason its vote gave the transaction.
    const heuristic = failed.find((b) => d.tx.reason === heuristicReason(b, b.error ?? 'no reason given'));
    if (heuristic !== undefined) return end(d, GlobalTxState.FAILED, d.tx.reason);
    const first = failed[0]!;
    const verb = done === BranchState.CONFIRMED ? d.actions.commit : d.actions.rollback;
    end(d, GlobalTxState.FAILED, `${first.participant} (branch ${first.branchId}) could not ${verb}: ${first.error ?? 'no reason given'}`);
  }
}

function end(d: Draft, state: GlobalTxState, reason: string | null): void {
  if (state === GlobalTxState.CONFIRMED && d.tx.mode === TxMode.SAGA) {
    for (const b of d.branches) d.setBranch(b, { state: BranchState.CONFIRMED });
  }
  d.setTx({ state, reason: reason ?? d.tx.reason, resendAfterMs: null });
  d.terminal = true;
  d.ended = true;
  d.event(TxEventKind.ENDED, null, state, reason);
}

/** Sends again what is due: a saga step's retry, or the decision to branches that have not acknowledged. */
function resend(d: Draft): void {
  const { tx } = d;
  if (tx.state === GlobalTxState.TRYING) {
    const step = tx.mode === TxMode.SAGA ? d.branches.find((b) => b.state === BranchState.PENDING) : undefined;
    if (step !== undefined) d.send(step, d.actions.phaseOne);
    d.setTx({ resendAfterMs: null });
    return;
  }
  if (tx.state !== GlobalTxState.CONFIRMING && tx.state !== GlobalTxState.CANCELLING) return;
  const waiting = unacknowledged(d);
  const action = tx.state === GlobalTxState.CONFIRMING ? d.actions.commit! : d.actions.rollback;
  const max = d.timing.decisionResendsMax;
  if (waiting.length > 0 && max !== undefined && tx.resendCount >= max) return giveUp(d, waiting, action, tx.resendCount);
  for (const b of waiting) d.send(b, action);
  d.setTx({ resendCount: tx.resendCount + 1, resendAfterMs: d.backoffMs(tx.resendCount + 1) });
  if (waiting.length > 0) d.event(TxEventKind.RESENT, null, null, `${action} → branch ${waiting.map((b) => b.branchId).join(', ')}`);
}

/**
 * The decision went out `resends` more times and `waiting` never
 * acknowledged it: a participant no running service declares (a typo in
 * its name), or one that is down for good or keeps refusing. Resending for
 * ever would keep the global transaction active without anyone noticing,
 * so the coordinator stops: each silent branch FAILS (a BRANCH_FAILED
 * event, logged as an error) and the global transaction ends FAILED with a
 * reason naming every such branch, published as its outcome. FAILED stays
 * in `concordat tx list --state FAILED` for an operator: `tx retry` sends
 * the decision again (once the participant runs), `tx end --as cancelled`
 * records that it was settled by hand. A branch that did answer, with a
 * refusal (`attempts` > 0), is named with its last error.
 *
 * A saga goes on compensating the steps below the one given up on, then ends
 * FAILED with that reason: the commands stay in the silent participant's
 * topic, so if it ever runs it still compensates its step, and the steps
 * below should not keep their effects meanwhile.
 */
function giveUp(d: Draft, waiting: readonly BranchView[], action: BranchAction, resends: number): void {
  const named = waiting.map((b) =>
    b.attempts > 0
      ? `${b.participant} (branch ${b.branchId}) refused: ${b.error ?? 'no reason given'}`
      : `${b.participant} (branch ${b.branchId}) never answered`,
  );
  for (const b of waiting) {
    const error =
      b.attempts > 0 ? `${action} still refused after ${resends} resends: ${b.error ?? 'no reason given'}` : `no answer to ${action} after ${resends} resends`;
    d.setBranch(b, { state: BranchState.FAILED, error });
    d.event(TxEventKind.BRANCH_FAILED, b.branchId, BranchState.FAILED, error);
  }
  const reason = `gave up after ${resends} resends of ${action}: ${named.join('; ')}`;
  if (d.tx.mode === TxMode.SAGA) {
    d.setTx({ reason });
    return compensateNext(d);
  }
  end(d, GlobalTxState.FAILED, reason);
}

function unacknowledged(d: Draft): BranchView[] {
  if (d.tx.mode === TxMode.SAGA) {
    const cursor = sagaCursor(d.branches);
    return cursor === undefined ? [] : [cursor];
  }
  const done = d.tx.state === GlobalTxState.CONFIRMING ? BranchState.CONFIRMED : BranchState.CANCELLED;
  return d.branches.filter((b) => b.state !== done && b.state !== BranchState.FAILED);
}

function abort(d: Draft, reason: string, by: string | undefined): void {
  if (d.tx.state !== GlobalTxState.TRYING) {
    throw new ConcordatError(`global transaction ${d.tx.id} is ${d.tx.state}: only an undecided (TRYING) one can be aborted`, {
      code: ErrorCode.GLOBAL_TX_STATE_INVALID,
      context: { id: d.tx.id, state: d.tx.state },
    });
  }
  d.event(TxEventKind.OPERATOR, null, null, by === undefined ? `abort: ${reason}` : `abort by ${by}: ${reason}`);
  decide(d, GlobalTxState.CANCELLING, `aborted by operator: ${reason}`);
}

/**
 * An operator's retry of a stuck phase: phase one is sent again to the
 * branches that have not voted (the fences make that harmless); a decision
 * is sent again now; a FAILED transaction is reopened in its decision, its
 * failed branches back to where they were before failing, and driven again.
 */
function retry(d: Draft, by: string | undefined): void {
  const { tx } = d;
  if (tx.state === GlobalTxState.CONFIRMED || tx.state === GlobalTxState.CANCELLED) {
    throw new ConcordatError(`global transaction ${tx.id} already ended ${tx.state}; there is nothing to retry`, {
      code: ErrorCode.GLOBAL_TX_STATE_INVALID,
      context: { id: tx.id, state: tx.state },
    });
  }
  d.event(TxEventKind.OPERATOR, null, null, by === undefined ? `retry ${tx.state}` : `retry ${tx.state} by ${by}`);
  if (tx.state === GlobalTxState.TRYING) {
    for (const b of d.branches) if (b.state === BranchState.PENDING) d.send(b, d.actions.phaseOne);
    d.setTx({ resendAfterMs: null });
    return;
  }
  if (tx.state === GlobalTxState.FAILED) {
    const decision = tx.decision ?? GlobalTxState.CANCELLING;
    for (const b of d.branches) if (b.state === BranchState.FAILED) d.setBranch(b, { state: BranchState.TRIED, attempts: 0 });
    d.setTx({ state: decision, resendCount: 0 });
  }
  d.setTx({ resendCount: 0 });
  const waiting = unacknowledged(d);
  const action = d.tx.state === GlobalTxState.CONFIRMING ? d.actions.commit! : d.actions.rollback;
  for (const b of waiting) d.send(b, action);
  d.setTx({ resendAfterMs: d.timing.resendIntervalMs });
}

/**
 * An operator ends a global transaction by hand (`concordat tx end <id> --as
 * cancelled|failed`): it ends in `input.as` with the reason `ended by hand
 * by <who>: <why>`, its outcome is published, and nothing is sent to any
 * branch — whatever a branch holds (a reservation, a prepared transaction, a
 * step's effect) stays until someone releases it. Hence:
 * - one that already ended CONFIRMED or CANCELLED is refused, and so is a
 *   FAILED one ended as FAILED again;
 * - while the coordinator still drives it (TRYING, CONFIRMING, CANCELLING),
 *   branches that may still act (a command out and no answer, or holding
 *   something: PENDING, TRIED, FAILED) make it refused unless `force`; an
 *   undecided one is better aborted (`tx abort`), a decided one left to the
 *   resends, which give up by themselves ({@link giveUp});
 * - ending as CANCELLED a transaction decided CONFIRMING (whose branches may
 *   have confirmed) is refused unless `force`.
 * A FAILED transaction (the coordinator stopped) ends as CANCELLED without
 * `force` when its decision was to cancel: the operator says it is settled.
 */
function endByHand(d: Draft, input: EndInput): void {
  const { tx } = d;
  const refuse = (why: string): never => {
    throw new ConcordatError(`global transaction ${tx.id} is ${tx.state}: ${why}`, {
      code: ErrorCode.GLOBAL_TX_STATE_INVALID,
      context: { id: tx.id, state: tx.state },
    });
  };
  if (tx.state === GlobalTxState.CONFIRMED || tx.state === GlobalTxState.CANCELLED) refuse('it has already ended; there is nothing to end');
  if (tx.state === GlobalTxState.FAILED && input.as === GlobalTxState.FAILED)
    refuse('it has already ended FAILED; end it --as cancelled once its branches are settled, or tx retry it');
  if (!input.force && input.as === GlobalTxState.CANCELLED && tx.decision === GlobalTxState.CONFIRMING) {
    refuse(
      'its decision was CONFIRMING, so branches may have confirmed; ending it CANCELLED would misstate the outcome (pass --force if every branch was rolled back by hand)',
    );
  }
  const active = tx.state !== GlobalTxState.FAILED;
  const unsettled = d.branches.filter((b) => b.state === BranchState.PENDING || b.state === BranchState.TRIED || b.state === BranchState.FAILED);
  if (!input.force && active && unsettled.length > 0) {
    const advice =
      tx.state === GlobalTxState.TRYING
        ? 'tx abort rolls it back instead'
        : `the coordinator sends its decision until they answer, and gives up after its resends (decisionResendsMax), ending it FAILED`;
    refuse(
      `branches may still act: ${unsettled.map((b) => `${b.participant} (branch ${b.branchId}, ${b.state})`).join(', ')}. ` +
        `Ending it by hand sends them nothing more, and what they hold stays held; ${advice}. Pass --force to end it anyway`,
    );
  }
  d.event(TxEventKind.OPERATOR, null, null, `end as ${input.as} by ${input.by}: ${input.reason}`);
  end(d, input.as, `ended by hand by ${input.by}: ${input.reason}`);
}

/**
 * The views after `step`, to compute the next transition of the same global
 * transaction before anything is written (a batch holding two replies of
 * one global transaction applies them one after the other).
 */
export function advance<T extends TxView, B extends BranchView>(tx: T, branches: readonly B[], step: Transition): { tx: T; branches: B[] } {
  const next =
    step.tx === undefined ? tx : { ...tx, state: step.tx.state, reason: step.tx.reason, decision: step.tx.decision, resendCount: step.tx.resendCount };
  const changed = new Map(step.branches.map((b) => [b.branchId, b]));
  return { tx: next, branches: branches.map((b) => ({ ...b, ...changed.get(b.branchId) })) };
}
