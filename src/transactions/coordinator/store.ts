/**
 * SQL over `concordat.global_transaction`, `concordat.branch` and
 * `concordat.global_tx_event`, always through the caller's EntityManager so
 * that state changes commit with the commands (outbox) and replies (inbox)
 * of the same step. Times come from the database clock (`now()`), so every
 * coordinator instance agrees on deadlines.
 *
 * Each step costs one statement to read (the global transaction row locked,
 * its branches aggregated) and one to write (data-modifying CTEs: branches,
 * events and the global transaction together), because a coordinator's
 * throughput is its round trips to Postgres. The statements that run for
 * every global transaction or reply batch are named prepared statements
 * (`preparedQuery`): their CTEs cost PostgreSQL more to parse and plan than
 * to run.
 *
 * @module
 */

import { batchOn } from '../participant/sql.js';
import type { EntityManager } from 'typeorm';
import { ConcordatError, ErrorCode } from '../../errors.js';
import { inboxClaimSql, readInboxClaim, type InboxClaim } from '../../inbox/index.js';
import type { TraceCarrier } from '../../observability/index.js';
import { preparedQuery } from '../../outbox/index.js';
import type { CompiledRetryPolicy } from '../../runtime/index.js';
import type { BranchView, Transition, TxEvent, TxView } from './protocol.js';
import { TxEventKind, type BranchState, type Decision, type GlobalTxState, type TxMode } from './states.js';

/** A `concordat.global_transaction` row as the coordinator reads it. */
export interface GlobalTxRow extends TxView {
  name: string;
  deadline: Date;
  payload: unknown;
  outcomeTopic: string | null;
  outcomeKey: string | null;
  /** The begin span's W3C trace context (`options.trace`), when a propagator was registered: the parent of the steps the coordinator's scan takes. */
  trace?: TraceCarrier | null;
}

/** A `concordat.branch` row as the coordinator reads it: the state machine's view and the branch's payload. */
export interface BranchRow extends BranchView {
  payload: unknown;
}

/** A branch to insert at begin. */
export interface NewBranch {
  branchId: number;
  participant: string;
  state: BranchState;
  payload: unknown;
  retryPolicy?: CompiledRetryPolicy | null;
}

/** A global transaction to insert at begin (its deadline is `timeoutMs` from now on the database clock). */
export interface NewGlobalTx {
  id: string;
  mode: TxMode;
  name: string;
  state: GlobalTxState;
  timeoutMs: number;
  payload: unknown;
  outcomeTopic: string | null;
  outcomeKey: string | null;
  /** Saga: the compensation retry policy. */
  compensationRetry?: CompiledRetryPolicy | null;
  /** The begin span's trace context, kept in `options` (see {@link GlobalTxRow.trace}). */
  trace?: TraceCarrier;
  branches: NewBranch[];
  /** Timeline detail of the commands begin sends (`try → branch 1, 2`). */
  sent: string;
}

/** JSON text for a jsonb parameter; SQL NULL for undefined and null. */
const json = (value: unknown): string | null => (value === undefined || value === null ? null : JSON.stringify(value));

/**
 * Inserts a global transaction, its branches and its first two timeline
 * events in one statement; the deadline is `now() + timeoutMs` on the
 * database clock.
 */
export async function insertGlobalTx(manager: EntityManager, tx: NewGlobalTx): Promise<void> {
  const traced = tx.trace?.traceparent !== undefined;
  const retry = tx.compensationRetry !== undefined && tx.compensationRetry !== null;
  const options = !retry && !traced ? null : { ...(retry && { compensationRetry: tx.compensationRetry }), ...(traced && { trace: tx.trace }) };
  await preparedQuery(
    manager,
    'concordat_insert_global_tx',
    `WITH g AS (
       INSERT INTO concordat.global_transaction (id, mode, name, state, deadline, payload, outcome_topic, outcome_key, options)
       VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5::double precision / 1000), $6, $7, $8, $9)
     ), b AS (
       INSERT INTO concordat.branch (global_tx_id, branch_id, participant, state, payload, retry_policy)
       SELECT $1, * FROM unnest($10::int[], $11::text[], $12::text[], $13::jsonb[], $14::jsonb[])
     )
     INSERT INTO concordat.global_tx_event (global_tx_id, kind, state, detail)
     VALUES ($1, '${TxEventKind.BEGUN}', $4, $15), ($1, '${TxEventKind.SENT}', NULL, $16)`,
    [
      tx.id,
      tx.mode,
      tx.name,
      tx.state,
      tx.timeoutMs,
      json(tx.payload),
      tx.outcomeTopic,
      tx.outcomeKey,
      json(options),
      tx.branches.map((b) => b.branchId),
      tx.branches.map((b) => b.participant),
      tx.branches.map((b) => b.state),
      tx.branches.map((b) => json(b.payload)),
      tx.branches.map((b) => json(b.retryPolicy)),
      `${tx.mode} '${tx.name}' with ${tx.branches.length} branch(es): ${tx.branches.map((b) => b.participant).join(', ')}`,
      tx.sent,
    ],
  );
}

