import type { EntityManager } from 'typeorm';
import type { TransactionContext } from '../../runtime/index.js';
import {
  MODE_ACTIONS,
  REPLY_TOPIC,
  TxMessageType,
  commandTopic,
  decisionMessageId,
  hasStableMessageId,
  presumedAbortMessageId,
  type BranchCommand,
  type GlobalTxEndState,
  type GlobalTxOutcome,
} from './messages.js';
import { advance, transition, type Command, type Timing, type Transition, type TxInput } from './protocol.js';
import { TxMode } from './states.js';
import { traceStep } from './tracing.js';
import { applyTransitions, lockGlobalTxs, type BranchRow, type GlobalTxRow, type LoadedGlobalTx } from './store.js';

/** One step to drive: which global transaction, on what input, publishing through which context. */
export interface DriveItem {
  id: string;
  input: TxInput;
  /** Commands and outcome are published here (a reply's context, so they carry its causation). */
  context: TransactionContext;
}

/**
 * Drives global transactions one step each, inside the caller's database
 * transaction: lock the rows (unless the caller did, passing `loaded`),
 * compute the transitions — several steps of one global transaction in
 * order, each from the state the previous one left — write them all in one
 * statement, and publish their commands (and outcomes) through each item's
 * context. The coordinator's replies and scans and the operator commands
 * all go through here, so they cannot disagree.
 *
 * @returns one transition per item, or undefined for a global transaction that does not exist.
 * @throws ConcordatError GLOBAL_TX_STATE_INVALID for an operator action the state does not allow.
 */
export async function driveGlobalTxs(
  manager: EntityManager,
  items: readonly DriveItem[],
  timing: Timing,
  loaded?: Map<string, LoadedGlobalTx>,
): Promise<Array<Transition | undefined>> {
  const states =
    loaded ??
    (await lockGlobalTxs(
      manager,
      items.map((item) => item.id),
    ));
  const { results, writes } = planGlobalTxs(items, timing, states);
  await applyTransitions(manager, writes);
  return results;
}

/**
 * {@link driveGlobalTxs} without the write: computes the transitions from
 * the locked `states` (which it advances), publishes their commands and
 * outcomes through the items' contexts, and returns what the caller must
 * write — with `applyTransitions`, or as `transitionsSql` in its `COMMIT`.
 */
export function planGlobalTxs(
  items: readonly DriveItem[],
  timing: Timing,
  states: Map<string, LoadedGlobalTx>,
): { results: Array<Transition | undefined>; writes: Array<{ id: string; step: Transition }> } {
  const results: Array<Transition | undefined> = [];
  const writes: Array<{ id: string; step: Transition }> = [];
  for (const item of items) {
    const state = states.get(item.id);
    if (state === undefined) {
      results.push(undefined);
      continue;
    }
    const step = transition(state.tx, state.branches, item.input, timing);
    traceStep(item.context, state.tx, item.input, step, () => {
      // An operator's retry must reach a participant that answered before: new message IDs (see decisionMessageId).
      sendCommands(item.context, state.tx, state.branches, step.commands, { freshIds: item.input.kind === 'retry' });
      if (step.ended && step.tx !== undefined) publishOutcome(item.context, { ...state.tx, state: step.tx.state, reason: step.tx.reason });
    });
    states.set(item.id, advance(state.tx, state.branches, step));
    writes.push({ id: item.id, step });
    results.push(step);
  }
  return { results, writes };
}

/** {@link driveGlobalTxs} for one global transaction. */
export async function driveGlobalTx(context: TransactionContext, id: string, input: TxInput, timing: Timing): Promise<Transition | undefined> {
  const [step] = await driveGlobalTxs(context.manager, [{ id, input, context }], timing);
  return step;
}

/**
 * Publishes commands to branches through the outbox, keyed by the global
 * transaction ID. TCC and 2PC decisions carry one message ID per branch
 * action ({@link decisionMessageId}), unless `freshIds` (an operator's retry).
 */
export function sendCommands(
  context: TransactionContext,
  tx: Pick<GlobalTxRow, 'id' | 'mode'>,
  branches: readonly BranchRow[],
  commands: readonly Command[],
  options: { freshIds?: boolean } = {},
): void {
  for (const { branchId, action } of commands) {
    const branch = branches.find((b) => b.branchId === branchId)!;
    const command: BranchCommand = { globalTxId: tx.id, branchId, participant: branch.participant, action, payload: branch.payload };
    const stable = options.freshIds !== true && hasStableMessageId(tx.mode, action);
    context.publish(commandTopic(tx.mode, branch.participant, action), command, {
      key: tx.id,
      type: TxMessageType.COMMAND(tx.mode, action),
      globalTxId: tx.id,
      ...(stable && { id: decisionMessageId(tx.id, branchId, action) }),
    });
  }
}

function publishOutcome(context: TransactionContext, tx: GlobalTxRow): void {
  if (tx.outcomeTopic === null) return;
  // Called only when the transition ended the global transaction (step.ended): its state is terminal.
  const outcome: GlobalTxOutcome = {
    globalTxId: tx.id,
    name: tx.name,
    mode: tx.mode,
    state: tx.state as GlobalTxEndState,
    reason: tx.reason,
    payload: tx.payload,
  };
  context.publish(tx.outcomeTopic, outcome, { key: tx.outcomeKey ?? tx.id, type: TxMessageType.OUTCOME(tx.state), globalTxId: tx.id });
}

/**
 * Presumed abort (Mohan, Lindsay, Obermarck 1986): a participant that votes
 * yes for a global transaction the coordinator does not know (never begun
 * here, or ended and forgotten by history cleanup) is told to roll back — a
 * 2PC branch its prepared transaction, which would otherwise hold its locks
 * for ever, a TCC branch its reservation (Cancel, with the payload the Try
 * echoed), a saga step its effect (the step's compensation, with the payload
 * the step echoed; only for a step that ran in the delivery that replied,
 * see `TransactionCoordinator.onUnknown`). The participant's fence makes that
 * safe: a branch that committed (or confirmed) long ago refuses the rollback
 * instead of applying it, one that never ran records an empty rollback,
 * which also refuses a Try, prepare or step that arrives later.
 *
 * Message ID: for TCC and 2PC one of its own, derived from the reply's
 * (`replyMessageId`, see {@link presumedAbortMessageId}), never the
 * decision's; a saga compensation a fresh one, as every saga command.
 */
export function presumeAbort(context: TransactionContext, mode: TxMode, branch: Omit<BranchCommand, 'action'>, replyMessageId: string): void {
  const action = MODE_ACTIONS[mode].rollback;
  const command: BranchCommand = { ...branch, action };
  context.publish(commandTopic(mode, branch.participant, action), command, {
    key: branch.globalTxId,
    type: TxMessageType.COMMAND(mode, action),
    globalTxId: branch.globalTxId,
    // Not the decision's ID, which the participant's inbox may still hold from a Cancel that found no Try
    // (see presumedAbortMessageId). A saga compensation keeps a fresh ID, as every saga command does.
    ...(hasStableMessageId(mode, action) && { id: presumedAbortMessageId(branch.globalTxId, branch.branchId, action, replyMessageId) }),
  });
}

export { REPLY_TOPIC };
