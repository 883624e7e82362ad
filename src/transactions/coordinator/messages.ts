/**
 * The wire contract between the coordinator and participants of every mode.
 * Commands travel on the participant's topic (`concordat.<tcc|xa|saga>.<name>`),
 * replies on `concordat.tx.replies`, both keyed by the global transaction ID
 * so that everything about one global transaction stays in one partition, in
 * order, and replies of one global transaction reach one coordinator
 * instance at a time (the consumer group gives each partition one owner).
 *
 * @module
 */

import { v5 as uuidv5 } from 'uuid';
import { GlobalTxState, TxMode } from './states.js';

/** The command a coordinator sends a branch; each mode uses its own (see {@link MODE_ACTIONS}). */
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
/** One of the {@link BranchAction} values. */
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

/** Each mode's actions and command topic prefixes. */
export const MODE_ACTIONS: Readonly<Record<TxMode, ModeActions>> = {
  [TxMode.TCC]: {
    phaseOne: BranchAction.TRY,
    commit: BranchAction.CONFIRM,
    rollback: BranchAction.CANCEL,
    topicPrefix: 'concordat.tcc.',
    decisionTopicPrefix: null,
  },
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
   * A TCC Try that voted yes, or a saga step that succeeded: the command's
   * payload, echoed, so that a coordinator that does not hold the global
   * transaction can still send a Cancel (or the step's compensation) that
   * carries it, as every command of a branch does (`@Cancel` and
   * `@Compensate` need it to know what to undo; see `presumeAbort`).
   */
  payload?: unknown;
  /**
   * A saga step's ok that ran nothing: the step had already run (its fence
   * row was there), and this repeats that earlier answer. A coordinator that
   * does not hold the saga compensates only a step that ran in this very
   * delivery (see `TransactionCoordinator.onUnknown`).
   */
  repeated?: boolean;
  /**
   * With `ok: false` in phase one: the branch did not prepare, but its work
   * may have committed outside the global transaction (a 2PC `@Prepare` that
   * ended the branch transaction itself: `PREPARE_WITHOUT_TRANSACTION`). The
   * other branches are still rolled back, but this one FAILS and the global
   * transaction ends FAILED, for an operator, instead of CANCELLED.
   */
  heuristic?: boolean;
}

/** The states a global transaction ends in (an outcome message carries one). */
export type GlobalTxEndState = typeof GlobalTxState.CONFIRMED | typeof GlobalTxState.CANCELLED | typeof GlobalTxState.FAILED;

/** Data of the message published on a global transaction's outcome topic when it ends. */
export interface GlobalTxOutcome<P = unknown> {
  globalTxId: string;
  name: string;
  mode: TxMode;
  /** How it ended: CONFIRMED, CANCELLED or FAILED. */
  state: GlobalTxEndState;
  /** Why it was cancelled or failed. */
  reason: string | null;
  /** The payload given at begin. */
  payload: P;
}

/** Namespace of {@link decisionMessageId}'s name-based UUIDs (a constant: changing it changes every ID). */
const DECISION_ID_NAMESPACE = '5b0c8f7e-2d5f-4a51-9d0e-3c8a41f6b7a2';

/**
 * The message ID of a TCC or 2PC decision command (Confirm, Cancel, commit,
 * rollback) sent by the coordinator itself: the same for every send of
 * that action to that branch — the first and each resend — a name-based
 * UUID (RFC 9562 §5.5, version 5) of `<global tx>:<branch>:<action>`.
 * A presumed abort has IDs of its own ({@link presumedAbortMessageId}).
 *
 * Why: a participant whose handler keeps failing dead-letters the command,
 * and the coordinator then sends it again with backoff until it is
 * acknowledged. With a new ID per send, every resend became one more dead
 * letter for the same branch action (`concordat.dead_letter` keeps one
 * pending row per consumer and message ID). With one ID, the participant
 * still runs each resend (a failed attempt records nothing in its inbox),
 * a resend that fails again finds its dead letter pending and adds none, and
 * a resend that arrives after the command succeeded is skipped by the inbox
 * (its reply is on its way).
 *
 * Not for: phase one (sent once, then by an operator), saga steps and
 * compensations (a step that failed retriably was answered — its inbox row
 * is written — and must run again when sent again), and an operator's retry
 * (`concordat tx retry`), which gets new IDs so that it reaches a
 * participant that did answer — a refusal the operator has since repaired,
 * or an acknowledgement the coordinator lost (dead-lettered on its side).
 */
export function decisionMessageId(globalTxId: string, branchId: number, action: BranchAction): string {
  return uuidv5(`${globalTxId}:${branchId}:${action}`, DECISION_ID_NAMESPACE);
}

/**
 * The message ID of a presumed abort (a Cancel or rollback the coordinator
 * sends for a phase-one yes of a global transaction it does not hold): a
 * UUIDv5 of `<global tx>:<branch>:<action>:presumed:<reply message ID>`.
 *
 * Not {@link decisionMessageId}: the branch may have received that ID
 * before, when the coordinator did hold the transaction and cancelled it
 * (an empty rollback: the Try had not arrived yet). The participant's inbox
 * keeps that ID for its dedup window, which may outlast the fence row (the
 * fence retention); a Try redelivered in between reserves again, and a
 * presumed Cancel with the old ID would be skipped as a duplicate, leaving
 * the reservation held for ever. Derived from the reply: a reply delivered
 * again yields the same ID (one Cancel), a new run of the Try (a new reply)
 * a new one.
 */
export function presumedAbortMessageId(globalTxId: string, branchId: number, action: BranchAction, replyMessageId: string): string {
  return uuidv5(`${globalTxId}:${branchId}:${action}:presumed:${replyMessageId}`, DECISION_ID_NAMESPACE);
}

/** Whether `action` is a decision of `mode` whose sends share one message ID (see {@link decisionMessageId}). */
export function hasStableMessageId(mode: TxMode, action: BranchAction): boolean {
  if (mode === TxMode.SAGA) return false;
  const actions = MODE_ACTIONS[mode];
  return action === actions.commit || action === actions.rollback;
}