const GLOBAL_TX_SELECT = `
  SELECT g.id, g.mode, g.name, g.state, g.decision, g.reason, g.deadline, g.payload,
         g.outcome_topic AS "outcomeTopic", g.outcome_key AS "outcomeKey", g.resend_count AS "resendCount",
         g.options -> 'compensationRetry' AS "compensationRetry", g.options -> 'trace' AS "trace",
         (SELECT json_agg(json_build_object(
                   'branchId', b.branch_id, 'participant', b.participant, 'state', b.state, 'payload', b.payload,
                   'result', b.result, 'error', b.error, 'attempts', b.attempts, 'retryPolicy', b.retry_policy)
                 ORDER BY b.branch_id)
            FROM concordat.branch b WHERE b.global_tx_id = g.id) AS branches
    FROM concordat.global_transaction g`;

interface LoadedRow extends GlobalTxRow {
  branches: BranchRow[] | null;
}

/** A global transaction with its branches, as a step reads it. */
export interface LoadedGlobalTx {
  tx: GlobalTxRow;
  branches: BranchRow[];
}

/**
 * Locks a global transaction row (`FOR UPDATE`) and reads it with its
 * branches, in one round trip. Concurrent steps on one global transaction
 * (a reply, the deadline scan, an operator) therefore run one after the other.
 *
 * @returns undefined when there is no such global transaction.
 */
export async function lockGlobalTx(manager: EntityManager, id: string): Promise<LoadedGlobalTx | undefined> {
  return (await lockGlobalTxs(manager, [id])).get(id);
}

/**
 * Locks several global transactions, in ID order (so two batches locking
 * overlapping sets cannot deadlock each other), and then reads them with
 * their branches: two statements in one round trip.
 *
 * Why two: under READ COMMITTED, a `SELECT … FOR UPDATE` that waited for
 * another transaction's lock re-reads the locked row itself, but whatever
 * else the statement reads (the branches, in a subquery) still comes from
 * the snapshot it took before waiting. A step that waited for a sibling
 * branch's reply would then decide on that branch's old state (and never
 * decide). The second statement takes a new snapshot, after the locks are
 * held: it sees everything committed before them.
 * @returns the ones that exist, by ID.
 */
export async function lockGlobalTxs(manager: EntityManager, ids: readonly string[]): Promise<Map<string, LoadedGlobalTx>> {
  const valid = [...new Set(ids)].filter((id) => UUID.test(id));
  if (valid.length === 0) return new Map();
  const batch = await batchOn(manager);
  const list = valid.map((id) => `${batch.escape(id)}::uuid`).join(', ');
  const [locked, read] = await batch.run([lockStatement(list), `${GLOBAL_TX_SELECT} WHERE g.id IN (${list})`]);
  return loadedById(
    onlyLocked(
      read!.rows as LoadedRow[],
      locked!.rows.map((row: { id: string }) => row.id),
    ),
  );
}

function lockStatement(list: string): string {
  return `SELECT g.id FROM concordat.global_transaction g WHERE g.id IN (${list}) ORDER BY g.id FOR UPDATE`;
}

/** The rows of the read whose global transaction the lock statement locked (one begun in between is left out: not locked). */
function onlyLocked(rows: readonly LoadedRow[], lockedIds: readonly string[]): LoadedRow[] {
  const locked = new Set(lockedIds);
  return rows.filter((row) => locked.has(row.id));
}

function loadedById(rows: readonly LoadedRow[]): Map<string, LoadedGlobalTx> {
  return new Map(rows.map(({ branches, ...tx }) => [tx.id, { tx, branches: branches ?? [] }]));
}

/**
 * Three statements, with their values as escaped literals so that they can
 * travel with `BEGIN` (`runOutboxTransaction`'s prelude): the inbox claim
 * of `messageIds` for `consumer` (`inboxClaimSql`); the lock of the global
 * transactions `ids`, in ID order; their read with their branches, under a
 * snapshot taken after the locks (see {@link lockGlobalTxs} for why). Parse
 * their results with {@link parseInboxAndLock}.
 */
export function inboxAndLockSql(consumer: string, messageIds: readonly string[], ids: readonly string[], escape: (value: string) => string): string {
  // Message data is untrusted: only UUIDs reach the SQL text (others are simply not found).
  const txIds = [...new Set(ids)].filter((id) => UUID.test(id)).map((id) => `${escape(id)}::uuid`);
  const list = txIds.length === 0 ? 'NULL::uuid' : txIds.join(', ');
  return `${inboxClaimSql(consumer, messageIds, escape)}; ${lockStatement(list)}; ${GLOBAL_TX_SELECT} WHERE g.id IN (${list})`;
}

