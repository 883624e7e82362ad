/**
 * The participant-side fence (`concordat.fence`): one row per (participant,
 * global transaction, branch) recording what the participant did, written in
 * the same transaction as the participant's own work. Every mode uses it:
 *
 * - TCC (and saga steps, where Try is the step and Cancel the compensation):
 *   - idempotence: a repeated Confirm or Cancel finds CONFIRMED/CANCELLED and
 *     does nothing;
 *   - empty rollback: a Cancel that finds no row (its Try never arrived)
 *     inserts CANCELLED and undoes nothing;
 *   - anti-hanging (no suspended reservation): a Try that finds CANCELLED is
 *     refused, so a Try delayed past its Cancel cannot reserve resources
 *     nobody will ever release.
 * - 2PC: the prepared transaction itself inserts the row as CONFIRMED, so the
 *   row becomes visible exactly when COMMIT PREPARED commits it: after a
 *   crash, "no prepared transaction and a CONFIRMED row" means committed, "no
 *   prepared transaction and no row" means it never committed. A rollback
 *   that finds nothing prepared inserts CANCELLED, which refuses a prepare
 *   that arrives later (anti-hanging again). The prepare inserts its row
 *   with `heuristic` set and clears it just before PREPARE TRANSACTION: a
 *   row that a `@Prepare` committed itself keeps it, and a prepare delivered
 *   again answers no, marked heuristic, as the first did.
 *
 * Rows are deleted by `cleanupFences` once their global transaction ended
 * and a retention passed.
 *
 * @module
 */

import type { EntityManager } from 'typeorm';
import { ConcordatError, ErrorCode } from '../../errors.js';
import { preparedQuery } from '../../outbox/index.js';

/** What a participant did for one branch, as its fence row records it (see the file header). */
export const FenceState = {
  /** TCC Try done (reserved) / saga step done. */
  TRIED: 'TRIED',
  TRY_FAILED: 'TRY_FAILED',
  /** TCC Confirm done / 2PC branch committed. */
  CONFIRMED: 'CONFIRMED',
  /** TCC Cancel, saga compensation, or 2PC rollback done (possibly empty). */
  CANCELLED: 'CANCELLED',
} as const;
/** One of the {@link FenceState} values. */
export type FenceState = (typeof FenceState)[keyof typeof FenceState];

/** The key of a fence row: one branch of one global transaction, at one participant. */
export interface FenceKey {
  participant: string;
  globalTxId: string;
  branchId: number;
}

/**
 * Inserts the fence row with `state` unless one exists. When another
 * transaction holds an uncommitted row for the same branch, this waits for it
 * (primary-key conflict), then reads and locks the committed row.
 *
 * @returns `{ inserted: true }`, or `{ inserted: false, state }` with the existing row's state, locked until commit.
 */
export async function claimFence(
  manager: EntityManager,
  key: FenceKey,
  state: FenceState,
): Promise<{ inserted: true } | { inserted: false; state: FenceState }> {
  const { rows: inserted } = await preparedQuery(
    manager,
    'concordat_fence_claim',
    `INSERT INTO concordat.fence (participant, global_tx_id, branch_id, state) VALUES ($1, $2, $3, $4)
     ON CONFLICT DO NOTHING RETURNING 1`,
    [key.participant, key.globalTxId, key.branchId, state],
  );
  if (inserted.length === 1) return { inserted: true };
  const existing = await lockFence(manager, key);
  // The row existed at the INSERT; rows are deleted only by cleanup of ended transactions.
  return { inserted: false, state: existing ?? FenceState.CANCELLED };
}

/** Reads and locks the fence row. @returns undefined when there is none. */
export async function lockFence(manager: EntityManager, key: FenceKey): Promise<FenceState | undefined> {
  const { rows } = await preparedQuery<{ state: FenceState }>(
    manager,
    'concordat_fence_lock',
    `SELECT state FROM concordat.fence WHERE participant = $1 AND global_tx_id = $2 AND branch_id = $3 FOR UPDATE`,
    [key.participant, key.globalTxId, key.branchId],
  );
  return rows[0]?.state;
}

