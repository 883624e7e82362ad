import { describeError, isRetriable } from '../../errors.js';
import { faultPoint } from '../../observability/index.js';
import type { MessageContext } from '../../runtime/index.js';
import { advanceFence, claimFence, fenceInsertSql, FenceState, lockFence, setFence, type FenceKey } from '../participant/fence.js';
import { batchOn } from '../participant/sql.js';
import { reply as publishReply, type ReplyDetails } from '../participant/reply.js';
import { TccContext } from './context.js';
import type { StandardSchemaV1 } from '@standard-schema/spec';
import { validatedCommand } from '../participant/definition.js';
import { TccAction, type TccCommand } from './messages.js';

/** Method names of a participant's three roles. */
export interface TccMethods {
  try?: string;
  confirm?: string;
  cancel?: string;
}

/** A participant's method: returns its result, or a Promise of it. */
type ParticipantMethod = (context: TccContext) => unknown;

/**
 * Runs one TCC command on a participant, inside the delivery's transaction
 * (which also holds its inbox row), behind the fence, and replies to the
 * coordinator through the outbox in the same transaction.
 *
 * | command | fence before   | does                                     | reply |
 * |---------|----------------|------------------------------------------|-------|
 * | Try     | none           | fence TRIED, run @Try                    | ok (or no, fence TRY_FAILED, writes rolled back) |
 * | Try     | CANCELLED      | nothing (anti-hanging)                   | no    |
 * | Try     | other          | nothing (duplicate)                      | as before |
 * | Confirm | TRIED          | run @Confirm, fence CONFIRMED            | ok    |
 * | Confirm | CONFIRMED      | nothing (duplicate)                      | ok    |
 * | Confirm | other / none   | nothing (protocol violation)             | no    |
 * | Cancel  | none           | fence CANCELLED (empty rollback)         | ok    |
 * | Cancel  | TRIED          | run @Cancel, fence CANCELLED             | ok    |
 * | Cancel  | TRY_FAILED     | fence CANCELLED (nothing was reserved)   | ok    |
 * | Cancel  | CANCELLED      | nothing (duplicate)                      | ok    |
 * | Cancel  | CONFIRMED      | nothing (protocol violation)             | no    |
 *
 * A yes to Try carries the command's payload back (`BranchReply.payload`):
 * a coordinator that does not hold the global transaction (its begin was
 * lost, or history cleanup removed it) answers it with a Cancel carrying that
 * payload (presumed abort), so the reservation does not stay forever; the
 * fence makes that Cancel harmless for a branch that confirmed or cancelled.
 *
 * Errors from @Confirm and @Cancel propagate: the dispatcher retries them
 * and the coordinator resends until they succeed. The refusals marked "no"
 * above for Confirm and Cancel are protocol violations; they reply not
 * retriable, and the coordinator fails the branch for an operator.
 *
 * With a participant definition (`@TccParticipant(defineParticipant(name, schema))`),
 * the payload is validated before each method runs and the method receives
 * the schema's output; a payload the schema refuses makes the Try vote no
 * (VALIDATION_FAILED, not retriable).
 *
 * Fault points `tcc.after-try`, `tcc.after-confirm`, `tcc.after-cancel`: the
 * participant's method ran, nothing is committed yet.
 */
export async function handleTccCommand(
  participant: string,
  methods: TccMethods,
  instance: object,
  message: MessageContext,
  schema?: StandardSchemaV1,
): Promise<void> {
  const command = message.data as TccCommand;
  const key: FenceKey = { participant, globalTxId: command.globalTxId, branchId: command.branchId };
  const reply = (ok: boolean, details: ReplyDetails = {}): void => publishReply(message, command, ok, details);
  // A yes to Try echoes the payload: a coordinator that does not hold the global transaction cancels the branch with it (presumed abort).
  const tried = (details: ReplyDetails = {}): void => reply(true, command.payload === undefined ? details : { ...details, payload: command.payload });
  const call = async (role: keyof TccMethods): Promise<unknown> => {
    // A payload the participant's schema refuses throws VALIDATION_FAILED (not retriable): a Try votes no.
    const context = new TccContext(message.manager, message.source, (await validatedCommand(schema, participant, message)) as never, message.delivery);
    const method = (instance as Record<string, ParticipantMethod>)[methods[role]!]!;
    const result = await method.call(instance, context);
    await context.flush();
    return result;
  };

  switch (command.action) {
    case TccAction.TRY: {
      // The fence row and the savepoint of the Try in one round trip.
      const batch = await batchOn(message.manager);
      const [inserted] = await batch.run([fenceInsertSql(key, FenceState.TRIED, batch.escape), 'SAVEPOINT concordat_tcc_try']);
      if (inserted!.rowCount !== 1) {
        const state = (await lockFence(message.manager, key)) ?? FenceState.CANCELLED;
        if (state === FenceState.CANCELLED) reply(false, { error: 'TRY_AFTER_CANCEL: the branch was cancelled before its Try arrived' });
        else if (state === FenceState.TRY_FAILED) reply(false, { error: 'Try failed earlier' });
        else tried();
        return;
      }
      try {
        const result = await call('try');
        await faultPoint('tcc.after-try');
        tried(result === undefined ? {} : { result });
      } catch (error) {
        const last = message.delivery.attempt >= message.delivery.maxAttempts;
        if (isRetriable(error) && !last) throw error;
        await message.manager.query('ROLLBACK TO SAVEPOINT concordat_tcc_try');
        await setFence(message.manager, key, FenceState.TRY_FAILED);
        reply(false, { error: describeError(error) });
      }
      return;
    }
    case TccAction.CONFIRM: {
      if (!(await advanceFence(message.manager, key, FenceState.TRIED, FenceState.CONFIRMED))) {
        const state = await lockFence(message.manager, key);
        if (state === FenceState.CONFIRMED) return reply(true);
        return reply(false, { error: `Confirm without a successful Try (fence: ${state ?? 'none'})`, retriable: false });
      }
      await call('confirm');
      await faultPoint('tcc.after-confirm');
      return reply(true);
    }
    case TccAction.CANCEL: {
      // The common case first: the branch tried, so the fence moves to CANCELLED and @Cancel releases.
      if (await advanceFence(message.manager, key, FenceState.TRIED, FenceState.CANCELLED)) {
        await call('cancel');
        await faultPoint('tcc.after-cancel');
        return reply(true);
      }
      const claim = await claimFence(message.manager, key, FenceState.CANCELLED);
      if (claim.inserted) return reply(true); // empty rollback
      switch (claim.state) {
        case FenceState.CANCELLED:
          return reply(true);
        case FenceState.CONFIRMED:
          return reply(false, { error: 'Cancel after Confirm', retriable: false });
        case FenceState.TRIED:
          // Tried in between (a concurrent delivery committed): release it.
          await call('cancel');
          await faultPoint('tcc.after-cancel');
          break;
        case FenceState.TRY_FAILED:
          break;
      }
      await setFence(message.manager, key, FenceState.CANCELLED);
      return reply(true);
    }
  }
}
