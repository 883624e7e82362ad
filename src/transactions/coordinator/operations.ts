/**
 * What operators do to global transactions (`concordat tx list|show|retry|abort`),
 * as functions over a DataSource so that tools and tests use the same code.
 * Retry and abort go through the coordinator's own state machine, under the
 * row lock, with their commands in the outbox of the same transaction: a
 * running coordinator and an operator can never both drive one step.
 *
 * @module
 */

import type { DataSource, EntityManager } from 'typeorm';
import { ConcordatError, ErrorCode } from '../../errors.js';
import { runTransaction } from '../../persistence/transaction.js';
import { TransactionContext } from '../../runtime/index.js';
import { compileCoordinatorOptions, type CoordinatorOptions } from '../../config/index.js';
import { timingOf } from './coordinator.js';
import { driveGlobalTx } from './driver.js';
import type { EndByHandState, Transition, TxInput } from './protocol.js';
import type { GlobalTxState, TxMode } from './states.js';
import { isGlobalTxId } from './store.js';

/** What `concordat tx list` ({@link listGlobalTxs}) selects. */
export interface ListFilter {
  /** Only these states. @default every state */
  states?: GlobalTxState[];
  mode?: TxMode;
  /** Only transactions created at least this long ago, in ms. @default 0 */
  olderThanMs?: number;
  /** Most rows returned. Range 1..10000. @default 50 */
  limit?: number;
}

/** One global transaction as `concordat tx list` shows it. */
export interface GlobalTxSummary {
  id: string;
  mode: string;
  name: string;
  state: string;
  /** Seconds since it began. */
  ageSeconds: number;
  /** Seconds until the deadline (negative once passed). */
  deadlineInSeconds: number;
  /** `CONFIRMED 2/3`-like tally of branch states. */
  branches: string;
  reason: string | null;
  createdAt: Date;
  endedAt: Date | null;
  /**
   * Seconds since a coordinator should have acted on it and has not, or
   * null: an undecided one past its deadline (the deadline scan decides it
   * within a scan interval), or an active one past its resend time. Large
   * values mean no coordinator runs on this database (see {@link overdueSql}).
   */
  overdueSeconds: number | null;
}

/**
 * How long a coordinator is late, on the database clock: since the deadline
 * for an undecided (TRYING) transaction, since the resend time for any active
 * one; null for one that ended or is not due. Both are what the coordinator's
 * scans claim every `scanIntervalMs` (`claimDue`), so a value beyond a scan
 * interval or two (plus a batch backlog) means none is scanning this
 * database: begun while no app with `TransactionCoordinator` runs, or its
 * coordinator stopped.
 */
const overdueSql = (g: string): string => `
  CASE WHEN ${g}.ended_at IS NULL THEN
    round(extract(epoch FROM now() - LEAST(CASE WHEN ${g}.state = 'TRYING' THEN ${g}.deadline END, ${g}.resend_at))::numeric, 1)::float8
  END`;

/** Global transactions, oldest first, by state and age. */
export async function listGlobalTxs(manager: EntityManager, filter: ListFilter = {}): Promise<GlobalTxSummary[]> {
  const limit = Math.max(1, Math.min(10_000, filter.limit ?? 50));
  return manager.query(
    `SELECT g.id, g.mode, g.name, g.state, g.reason, g.created_at AS "createdAt", g.ended_at AS "endedAt",
            round(extract(epoch FROM now() - g.created_at)::numeric, 1)::float8 AS "ageSeconds",
            round(extract(epoch FROM g.deadline - now())::numeric, 1)::float8 AS "deadlineInSeconds",
            (SELECT CASE WHEN o.s > 0 THEN o.s END FROM (SELECT ${overdueSql('g')} AS s) o) AS "overdueSeconds",
            (SELECT string_agg(s.state || ' ' || s.n, ', ' ORDER BY s.state)
               FROM (SELECT b.state, count(*) AS n FROM concordat.branch b WHERE b.global_tx_id = g.id GROUP BY b.state) s) AS branches
       FROM concordat.global_transaction g
      WHERE ($1::text[] IS NULL OR g.state = ANY($1::text[]))
        AND ($2::text IS NULL OR g.mode = $2)
        AND g.created_at <= now() - make_interval(secs => $3::double precision / 1000)
      ORDER BY g.created_at
      LIMIT $4`,
    [filter.states ?? null, filter.mode ?? null, filter.olderThanMs ?? 0, limit],
  );
}

