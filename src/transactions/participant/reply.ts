import type { TransactionContext } from '../../runtime/index.js';
import { deferToColocatedCoordinator } from '../coordinator/colocated.js';
import { REPLY_TOPIC, TxMessageType, type BranchCommand, type BranchReply } from '../coordinator/messages.js';

/** What a reply says besides its branch, action and vote: the optional fields of {@link BranchReply}, documented there. */
export type ReplyDetails = Pick<BranchReply, 'error' | 'retriable' | 'result' | 'payload' | 'repeated' | 'heuristic'>;

/**
 * A participant's reply to `command`: applied by the coordinator at the end
 * of `context`'s transaction when one runs in this process on the same
 * database (`coordinator/colocated.ts`), else published through `context`'s
 * outbox, keyed by the global transaction ID.
 */
export function reply(context: TransactionContext, command: BranchCommand, ok: boolean, details: ReplyDetails = {}): void {
  const data: BranchReply = {
    globalTxId: command.globalTxId,
    branchId: command.branchId,
    participant: command.participant,
    action: command.action,
    ok,
    ...(details.error !== undefined && { error: details.error }),
    ...(details.retriable !== undefined && { retriable: details.retriable }),
    ...(details.result !== undefined && { result: details.result }),
    ...(details.payload !== undefined && { payload: details.payload }),
    ...(details.repeated !== undefined && { repeated: details.repeated }),
    ...(details.heuristic !== undefined && { heuristic: details.heuristic }),
  };
  if (!deferToColocatedCoordinator(context, data)) publishReply(context, data);
}

/** Publishes `data` to the coordinators' reply topic through `context`'s outbox, keyed by the global transaction ID. */
export function publishReply(context: TransactionContext, data: BranchReply): void {
  context.publish(REPLY_TOPIC, data, { key: data.globalTxId, type: TxMessageType.REPLY, globalTxId: data.globalTxId });
}
