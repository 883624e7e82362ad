import type { TransactionContext } from '../../runtime/index.js';
import { REPLY_TOPIC, TxMessageType, type BranchCommand, type BranchReply } from '../coordinator/messages.js';

/** What a reply says besides its branch and action. */
export interface ReplyDetails {
  error?: string;
  retriable?: boolean;
  result?: unknown;
  /** A TCC Try's yes, a saga step's ok: the command's payload, echoed (see {@link BranchReply.payload}). */
  payload?: unknown;
  /** A saga step's ok that repeats an earlier run's (see {@link BranchReply.repeated}). */
  repeated?: boolean;
  /** A no vote whose branch may have committed outside the protocol (see {@link BranchReply.heuristic}). */
  heuristic?: boolean;
}

/** Publishes a participant's reply to `command` through `context`'s outbox, keyed by the global transaction ID. */
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
  context.publish(REPLY_TOPIC, data, { key: command.globalTxId, type: TxMessageType.REPLY, globalTxId: command.globalTxId });
}