/** Which global transactions a page of {@link browseGlobalTxs} shows, and where it starts. */
export interface BrowseFilter {
  /** Only these states. @default every state */
  states?: GlobalTxState[];
  mode?: TxMode;
  /** Only names containing this text (case-insensitive). */
  name?: string;
  /** Only transactions created at least this long ago, in ms. */
  olderThanMs?: number;
  /** Only transactions created at most this long ago, in ms. */
  newerThanMs?: number;
  /**
   * A business key in the payload: `field=value` matches a top-level field's
   * text (`orderId=O-17`), anything else matches the payload's JSON text
   * containing it (case-insensitive).
   */
  key?: string;
  /** Cursor: the `next` of the previous page; the page starts after this ID. */
  after?: string;
  /** Rows per page. Range 1..500. @default 50 */
  limit?: number;
  /** Most rows one page examines (the bound on the work of one request). Range 1..100000. @default 5000 */
  scanMax?: number;
}

/** One page of {@link browseGlobalTxs}. */
export interface GlobalTxPage {
  rows: GlobalTxSummary[];
  /** Cursor of the next page (`after`), or null at the end. */
  next: string | null;
  /** Rows this page examined (at most `scanMax`). */
  scanned: number;
}

/**
 * A page of global transactions, newest first by ID (a UUIDv7 by default,
 * so by begin time; IDs given at begin sort as UUIDs), for the console.
 *
 * Keyset pagination over the primary key: a page walks the index from the
 * cursor and examines at most `scanMax` rows, whatever the filter, so no
 * request scans a large table. When the filter matches fewer than `limit`
 * of the examined rows, `next` continues the search from the last row
 * examined (the page may then hold fewer rows than `limit`, even none).
 */
export async function browseGlobalTxs(manager: EntityManager, filter: BrowseFilter = {}): Promise<GlobalTxPage> {
  const limit = Math.max(1, Math.min(500, filter.limit ?? 50));
  const scanMax = Math.max(1, Math.min(100_000, filter.scanMax ?? 5000));
  const after = filter.after !== undefined && isGlobalTxId(filter.after) ? filter.after : null;
  const key = parseKey(filter.key);
  const [result] = await manager.query<
    Array<{ scanned: number; last: string | null; rows: Array<GlobalTxSummary & { createdAt: string; endedAt: string | null }> }>
  >(
    `WITH w AS (
       SELECT * FROM concordat.global_transaction WHERE ($1::uuid IS NULL OR id < $1::uuid) ORDER BY id DESC LIMIT $2)
     SELECT (SELECT count(*) FROM w)::int AS scanned, (SELECT min(id::text) FROM w) AS last,
            (SELECT coalesce(json_agg(m ORDER BY m.id DESC), '[]'::json) FROM (
               SELECT g.id, g.mode, g.name, g.state, g.reason, g.created_at AS "createdAt", g.ended_at AS "endedAt",
                      round(extract(epoch FROM now() - g.created_at)::numeric, 1)::float8 AS "ageSeconds",
                      round(extract(epoch FROM g.deadline - now())::numeric, 1)::float8 AS "deadlineInSeconds",
                      (SELECT CASE WHEN o.s > 0 THEN o.s END FROM (SELECT ${overdueSql('g')} AS s) o) AS "overdueSeconds",
                      (SELECT string_agg(s.state || ' ' || s.n, ', ' ORDER BY s.state)
                         FROM (SELECT b.state, count(*) AS n FROM concordat.branch b WHERE b.global_tx_id = g.id GROUP BY b.state) s) AS branches
                 FROM w g
                WHERE ($3::text[] IS NULL OR g.state = ANY($3::text[]))
                  AND ($4::text IS NULL OR g.mode = $4)
                  AND ($5::text IS NULL OR strpos(lower(g.name), lower($5)) > 0)
                  AND ($6::float8 IS NULL OR g.created_at <= now() - make_interval(secs => $6 / 1000))
                  AND ($7::float8 IS NULL OR g.created_at >= now() - make_interval(secs => $7 / 1000))
                  AND ($8::text IS NULL OR g.payload ->> $8 = $9)
                  AND ($10::text IS NULL OR strpos(lower(g.payload::text), lower($10)) > 0)
                ORDER BY g.id DESC LIMIT $11) m) AS rows`,
    [
      after,
      scanMax,
      filter.states ?? null,
      filter.mode ?? null,
      filter.name === undefined || filter.name === '' ? null : filter.name,
      filter.olderThanMs ?? null,
      filter.newerThanMs ?? null,
      key?.field ?? null,
      key?.value ?? null,
      key?.text ?? null,
      limit,
    ],
  );
  const rows = result!.rows.map((row) => ({ ...row, createdAt: new Date(row.createdAt), endedAt: row.endedAt === null ? null : new Date(row.endedAt) }));
  const next = rows.length === limit ? rows[rows.length - 1]!.id : result!.scanned === scanMax ? result!.last : null;
  return { rows, next, scanned: result!.scanned };
}

