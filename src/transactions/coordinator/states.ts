/** The protocol of a global transaction: TCC (Try-Confirm-Cancel), 2PC (PostgreSQL's PREPARE TRANSACTION), or a saga (steps with compensations). */
export const TxMode = {
  TCC: 'TCC',
  TWO_PHASE: '2PC',
  SAGA: 'SAGA',
} as const;
/** One of the {@link TxMode} values. */
export type TxMode = (typeof TxMode)[keyof typeof TxMode];

/**
 * One state model for TCC, 2PC and sagas (docs/transactions.md, "The model"
 * and "States", gives each protocol's transitions).
 * Each global transaction row moves through these states; every transition
 * is written in the same database transaction as the commands it sends
 * (outbox) and the reply it consumed (inbox), so it happens exactly once.
 *
 * | state      | TCC                      | 2PC                         | saga                                  |
 * |------------|--------------------------|-----------------------------|---------------------------------------|
 * | TRYING     | Try sent, collecting votes | prepare sent, collecting votes | steps running forward, one at a time |
 * | CONFIRMING | Confirm sent to all      | COMMIT PREPARED sent to all | (never: the last step ends the saga)  |
 * | CANCELLING | Cancel sent to all       | ROLLBACK PREPARED sent to all | compensating done steps, in reverse |
 * | CONFIRMED  | every branch confirmed   | every branch committed      | every step done                       |
 * | CANCELLED  | every branch cancelled   | every branch rolled back    | every done step compensated           |
 * | FAILED     | a branch could not confirm or cancel (protocol violation, or no acknowledgement after `decisionResendsMax` resends), or an operator ended it so by hand; needs an operator |||
 */
export const GlobalTxState = {
  /** Phase one: Try / prepare sent to every branch, or saga steps running; votes being collected. */
  TRYING: 'TRYING',
  /** Decided to commit: Confirm / commit sent, acknowledgements being collected. */
  CONFIRMING: 'CONFIRMING',
  /** Decided to roll back: Cancel / rollback / compensations sent, acknowledgements being collected. */
  CANCELLING: 'CANCELLING',
  /** Terminal: every branch confirmed (committed, or every saga step done). */
  CONFIRMED: 'CONFIRMED',
  /** Terminal: every branch cancelled (rolled back, compensated, or never started). */
  CANCELLED: 'CANCELLED',
  /** Terminal until an operator acts: a branch could not finish (a compensation that cannot succeed, a heuristic outcome, a decision never acknowledged), or an operator ended it FAILED by hand. */
  FAILED: 'FAILED',
} as const;
/** One of the {@link GlobalTxState} values. */
export type GlobalTxState = (typeof GlobalTxState)[keyof typeof GlobalTxState];

/** The states a global transaction does not leave by itself (FAILED only through an operator's `concordat tx retry` or `tx end`). */
export const TERMINAL_STATES: readonly GlobalTxState[] = [GlobalTxState.CONFIRMED, GlobalTxState.CANCELLED, GlobalTxState.FAILED];

/** The two decisions a global transaction can take. */
export type Decision = typeof GlobalTxState.CONFIRMING | typeof GlobalTxState.CANCELLING;

/** The state of one branch (participant) of a global transaction; the table in docs/transactions.md, "States". */
export const BranchState = {
  /** Saga only: a later step, not started yet. */
  WAITING: 'WAITING',
  /** Try, prepare or saga step sent; no vote yet. */
  PENDING: 'PENDING',
  /** Voted yes: reserved (TCC), prepared (2PC), or step done (saga). */
  TRIED: 'TRIED',
  /** Voted no: nothing is held. */
  TRY_FAILED: 'TRY_FAILED',
  CONFIRMED: 'CONFIRMED',
  CANCELLED: 'CANCELLED',
  /** Could not confirm, cancel or compensate; the global transaction is FAILED and an operator must look. */
  FAILED: 'FAILED',
} as const;
/** One of the {@link BranchState} values. */
export type BranchState = (typeof BranchState)[keyof typeof BranchState];

/** Kinds of the rows of `concordat.global_tx_event`, the timeline of a global transaction. */
export const TxEventKind = {
  BEGUN: 'BEGUN',
  /** Commands written to the outbox: detail names the action and branches. */
  SENT: 'SENT',
  /** A branch replied: detail is ok, or the error. */
  REPLIED: 'REPLIED',
  /** A saga step failed and will be tried again: detail gives the delay. */
  RETRY_SCHEDULED: 'RETRY_SCHEDULED',
  DECIDED: 'DECIDED',
  /** Commands sent again to branches that did not acknowledge. */
  RESENT: 'RESENT',
  /** A branch could not finish. */
  BRANCH_FAILED: 'BRANCH_FAILED',
  ENDED: 'ENDED',
  /** An operator's `concordat tx retry`, `tx abort` or `tx end` (detail: what, and for `end` who and why). */
  OPERATOR: 'OPERATOR',
} as const;
/** One of the {@link TxEventKind} values. */
export type TxEventKind = (typeof TxEventKind)[keyof typeof TxEventKind];