const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

/** Whether `id` can name a global transaction (a UUID); anything else names none. */
export function isGlobalTxId(id: unknown): id is string {
  return typeof id === 'string' && UUID.test(id);
}

/**
 * Reads the results of {@link inboxAndLockSql}'s three statements: the
 * inbox claim (which reply IDs are new) and the global transactions locked.
 */
export function parseInboxAndLock(results: readonly unknown[][]): { claim: InboxClaim; txs: Map<string, LoadedGlobalTx> } {
  const [claimed, locked, txs] = results as [unknown[] | undefined, Array<{ id: string }> | undefined, LoadedRow[] | undefined];
  if (claimed === undefined || locked === undefined || txs === undefined)
    throw new Error('assertion failed: the inbox-and-lock statements returned fewer than three results');
  return {
    claim: readInboxClaim(claimed),
    txs: loadedById(
      onlyLocked(
        txs,
        locked.map((row) => row.id),
      ),
    ),
  };
}

/** Like {@link lockGlobalTx}, for a row that must exist. @throws ConcordatError GLOBAL_TX_NOT_FOUND */
export async function mustLockGlobalTx(manager: EntityManager, id: string): Promise<LoadedGlobalTx> {
  const found = await lockGlobalTx(manager, id);
  if (found === undefined) {
    throw new ConcordatError(`global transaction ${id} does not exist`, { code: ErrorCode.GLOBAL_TX_NOT_FOUND, context: { id } });
  }
  return found;
}

/**
 * Writes a transition computed by `protocol.ts`: changed branches, timeline
 * events and the global transaction row, in one statement. Does nothing when
 * nothing changed (a duplicate reply).
 */
export async function applyTransition(manager: EntityManager, id: string, step: Transition): Promise<void> {
  await applyTransitions(manager, [{ id, step }]);
}

/**
 * Writes the transitions of several global transactions in one statement
 * (data-modifying CTEs over arrays). Several transitions of one global
 * transaction are written in order: each carries full new values, so the
 * last one of a row wins and the events keep their order.
 */
function transitionsQuery(writes: ReadonlyArray<{ id: string; step: Transition }>): { text: string; values: unknown[][] } | undefined {
  const branches = writes.flatMap(({ id, step }) => step.branches.map((b) => ({ id, b })));
  const events = writes.flatMap(({ id, step }) => step.events.map((e) => ({ id, e })));
  const txs = writes.filter(({ step }) => step.tx !== undefined).map(({ id, step }) => ({ id, t: step.tx! }));
  if (branches.length === 0 && events.length === 0 && txs.length === 0) return undefined;
  return {
    text: `WITH b AS (
       UPDATE concordat.branch AS b
          SET state = u.state, error = u.error, result = u.result, attempts = u.attempts, updated_at = statement_timestamp()
         FROM (SELECT DISTINCT ON (gid, branch_id) * FROM unnest($1::uuid[], $2::int[], $3::text[], $4::text[], $5::jsonb[], $6::int[])
                 WITH ORDINALITY AS x(gid, branch_id, state, error, result, attempts, n) ORDER BY gid, branch_id, n DESC) AS u
        WHERE b.global_tx_id = u.gid AND b.branch_id = u.branch_id
     ), e AS (
       INSERT INTO concordat.global_tx_event (global_tx_id, kind, branch_id, state, detail)
       SELECT gid, kind, branch_id, state, detail
         FROM unnest($7::uuid[], $8::text[], $9::int[], $10::text[], $11::text[]) WITH ORDINALITY AS x(gid, kind, branch_id, state, detail, n)
        ORDER BY n
     )
     UPDATE concordat.global_transaction AS g
        SET state = u.state, reason = u.reason, decision = u.decision,
            decided_at = COALESCE(g.decided_at, CASE WHEN u.decision IS NOT NULL THEN statement_timestamp() END),
            ended_at = CASE WHEN u.terminal THEN statement_timestamp() END,
            resend_at = statement_timestamp() + make_interval(secs => u.resend_ms / 1000),
            resend_count = u.resend_count, updated_at = statement_timestamp()
       FROM (SELECT DISTINCT ON (id) * FROM unnest($12::uuid[], $13::text[], $14::text[], $15::text[], $16::bool[], $17::float8[], $18::int[])
               WITH ORDINALITY AS x(id, state, reason, decision, terminal, resend_ms, resend_count, n) ORDER BY id, n DESC) AS u
      WHERE g.id = u.id`,
    values: [
      branches.map(({ id }) => id),
      branches.map(({ b }) => b.branchId),
      branches.map(({ b }) => b.state),
      branches.map(({ b }) => b.error),
      branches.map(({ b }) => json(b.result)),
      branches.map(({ b }) => b.attempts),
      events.map(({ id }) => id),
      events.map(({ e }) => e.kind),
      events.map(({ e }) => e.branchId),
      events.map(({ e }) => e.state),
      events.map(({ e }) => e.detail),
      txs.map(({ id }) => id),
      txs.map(({ t }) => t.state),
      txs.map(({ t }) => t.reason),
      txs.map(({ t }) => t.decision),
      txs.map(({ t }) => t.terminal),
      txs.map(({ t }) => t.resendAfterMs),
      txs.map(({ t }) => t.resendCount),
    ],
  };
}