function parseKey(key: string | undefined): { field?: string; value?: string; text?: string } | undefined {
  if (key === undefined || key.trim() === '') return undefined;
  const match = /^\s*([A-Za-z_][\w.-]*)\s*=\s*(.*?)\s*$/.exec(key);
  return match === null ? { text: key.trim() } : { field: match[1]!, value: match[2]! };
}

/** One global transaction as `concordat tx show` shows it: its row, branches and timeline. */
export interface GlobalTxDetail {
  tx: {
    id: string;
    mode: string;
    name: string;
    state: string;
    decision: string | null;
    reason: string | null;
    payload: unknown;
    createdAt: Date;
    deadline: Date;
    decidedAt: Date | null;
    endedAt: Date | null;
    resendAt: Date | null;
    resendCount: number;
    /** As in {@link GlobalTxSummary}. */
    overdueSeconds: number | null;
  };
  branches: Array<{ branchId: number; participant: string; state: string; attempts: number; error: string | null; result: unknown; updatedAt: Date }>;
  events: Array<{ at: Date; kind: string; branchId: number | null; state: string | null; detail: string | null }>;
}

/** A global transaction with its branches and timeline. @returns undefined when it does not exist */
export async function showGlobalTx(manager: EntityManager, id: string): Promise<GlobalTxDetail | undefined> {
  if (!isGlobalTxId(id)) return undefined;
  const txs: GlobalTxDetail['tx'][] = await manager.query(
    `SELECT id, mode, name, state, decision, reason, payload, created_at AS "createdAt", deadline, decided_at AS "decidedAt",
            ended_at AS "endedAt", resend_at AS "resendAt", resend_count AS "resendCount",
            (SELECT CASE WHEN o.s > 0 THEN o.s END FROM (SELECT ${overdueSql('g')} AS s) o) AS "overdueSeconds"
       FROM concordat.global_transaction g WHERE id = $1`,
    [id],
  );
  const tx = txs[0];
  if (tx === undefined) return undefined;
  const branches: GlobalTxDetail['branches'] = await manager.query(
    `SELECT branch_id AS "branchId", participant, state, attempts, error, result, updated_at AS "updatedAt"
       FROM concordat.branch WHERE global_tx_id = $1 ORDER BY branch_id`,
    [id],
  );
  const events: GlobalTxDetail['events'] = await manager.query(
    `SELECT at, kind, branch_id AS "branchId", state, detail FROM concordat.global_tx_event WHERE global_tx_id = $1 ORDER BY seq`,
    [id],
  );
  return { tx, branches, events };
}

/**
 * Retries a stuck phase: sends phase one again to branches that have not
 * voted, a decision again to branches that have not acknowledged, or reopens
 * a FAILED transaction in its decision. The timeline records `retry <state>`,
 * and `by <who>` when `by` is given (1..200 characters).
 *
 * @throws ConcordatError GLOBAL_TX_NOT_FOUND, or GLOBAL_TX_STATE_INVALID for one that ended CONFIRMED or CANCELLED.
 */
