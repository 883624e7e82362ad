import { activeContext, inSpan, SpanKind, TraceAttribute } from '../../observability/index.js';
import type { MessageContext } from '../../runtime/index.js';
import { BranchAction, type BranchCommand } from '../coordinator/messages.js';
import type { TxMode } from '../coordinator/states.js';

/** Span names of a participant's roles, as the decorators name them. */
const ROLE: Record<BranchAction, string> = {
  [BranchAction.TRY]: 'Try',
  [BranchAction.CONFIRM]: 'Confirm',
  [BranchAction.CANCEL]: 'Cancel',
  [BranchAction.PREPARE]: 'Prepare',
  [BranchAction.COMMIT]: 'Commit',
  [BranchAction.ROLLBACK]: 'Rollback',
  [BranchAction.EXECUTE]: 'Step',
  [BranchAction.COMPENSATE]: 'Compensate',
};

/**
 * Runs a participant's handling of one branch command in a span
 * `<MODE> <Role> <participant>` (`TCC Try inventory`, `SAGA Compensate
 * payment`), child of the command's `process` span; what it publishes (its
 * reply, the messages of the participant's method) is the span's child. A
 * role that throws marks the span failed (the dispatcher then retries or
 * dead-letters the command).
 */
export function inBranchSpan(mode: TxMode, participant: string, message: MessageContext, work: () => Promise<void>): Promise<void> {
  const command = message.data as BranchCommand;
  const parent = message.traceContext ?? activeContext();
  return inSpan(
    `${mode} ${ROLE[command.action] ?? command.action} ${participant}`,
    SpanKind.INTERNAL,
    parent,
    {
      [TraceAttribute.GLOBAL_TX_ID]: command.globalTxId,
      [TraceAttribute.GLOBAL_TX_MODE]: mode,
      [TraceAttribute.BRANCH_ID]: command.branchId,
      [TraceAttribute.BRANCH_ACTION]: command.action,
      [TraceAttribute.PARTICIPANT]: participant,
    },
    () => message.withTraceContext(activeContext(), work),
  );
}