/**
 * Writes the transitions of several global transactions in one statement
 * (data-modifying CTEs over arrays), prepared. Several transitions of one
 * global transaction are written in order: each carries full new values, so
 * the last one of a row wins and the events keep their order.
 */
export async function applyTransitions(manager: EntityManager, writes: ReadonlyArray<{ id: string; step: Transition }>): Promise<void> {
  const query = transitionsQuery(writes);
  if (query !== undefined) await preparedQuery(manager, 'concordat_apply_transitions', query.text, query.values);
}

/**
 * The statement of {@link applyTransitions} with its arrays inlined as
 * escaped literals, to travel in the `COMMIT` round trip of the caller's
 * transaction (a co-located coordinator's stage: the global transaction rows
 * it locked are then held for one round trip less). Parsed and planned on
 * each use, unlike the prepared form. @returns undefined when nothing changed
 */
export function transitionsSql(writes: ReadonlyArray<{ id: string; step: Transition }>, escape: (value: string) => string): string | undefined {
  const query = transitionsQuery(writes);
  if (query === undefined) return undefined;
  return query.text.replace(/\$(\d+)/g, (_, n: string) => arrayLiteral(query.values[Number(n) - 1]!, escape));
}

/** `ARRAY[…]` of literals (the statement casts each array to its type): NULL, numbers, booleans, escaped strings (anything else as escaped JSON). */
function arrayLiteral(values: readonly unknown[], escape: (value: string) => string): string {
  const items = values.map((value) => {
    if (value === null || value === undefined) return 'NULL';
    if (typeof value === 'number') return Number.isFinite(value) ? String(value) : 'NULL';
    if (typeof value === 'boolean') return String(value);
    if (typeof value === 'bigint') return String(value);
    return escape(typeof value === 'string' ? value : JSON.stringify(value));
  });
  return `ARRAY[${items.join(', ')}]`;
}

/** Appends timeline events without any other change (operators' notes). */
export async function appendEvents(manager: EntityManager, id: string, events: TxEvent[]): Promise<void> {
  await applyTransition(manager, id, { branches: [], tx: undefined, commands: [], events, ended: false });
}

/** Reads a global transaction with its branches, without locking. @returns undefined when absent. */
export async function findGlobalTx(manager: EntityManager, id: string): Promise<LoadedGlobalTx | undefined> {
  if (!isGlobalTxId(id)) return undefined;
  const rows: LoadedRow[] = await manager.query(`${GLOBAL_TX_SELECT} WHERE g.id = $1`, [id]);
  const row = rows[0];
  if (row === undefined) return undefined;
  const { branches, ...tx } = row;
  return { tx, branches: branches ?? [] };
}

/** Reads the branches of a global transaction, by branch ID. */
export async function readBranches(manager: EntityManager, id: string): Promise<BranchRow[]> {
  return (await findGlobalTx(manager, id))?.branches ?? [];
}

/** What a scan found due. */
export type DueKind = 'deadline' | 'resend';

/**
 * IDs of active global transactions whose deadline (undecided ones) or
 * resend time has passed, locked with `FOR UPDATE SKIP LOCKED` so that
 * several coordinator instances never pick the same one, and a row a reply
 * is working on is left for the next scan.
 */
export async function claimDue(manager: EntityManager, kind: DueKind, limit: number): Promise<string[]> {
  const where = kind === 'deadline' ? `ended_at IS NULL AND state = 'TRYING' AND deadline < now()` : `ended_at IS NULL AND resend_at < now()`;
  const order = kind === 'deadline' ? 'deadline' : 'resend_at';
  const { rows } = await preparedQuery<{ id: string }>(
    manager,
    `concordat_claim_due_${kind}`,
    `SELECT id FROM concordat.global_transaction WHERE ${where} ORDER BY ${order} LIMIT $1 FOR UPDATE SKIP LOCKED`,
    [limit],
  );
  return rows.map((row) => row.id);
}

export type { Decision };
