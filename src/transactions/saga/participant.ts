import { describeError, isRetriable } from '../../errors.js';
import type { StandardSchemaV1 } from '@standard-schema/spec';
import { validatedCommand } from '../participant/definition.js';
import { faultPoint } from '../../observability/index.js';
import { isTransientConflict, type MessageContext } from '../../runtime/index.js';
import { BranchAction, type BranchCommand } from '../coordinator/messages.js';
import { claimFence, fenceAdvanceSql, fenceInsertSql, FenceState, setFence, type FenceKey } from '../participant/fence.js';
import { batchOn } from '../participant/sql.js';
import { reply } from '../participant/reply.js';
import { SagaContext } from './context.js';

/** Method names of a saga participant's two roles. */
export interface SagaMethods {
  step?: string;
  compensate?: string;
}

/** A participant's method: returns its result, or a Promise of it. */
type ParticipantMethod = (context: SagaContext) => unknown;

/**
 * Runs one saga command on a participant, inside the delivery's transaction
 * (with its inbox row), behind the fence, and replies through the outbox in
 * the same transaction.
 *
 * | command    | fence before | does                                   | reply |
 * |------------|--------------|----------------------------------------|-------|
 * | execute    | none         | fence TRIED, run @Step                 | ok with the payload echoed, or not ok (retriable as the error) with the step's writes and fence rolled back |
 * | execute    | TRIED        | nothing (duplicate)                    | ok, repeated |
 * | execute    | CANCELLED    | nothing (compensated first: anti-hanging) | not ok, not retriable |
 * | compensate | none         | fence CANCELLED (empty compensation)   | ok    |
 * | compensate | TRIED        | run @Compensate, fence CANCELLED       | ok, or not ok (retriable as the error) with its writes rolled back |
 * | compensate | CANCELLED    | nothing (duplicate)                    | ok    |
 *
 * A step's ok that ran the step echoes the command's payload; one that
 * found the step done already says `repeated`. A coordinator that does not
 * hold the saga (its history was cleaned up, or it was never begun there)
 * answers the first with the step's compensation (presumed abort), and only
 * logs the second. That is what keeps presumed abort from undoing a step of a
 * saga that ended CONFIRMED: a saga participant is never told of that end
 * (sagas have no commit action), so its fence row still holds TRIED — exactly
 * what a step nobody decided on holds — until cleanup deletes it; the fence
 * cannot tell the two apart, but it does tell a step that runs now (row
 * inserted by this delivery) from one that ran before (row there: a
 * duplicate). A repeated ok is never compensated, so a confirmed step whose
 * fence row is still there is never undone; one whose fence row was cleaned
 * up runs again on redelivery (a second effect) and the compensation undoes
 * that second run, through the row it inserted, leaving the confirmed one.
 *
 * Unlike TCC, a failing step or compensation is not retried here: the
 * coordinator owns the saga's retry policies (a step's, the compensations'),
 * counts attempts in its table and sends the command again after the delay.
 * The exception is a deadlock or serialization failure: the delivery's
 * transaction is rolled back and the dispatcher runs it again at once
 * (until its attempts run out, after which it is answered like any failure).
 *
 * Fault points `saga.after-step`, `saga.after-compensate`: the method ran,
 * nothing is committed yet.
 */
export async function handleSagaCommand(
  participant: string,
  methods: SagaMethods,
  instance: object,
  message: MessageContext,
  schema?: StandardSchemaV1,
): Promise<void> {
  const command = message.data as BranchCommand;
  const key: FenceKey = { participant, globalTxId: command.globalTxId, branchId: command.branchId };
  const call = async (role: keyof SagaMethods): Promise<unknown> => {
    // A payload the participant's schema refuses throws VALIDATION_FAILED (not retriable): the step fails for good.
    const context = new SagaContext(message.manager, message.source, (await validatedCommand(schema, participant, message)) as never, message.delivery);
    const result = await (instance as Record<string, ParticipantMethod>)[methods[role]!]!.call(instance, context);
    await context.flush();
    return result;
  };
  switch (command.action) {
    case BranchAction.EXECUTE:
      return execute(message, command, key, call);
    case BranchAction.COMPENSATE:
      return compensate(message, command, key, call);
    default:
      throw new Error(`assertion failed: a saga participant received '${command.action}'`);
  }
}

type Call = (role: keyof SagaMethods) => Promise<unknown>;

/**
 * Whether a failed step or compensation is retried by the dispatcher, at
 * once, instead of being answered: a deadlock, a serialization failure or a
 * lock wait past its timeout (the step lost a race with another
 * transaction — the dispatcher's guarded transactions wait 50 ms at most —
 * and would likely succeed if run again now), while the delivery has
 * attempts left. Answered instead,
 * the coordinator would retry it only after the step's retry delay.
 */
function retryHere(message: MessageContext, error: unknown): boolean {
  return isTransientConflict(error) && message.delivery.attempt < message.delivery.maxAttempts;
}

async function execute(message: MessageContext, command: BranchCommand, key: FenceKey, call: Call): Promise<void> {
  // The savepoint before the fence row, in one round trip: a failed step leaves no trace, so its retry runs afresh.
  const batch = await batchOn(message.manager);
  const [, inserted] = await batch.run(['SAVEPOINT concordat_saga_step', fenceInsertSql(key, FenceState.TRIED, batch.escape)]);
  if (inserted!.rowCount !== 1) {
    // A committed row was in the way (an uncommitted one that aborts lets the insert through).
    const claim = await claimFence(message.manager, key, FenceState.TRIED);
    if (!claim.inserted && claim.state === FenceState.CANCELLED) {
      return reply(message, command, false, { error: 'STEP_AFTER_COMPENSATION: the step was compensated before it arrived', retriable: false });
    }
    // Ran before: this ok repeats that run's, and must not make a coordinator that lost the saga compensate it (below).
    if (!claim.inserted) return reply(message, command, true, { repeated: true });
  }
  try {
    const result = await call('step');
    await faultPoint('saga.after-step');
    // The payload echoed: a coordinator that does not hold the saga compensates the step with it (presumed abort).
    reply(message, command, true, { ...(result !== undefined && { result }), ...(command.payload !== undefined && { payload: command.payload }) });
  } catch (error) {
    if (retryHere(message, error)) throw error;
    await message.manager.query('ROLLBACK TO SAVEPOINT concordat_saga_step');
    reply(message, command, false, { error: describeError(error), retriable: isRetriable(error) });
  }
}

async function compensate(message: MessageContext, command: BranchCommand, key: FenceKey, call: Call): Promise<void> {
  // The common case, in one round trip: the step ran, so the fence moves to CANCELLED after a savepoint that a failing compensation rolls back to.
  const batch = await batchOn(message.manager);
  const [, advanced] = await batch.run(['SAVEPOINT concordat_saga_compensate', fenceAdvanceSql(key, FenceState.TRIED, FenceState.CANCELLED, batch.escape)]);
  if (advanced!.rowCount !== 1) {
    const claim = await claimFence(message.manager, key, FenceState.CANCELLED);
    if (claim.inserted || claim.state === FenceState.CANCELLED) return reply(message, command, true);
    // TRIED, committed by a delivery that raced this one: compensate it now.
    await setFence(message.manager, key, FenceState.CANCELLED);
  }
  try {
    await call('compensate');
    await faultPoint('saga.after-compensate');
    reply(message, command, true);
  } catch (error) {
    if (retryHere(message, error)) throw error;
    await message.manager.query('ROLLBACK TO SAVEPOINT concordat_saga_compensate');
    reply(message, command, false, { error: describeError(error), retriable: isRetriable(error) });
  }
}
