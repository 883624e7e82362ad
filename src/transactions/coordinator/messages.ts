import { TxMode } from './states.js';

/**
 * The wire contract between the coordinator and participants of every mode.
 * Commands travel on the participant's topic (`concordat.<tcc|xa|saga>.<name>`),
 * replies on `concordat.tx.replies`, both keyed by the global transaction ID
 * so that everything about one global transaction stays in one partition, in
 * order, and replies of one global transaction reach one coordinator
 * instance at a time (the consumer group gives each partition one owner).
 */

export const BranchAction = {
  /** TCC phase one: reserve. */
  TRY: 'try',
  CONFIRM: 'confirm',
  CANCEL: 'cancel',
  /** 2PC phase one: do the work and end it with PREPARE TRANSACTION. */
  PREPARE: 'prepare',
  /** 2PC: COMMIT PREPARED. */
  COMMIT: 'commit',
  /** 2PC: ROLLBACK PREPARED. */
  ROLLBACK: 'rollback',
  /** Saga: run a step. */
  EXECUTE: 'execute',
  /** Saga: undo a step. */
  COMPENSATE: 'compensate',
} as const;
export type BranchAction = (typeof BranchAction)[keyof typeof BranchAction];

/** The three actions of each mode: phase one, commit, roll back (sagas have no commit action). */
export interface ModeActions {
  phaseOne: BranchAction;
  commit: BranchAction | null;
  rollback: BranchAction;
  /** Prefix of participants' command topics. */
  topicPrefix: string;
  /**
   * Prefix of the topics of the decisions (commit, rollback), when they do
   * not travel with phase one. 2PC keeps them apart: a prepare waiting for a
   * row lock held by another branch's prepared transaction must not stand in
   * front of the commit that releases it (in one partition it would, for
   * ever). The fence makes their order irrelevant: a rollback before its
   * prepare is an empty rollback, and the prepare is then refused.
   */
  decisionTopicPrefix: string | null;
}

export const MODE_ACTIONS: Readonly<Record<TxMode, ModeActions>> = {
  [TxMode.TCC]: { phaseOne: BranchAction.TRY, commit: BranchAction.CONFIRM, rollback: BranchAction.CANCEL, topicPrefix: 'concordat.tcc.', decisionTopicPrefix: null },
  [TxMode.TWO_PHASE]: {
    phaseOne: BranchAction.PREPARE,
    commit: BranchAction.COMMIT,
    rollback: BranchAction.ROLLBACK,
    topicPrefix: 'concordat.xa.',
    decisionTopicPrefix: 'concordat.xa-decisions.',
  },
  [TxMode.SAGA]: { phaseOne: BranchAction.EXECUTE, commit: null, rollback: BranchAction.COMPENSATE, topicPrefix: 'concordat.saga.', decisionTopicPrefix: null },
};

/** Topic of the commands of `participant` in `mode`; with `action`, of that action (2PC sends decisions apart). */
export function commandTopic(mode: TxMode, participant: string, action?: BranchAction): string {
  const actions = MODE_ACTIONS[mode];
  const decision = action !== undefined && action !== actions.phaseOne && actions.decisionTopicPrefix !== null;
  return (decision ? actions.decisionTopicPrefix! : actions.topicPrefix) + participant;
}

/** Topic the coordinator consumes replies from. */
export const REPLY_TOPIC = 'concordat.tx.replies';

/** CloudEvents types. */
export const TxMessageType = {
  COMMAND: (mode: TxMode, action: BranchAction) => `${MODE_ACTIONS[mode].topicPrefix}${action}`,
  REPLY: 'concordat.tx.reply',
  OUTCOME: (state: string) => `concordat.tx.${state.toLowerCase()}`,
} as const;

/** Data of a command the coordinator sends a participant. */
export interface BranchCommand<P = unknown> {
  globalTxId: string;
  branchId: number;
  participant: string;
  action: BranchAction;
  /** The branch's payload, the same in every command of the branch. */
  payload: P;
}

/** Data of a participant's reply. */
export interface BranchReply {
  globalTxId: string;
  branchId: number;
  action: BranchAction;
  /** The participant that replied (lets the coordinator answer a 2PC vote for a transaction it does not know). */
  participant?: string;
  /** Phase one: the vote (saga: the step succeeded). Otherwise: whether the action is done. */
  ok: boolean;
  /** Why not, when `ok` is false. */
  error?: string;
  /**
   * With `ok: false`: whether trying again may succeed. A saga step that
   * failed retriably is retried under its policy; a Confirm, commit or
   * compensation refused as not retriable fails the branch at once (it is a
   * protocol violation or a heuristic outcome an operator must resolve).
   * @default true
   */
  retriable?: boolean;
  /** Phase one: what the participant returned (kept on the branch, for the outcome and operators). */
  result?: unknown;
  /**
   * A TCC Try that voted yes: the command's payload, echoed, so that a
   * coordinator that does not hold the global transaction can still send a
   * Cancel that carries it, as every command of a branch does (`@Cancel`
   * needs it to know what to release; see `presumeAbort`).
   */
  payload?: unknown;
}

/** Data of the message published on a global transaction's outcome topic when it ends. */
export interface GlobalTxOutcome<P = unknown> {
  globalTxId: string;
  name: string;
  mode: string;
  /** CONFIRMED, CANCELLED or FAILED. */
  state: string;
  /** Why it was cancelled or failed. */
  reason: string | null;
  /** The payload given at begin. */
  payload: P;
}