/** Sets the state of the branch's existing fence row, in the caller's transaction (no row: nothing changes). */
export async function setFence(manager: EntityManager, key: FenceKey, state: FenceState): Promise<void> {
  await preparedQuery(
    manager,
    'concordat_fence_set',
    `UPDATE concordat.fence SET state = $4, updated_at = now() WHERE participant = $1 AND global_tx_id = $2 AND branch_id = $3`,
    [key.participant, key.globalTxId, key.branchId, state],
  );
}

/**
 * Moves the fence row from `from` to `to`, in one statement, and says
 * whether it did: the common path of Confirm, Cancel and compensation (a
 * branch that tried), where reading the row first would cost a round trip.
 * A false means the row is absent or in another state: look with
 * {@link claimFence} or {@link lockFence}.
 */
export async function advanceFence(manager: EntityManager, key: FenceKey, from: FenceState, to: FenceState): Promise<boolean> {
  const { rowCount } = await preparedQuery(
    manager,
    'concordat_fence_advance',
    `UPDATE concordat.fence SET state = $5, updated_at = now() WHERE participant = $1 AND global_tx_id = $2 AND branch_id = $3 AND state = $4`,
    [key.participant, key.globalTxId, key.branchId, from, to],
  );
  return rowCount === 1;
}

/**
 * A statement (values as escaped literals, for a simple query that carries
 * several statements in one round trip) that inserts the fence row with
 * `state` unless one exists and returns one row if it inserted. With
 * `heuristic`, the row says the branch may have committed work outside its
 * global transaction (2PC, see `two-phase/participant.ts`).
 */
export function fenceInsertSql(key: FenceKey, state: FenceState, escape: (value: string) => string, options: { heuristic?: boolean } = {}): string {
  const heuristic = options.heuristic === true;
  return (
    `INSERT INTO concordat.fence (participant, global_tx_id, branch_id, state${heuristic ? ', heuristic' : ''}) ` +
    `VALUES (${escape(key.participant)}, ${escape(checkedUuid(key.globalTxId))}::uuid, ${checkedInteger(key.branchId)}, ${escape(state)}${heuristic ? ', true' : ''}) ` +
    `ON CONFLICT DO NOTHING RETURNING 1`
  );
}

/** A statement (as {@link fenceInsertSql}) that sets the fence row's `heuristic` flag to `value`. */
export function fenceHeuristicSql(key: FenceKey, value: boolean, escape: (value: string) => string): string {
  return (
    `UPDATE concordat.fence SET heuristic = ${value ? 'true' : 'false'} ` +
    `WHERE participant = ${escape(key.participant)} AND global_tx_id = ${escape(checkedUuid(key.globalTxId))}::uuid AND branch_id = ${checkedInteger(key.branchId)}`
  );
}

/**
 * A statement (as {@link fenceInsertSql}) that moves the fence row from
 * `from` to `to` and returns one row if it did.
 */
export function fenceAdvanceSql(key: FenceKey, from: FenceState, to: FenceState, escape: (value: string) => string): string {
  return (
    `UPDATE concordat.fence SET state = ${escape(to)}, updated_at = now() ` +
    `WHERE participant = ${escape(key.participant)} AND global_tx_id = ${escape(checkedUuid(key.globalTxId))}::uuid ` +
    `AND branch_id = ${checkedInteger(key.branchId)} AND state = ${escape(from)} RETURNING 1`
  );
}

const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

/** Message data is untrusted: a global transaction ID that is not a UUID is refused before it reaches SQL text. */
function checkedUuid(value: string): string {
  if (typeof value !== 'string' || !UUID.test(value)) {
    throw new ConcordatError(`a command names global transaction '${String(value)}', which is not a UUID`, { code: ErrorCode.ENVELOPE_INVALID });
  }
  return value;
}

function checkedInteger(value: number): string {
  if (!Number.isSafeInteger(value)) {
    throw new ConcordatError(`a command names branch '${String(value)}', which is not an integer`, { code: ErrorCode.ENVELOPE_INVALID });
  }
  return String(value);
}
