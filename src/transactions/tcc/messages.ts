/**
 * The TCC names of the shared wire contract (`coordinator/messages.ts`):
 * commands on `concordat.tcc.<participant>`, replies on `concordat.tx.replies`.
 */
import { BranchAction, TxMessageType, commandTopic, type BranchCommand, type BranchReply } from '../coordinator/messages.js';
import { TxMode } from '../coordinator/states.js';

export { REPLY_TOPIC, type GlobalTxOutcome } from '../coordinator/messages.js';

/** The commands a TCC participant receives. */
export const TccAction = {
  TRY: BranchAction.TRY,
  CONFIRM: BranchAction.CONFIRM,
  CANCEL: BranchAction.CANCEL,
} as const;
/** One of the {@link TccAction} values. */
export type TccAction = (typeof TccAction)[keyof typeof TccAction];

/** Topic of a TCC participant's commands. */
export function participantTopic(participant: string): string {
  return commandTopic(TxMode.TCC, participant);
}

/** CloudEvents types of TCC messages. */
export const TccMessageType = {
  COMMAND: (action: TccAction) => TxMessageType.COMMAND(TxMode.TCC, action),
  REPLY: TxMessageType.REPLY,
  OUTCOME: TxMessageType.OUTCOME,
} as const;

/** Data of a command the coordinator sends a TCC participant. */
export type TccCommand<P = unknown> = BranchCommand<P> & { action: TccAction };

/** Data of a TCC participant's reply. */
export type TccReply = BranchReply;