export async function retryGlobalTx(dataSource: DataSource, id: string, options: CoordinatorOptions = {}, by?: string): Promise<Transition> {
  return operate(dataSource, id, { kind: 'retry', ...(by !== undefined && { by: checkedBy(by) }) }, options);
}

/**
 * Aborts an undecided (TRYING) global transaction: it decides CANCELLING with
 * `aborted by operator: <reason>` and the usual rollback follows. The
 * timeline records `abort: <reason>`, or `abort by <who>: <reason>` when
 * `by` is given (1..200 characters).
 *
 * @throws ConcordatError GLOBAL_TX_NOT_FOUND, or GLOBAL_TX_STATE_INVALID once it has decided; CONFIG_INVALID for an empty or too long `by`.
 */
export async function abortGlobalTx(dataSource: DataSource, id: string, reason: string, options: CoordinatorOptions = {}, by?: string): Promise<Transition> {
  return operate(dataSource, id, { kind: 'abort', reason, ...(by !== undefined && { by: checkedBy(by) }) }, options);
}

function checkedBy(by: string): string {
  if (by.trim().length === 0 || by.length > 200) {
    throw new ConcordatError('an operator action needs a who (by) of 1..200 characters', { code: ErrorCode.CONFIG_INVALID, context: { by } });
  }
  return by;
}

/** Who ends a global transaction by hand, and how (see {@link endGlobalTx}). */
export interface EndByHand {
  /** The end state: CANCELLED (every branch is settled, by the protocol or by hand) or FAILED (it is not, and a person must look). */
  as: EndByHandState;
  /** Why, for the timeline and the reason. 1..1000 characters. */
  reason: string;
  /** Who, for the timeline and the reason (`alice@host`). 1..200 characters. */
  by: string;
  /** End it even though branches may still act, or as CANCELLED against a CONFIRMING decision. @default false */
  force?: boolean;
}

/**
 * Ends a global transaction by hand, in CANCELLED or FAILED: the coordinator
 * stops driving it, its outcome is published, its timeline records
 * `end as <state> by <who>: <why>`, and no command is sent to any branch —
 * what a branch holds stays held. Refused while branches may still act
 * unless `force` (see `protocol.ts`, `endByHand`, for the rules).
 *
 * @throws ConcordatError GLOBAL_TX_NOT_FOUND; GLOBAL_TX_STATE_INVALID for one that already ended, or whose branches may still act without `force`; CONFIG_INVALID for an empty reason or who.
 */
export async function endGlobalTx(dataSource: DataSource, id: string, how: EndByHand, options: CoordinatorOptions = {}): Promise<Transition> {
  for (const [name, value, max] of [
    ['reason', how.reason, 1000],
    ['by', how.by, 200],
  ] as const) {
    if (value.trim().length === 0 || value.length > max) {
      throw new ConcordatError(`ending a global transaction by hand needs a ${name} of 1..${max} characters`, {
        code: ErrorCode.CONFIG_INVALID,
        context: { [name]: value },
      });
    }
  }
  return operate(dataSource, id, { kind: 'end', as: how.as, reason: how.reason, by: how.by, force: how.force ?? false }, options);
}

/** What an operator action did, in words: `now CANCELLING; sent CANCEL → branch 1, CANCEL → branch 2`, or `nothing to do`. */
export function describeTransition(step: Transition): string {
  const parts: string[] = [];
  if (step.tx !== undefined) parts.push(`now ${step.tx.state}`);
  if (step.commands.length > 0) parts.push(`sent ${step.commands.map((c) => `${c.action} → branch ${c.branchId}`).join(', ')}`);
  return parts.length > 0 ? parts.join('; ') : 'nothing to do';
}

async function operate(dataSource: DataSource, id: string, input: TxInput, options: CoordinatorOptions): Promise<Transition> {
  const timing = timingOf(compileCoordinatorOptions(options));
  return runTransaction(dataSource, async (manager) => {
    const context = new TransactionContext(manager, 'concordat-operator');
    const step = await driveGlobalTx(context, id, input, timing);
    if (step === undefined) {
      throw new ConcordatError(`global transaction ${id} does not exist`, { code: ErrorCode.GLOBAL_TX_NOT_FOUND, context: { id } });
    }
    await context.flush();
    return step;
  });
}
