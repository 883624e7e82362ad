/*
 * A 2PC participant: prepare (PREPARE TRANSACTION), commit and rollback of prepared transactions, behind the fence. One
 * concept.
 */
import type { PoolClient, QueryResult } from 'pg';
import type { DataSource, QueryRunner } from 'typeorm';
import { describeError, isRetriable } from '../../errors.js';
import { createLogger, faultPoint } from '../../observability/index.js';
import { notifyCommitted, outboxInsertSql, outboxNotifierFor, writeOutboxRecords, type OutboxRecord } from '../../outbox/index.js';
import { MessageContext } from '../../runtime/index.js';
import { BranchAction, type BranchCommand } from '../coordinator/messages.js';
import { fenceHeuristicSql, fenceInsertSql, FenceState, type FenceKey } from '../participant/fence.js';
import { reply, type ReplyDetails } from '../participant/reply.js';
import { XaContext } from './context.js';
import type { StandardSchemaV1 } from '@standard-schema/spec';
import { validatedCommand } from '../participant/definition.js';
import { gidFor, isPrepared } from './gid.js';

/**
 * A 2PC participant's side of the protocol (X/Open XA's prepare / commit /
 * rollback, on PostgreSQL's PREPARE TRANSACTION, COMMIT PREPARED and
 * ROLLBACK PREPARED).
 *
 * prepare — on a connection of its own (a prepared transaction detaches from
 * its session, so the pool's shared connections cannot be used):
 * `START TRANSACTION` through the TypeORM query runner (so that TypeORM
 * knows: `repository.save()` and nested `manager.transaction()` calls in
 * `@Prepare` join the transaction as savepoints instead of committing it);
 * insert the fence row as CONFIRMED, marked heuristic (refused if a
 * rollback got there first: anti-hanging); run `@Prepare` under a lock
 * timeout (a row held by another branch's prepared transaction for longer
 * makes it vote no); check that the connection is still in that same
 * transaction, clear the mark and `PREPARE TRANSACTION '<gid>'`. Then, in a separate committed transaction, the vote goes out
 * through the outbox. The fence row is part of the prepared transaction, so
 * it becomes visible exactly when the branch commits. A `@Prepare` that
 * ended the transaction itself (a raw COMMIT or ROLLBACK) or left it aborted
 * (a failed statement whose error it caught) votes no, with the method named
 * in the reason and in an error log: PostgreSQL would answer that PREPARE
 * with a WARNING (or a silent ROLLBACK), and the branch would vote yes with
 * nothing prepared. A COMMIT of its own commits the fence row with the
 * heuristic mark (the vote no also marks it), so the same prepare delivered
 * again — the dispatcher retrying a vote that failed, a redelivery after a
 * crash — votes no, marked heuristic, again instead of yes.
 *
 * | command  | finds                                 | does                                  | reply |
 * |----------|---------------------------------------|---------------------------------------|-------|
 * | prepare  | nothing                               | work, PREPARE TRANSACTION             | yes (no if @Prepare refused or ended its transaction, the latter marked heuristic; fence CANCELLED unless that committed it) |
 * | prepare  | gid prepared, or fence CONFIRMED      | nothing (duplicate, recovery)         | yes   |
 * | prepare  | fence marked heuristic                | nothing (an earlier @Prepare ended its transaction) | no, heuristic, not retriable |
 * | prepare  | fence CANCELLED                       | nothing (rolled back first)           | no    |
 * | commit   | gid prepared                          | COMMIT PREPARED                       | ok    |
 * | commit   | no gid, fence CONFIRMED (not heuristic) | nothing (committed already)         | ok    |
 * | commit   | no gid, no CONFIRMED fence, or one marked heuristic | nothing: resolved outside the protocol (heuristic) | not ok, not retriable |
 * | rollback | gid prepared                          | ROLLBACK PREPARED, fence CANCELLED    | ok    |
 * | rollback | no gid, no fence                      | fence CANCELLED (empty rollback)      | ok    |
 * | rollback | no gid, fence CONFIRMED               | nothing (committed already)           | not ok, not retriable |
 *
 * A crash anywhere leaves either no prepared transaction (and the command is
 * delivered again) or a prepared one that the redelivered command, the
 * start-up recovery (`recovery.ts`) or the coordinator's resend resolves.
 *
 * Round trips, as they dominate a branch's cost: prepare is three plus the
 * work (`START TRANSACTION`; the fence row; the check and `PREPARE
 * TRANSACTION` with the vote's own transaction), commit and rollback two each (`COMMIT PREPARED` runs
 * only alone, outside a transaction block; the acknowledgement). PostgreSQL
 * runs the statements of one
 * simple query in order and stops at the first that fails, so a combined
 * string never acknowledges what did not happen; if the vote after a
 * successful PREPARE fails, the branch stays prepared and the redelivered
 * command or the start-up recovery votes again.
 *
 * Fault points: `xa.before-prepare` (work done, not prepared),
 * `xa.after-prepare` (prepared and voted, offset not committed),
 * `xa.after-commit-prepared` (committed, not acknowledged),
 * `xa.after-commit` / `xa.after-rollback` (resolved and acknowledged,
 * offset not committed).
 */
export async function handleXaCommand(
  participant: string,
  methodName: string,
  instance: object,
  message: MessageContext,
  lockTimeoutMs = 2000,
  schema?: StandardSchemaV1,
): Promise<void> {
  const command = message.data as BranchCommand;
  const dataSource = message.manager.dataSource;
  const gid = gidFor(participant, command.globalTxId, command.branchId);
  const key: FenceKey = { participant, globalTxId: command.globalTxId, branchId: command.branchId };
  switch (command.action) {
    case BranchAction.PREPARE:
      await prepare(dataSource, gid, key, methodName, instance, message, lockTimeoutMs, schema);
      return faultPoint('xa.after-prepare');
    case BranchAction.COMMIT:
      await commitPrepared(dataSource, gid, key, message);
      return faultPoint('xa.after-commit');
    case BranchAction.ROLLBACK:
      await rollbackPrepared(dataSource, gid, key, message);
      return faultPoint('xa.after-rollback');
    default:
      throw new Error(`assertion failed: a 2PC participant received '${command.action}'`);
  }
}

const UNDEFINED_OBJECT = '42704';
const LOCK_NOT_AVAILABLE = '55P03';
/** How long the prepare's fence insert waits for a row held by another transaction of the same branch (a prepared duplicate). */
const FENCE_LOCK_TIMEOUT_MS = 200;

const codeOf = (error: unknown): string | undefined => (error as { code?: string }).code;

/** A pooled connection of its own, left outside any transaction whatever happens. */
async function withConnection<T>(dataSource: DataSource, work: (client: PoolClient, runner: QueryRunner) => Promise<T>): Promise<T> {
  const runner = dataSource.createQueryRunner();
  const client = (await runner.connect()) as PoolClient;
  try {
    return await work(client, runner);
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    await runner.release();
  }
}

async function run(client: PoolClient, statements: readonly string[]): Promise<QueryResult[]> {
  const result = (await client.query(statements.join('; '))) as unknown as QueryResult | QueryResult[];
  return Array.isArray(result) ? result : [result];
}

/** The reply's outbox records, built as a handler's would be (causation, correlation). */
function replyRecords(message: MessageContext, command: BranchCommand, ok: boolean, details: ReplyDetails): OutboxRecord[] {
  const context = new MessageContext(message.manager, message.source, message.message, message.delivery);
  reply(context, command, ok, details);
  return context.takeRecords();
}

/**
 * `statements`, then the records in a transaction of their own, in one round
 * trip when the records are small enough to inline; relays are woken after.
 */
async function thenPublish(client: PoolClient, runner: QueryRunner, statements: readonly string[], records: OutboxRecord[]): Promise<QueryResult[]> {
  const insert = outboxInsertSql(records, (value) => client.escapeLiteral(value));
  let results: QueryResult[];
  if (insert === undefined) {
    results = statements.length > 0 ? await run(client, statements) : [];
    await client.query('BEGIN');
    await writeOutboxRecords(runner.manager, records);
    await client.query('COMMIT');
  } else {
    results = await run(client, [...statements, 'BEGIN', insert, 'COMMIT']);
  }
  notifyCommitted(outboxNotifierFor(runner.manager.dataSource), records);
  return results;
}

/** Phase one; throws a retriable error to have the dispatcher try again. */
async function prepare(
  dataSource: DataSource,
  gid: string,
  key: FenceKey,
  methodName: string,
  instance: object,
  message: MessageContext,
  lockTimeoutMs: number,
  schema: StandardSchemaV1 | undefined,
): Promise<void> {
  const command = message.data as BranchCommand;
  const method = `${instance.constructor.name}.${methodName}`;
  const vote = await withConnection(dataSource, async (client, runner) => {
    const escape = (value: string): string => client.escapeLiteral(value);
    // Through TypeORM, so that it knows the runner is in a transaction: a
    // repository.save() or a nested manager.transaction() in @Prepare then
    // joins it (as a savepoint) instead of committing it behind our back.
    await runner.startTransaction();
    let claimed: QueryResult[];
    try {
      claimed = await run(client, [
        `SET LOCAL lock_timeout = '${FENCE_LOCK_TIMEOUT_MS}ms'`,
        // Marked heuristic until the round trip of PREPARE TRANSACTION clears it: a row that @Prepare commits itself keeps the mark.
        fenceInsertSql(key, FenceState.CONFIRMED, escape, { heuristic: true }),
        `SET LOCAL lock_timeout = '${Math.round(lockTimeoutMs)}ms'`,
        // The fence insert assigned the transaction its ID: what PREPARE must still find.
        'SELECT txid_current()::text AS xid',
      ]);
    } catch (error) {
      // The row is held by a prepared transaction of this very branch: a duplicate prepare.
      if (codeOf(error) !== LOCK_NOT_AVAILABLE) throw error;
      await client.query('ROLLBACK');
      if (await isPrepared(runner.manager, gid)) return { ok: true, details: {} };
      throw error;
    }
    if (claimed[1]!.rowCount !== 1) {
      const [row] = (
        await client.query(`SELECT state, heuristic FROM concordat.fence WHERE participant = $1 AND global_tx_id = $2 AND branch_id = $3`, [
          key.participant,
          key.globalTxId,
          key.branchId,
        ])
      ).rows as Array<{ state: FenceState; heuristic: boolean }>;
      await client.query('ROLLBACK');
      // An earlier delivery's @Prepare ended the branch transaction itself: nothing is prepared, and its work may be committed.
      if (row?.heuristic === true) return { ok: false, details: { error: heuristicRepeated(method), retriable: false, heuristic: true } };
      return row?.state === FenceState.CONFIRMED
        ? { ok: true, details: {} }
        : { ok: false, details: { error: 'PREPARE_AFTER_ROLLBACK: the branch was rolled back before its prepare arrived' } };
    }
    const xid = (claimed[3]!.rows[0] as { xid: string }).xid;
    let result: unknown;
    try {
      // A payload the participant's schema refuses throws VALIDATION_FAILED (not retriable): the branch votes no.
      const context = new XaContext(runner.manager, message.source, (await validatedCommand(schema, key.participant, message)) as never, message.delivery);
      result = await (instance as Record<string, (context: XaContext) => unknown>)[methodName]!.call(instance, context);
    } catch (error) {
      await client.query('ROLLBACK');
      // Waiting longer would hold the partition behind it; voting no frees the lock holder's peers at once.
      if (codeOf(error) === LOCK_NOT_AVAILABLE)
        return { ok: false, details: { error: `LOCK_TIMEOUT: a row stayed locked for ${lockTimeoutMs} ms (${describeError(error)})` } };
      const last = message.delivery.attempt >= message.delivery.maxAttempts;
      if (isRetriable(error) && !last) throw error;
      return { ok: false, details: { error: describeError(error) } };
    }
    await faultPoint('xa.before-prepare');
    const details: ReplyDetails = result === undefined ? {} : { result };
    try {
      await thenPublish(
        client,
        runner,
        [stillInTransactionSql(xid), fenceHeuristicSql(key, false, escape), `PREPARE TRANSACTION '${gid}'`],
        replyRecords(message, command, true, details),
      );
    } catch (error) {
      const refusal = notPreparable(error, method);
      if (refusal === undefined) throw error;
      await client.query('ROLLBACK');
      logger.error(
        { participant: key.participant, globalTxId: key.globalTxId, branchId: key.branchId, method, err: describeError(error) },
        `${refusal.error}; the branch votes no`,
      );
      return { ok: false, details: { ...refusal, retriable: false } };
    }
    return undefined;
  });
  if (vote !== undefined) await answer(dataSource, message, command, vote.ok, vote.details, vote.ok ? undefined : key);
}

const logger = createLogger('xa-participant');

/** The reason of a no to a prepare delivered again after its @Prepare ended the branch transaction itself (fence marked heuristic). */
function heuristicRepeated(method: string): string {
  return (
    `PREPARE_WITHOUT_TRANSACTION: an earlier delivery of this prepare found that @Prepare ${method} ended the branch transaction itself, ` +
    'so nothing is prepared; whatever it committed is outside the global transaction and a rollback cannot undo it'
  );
}

/** SQLSTATE of the check before PREPARE (PostgreSQL's own "no active SQL transaction"). */
const NO_ACTIVE_SQL_TRANSACTION = '25P01';
/** SQLSTATE of a statement sent in a transaction aborted by an earlier error. */
const IN_FAILED_SQL_TRANSACTION = '25P02';

/**
 * A statement that fails with {@link NO_ACTIVE_SQL_TRANSACTION} unless the
 * connection is still in the transaction whose ID is `xid`. It goes in
 * front of `PREPARE TRANSACTION`, in the same round trip: PostgreSQL answers
 * a PREPARE outside a transaction block with a WARNING only (and one in an
 * aborted transaction with a ROLLBACK), so without it a @Prepare that ended
 * the transaction itself would have the branch vote yes with nothing
 * prepared. After a COMMIT the connection has no transaction (or, after a
 * new BEGIN, another one), so the ID differs; in an aborted transaction the
 * statement fails with {@link IN_FAILED_SQL_TRANSACTION} instead.
 */
function stillInTransactionSql(xid: string): string {
  if (!/^\d{1,20}$/.test(xid)) throw new Error(`assertion failed: '${xid}' is not a transaction ID`);
  return (
    `DO $concordat$ BEGIN IF txid_current_if_assigned() IS DISTINCT FROM ${xid} THEN ` +
    `RAISE EXCEPTION 'the branch transaction % ended before PREPARE TRANSACTION', ${xid} USING ERRCODE = '${NO_ACTIVE_SQL_TRANSACTION}'; ` +
    `END IF; END $concordat$`
  );
}

/**
 * Why the branch transaction cannot be prepared, when `error` (from the
 * PREPARE round trip) says so; undefined for any other error.
 *
 * `heuristic`: the transaction was ended by `@Prepare` itself, so what it
 * wrote up to its COMMIT (or after a ROLLBACK, in autocommit) may be
 * committed, outside the global transaction, and no rollback can undo it.
 * The vote no says so, and the coordinator ends the global transaction
 * FAILED instead of CANCELLED (an operator must look). An aborted
 * transaction (`PREPARE_ABORTED`) committed nothing: a plain no.
 */
function notPreparable(error: unknown, method: string): { error: string; heuristic?: true } | undefined {
  switch (codeOf(error)) {
    case NO_ACTIVE_SQL_TRANSACTION:
      return {
        error:
          `PREPARE_WITHOUT_TRANSACTION: @Prepare ${method} ended the branch transaction itself (a COMMIT or ROLLBACK through the manager), ` +
          'so there is nothing to prepare; whatever it committed is outside the global transaction and a rollback cannot undo it',
        heuristic: true,
      };
    case IN_FAILED_SQL_TRANSACTION:
      return {
        error: `PREPARE_ABORTED: a statement of @Prepare ${method} failed and its error was caught; the branch transaction is aborted, nothing to prepare`,
      };
    default:
      return undefined;
  }
}

/** COMMIT PREPARED, then its acknowledgement (two round trips); idempotently, through the fence, when nothing is prepared. */
async function commitPrepared(dataSource: DataSource, gid: string, key: FenceKey, message: MessageContext): Promise<void> {
  const command = message.data as BranchCommand;
  const done = await withConnection(dataSource, async (client, runner) => {
    try {
      // Alone: PostgreSQL runs COMMIT PREPARED only outside a transaction block, which a string of statements is.
      await client.query(`COMMIT PREPARED '${gid}'`);
    } catch (error) {
      if (codeOf(error) !== UNDEFINED_OBJECT) throw error;
      return false;
    }
    await faultPoint('xa.after-commit-prepared');
    await thenPublish(client, runner, [], replyRecords(message, command, true, {}));
    return true;
  });
  if (done) return;
  // Not prepared: its own fence row, visible only if it committed, tells.
  const rows: Array<{ state: FenceState; heuristic: boolean }> = await dataSource.query(
    `SELECT state, heuristic FROM concordat.fence WHERE participant = $1 AND global_tx_id = $2 AND branch_id = $3`,
    [key.participant, key.globalTxId, key.branchId],
  );
  const committed = rows[0]?.state === FenceState.CONFIRMED && rows[0].heuristic !== true;
  const details = committed
    ? {}
    : rows[0]?.heuristic === true
      ? { error: `HEURISTIC: ${gid} was never prepared: its @Prepare ended the branch transaction itself (committed outside the protocol)`, retriable: false }
      : { error: `HEURISTIC: ${gid} is neither prepared nor committed (rolled back outside the protocol?)`, retriable: false };
  await answer(dataSource, message, command, committed, details);
}

/**
 * ROLLBACK PREPARED (nothing prepared is fine), then the fence and the
 * acknowledgement. The prepare travels on another topic, so it may be
 * running right now: the fence insert then waits on its row, and if that
 * prepare commits to PREPARE meanwhile, the row stays locked until rolled
 * back — so a short lock wait, and round again.
 */
async function rollbackPrepared(dataSource: DataSource, gid: string, key: FenceKey, message: MessageContext): Promise<void> {
  for (let round = 1; ; round++) {
    await withConnection(dataSource, async (client) => {
      try {
        await client.query(`ROLLBACK PREPARED '${gid}'`);
      } catch (error) {
        if (codeOf(error) !== UNDEFINED_OBJECT) throw error;
      }
    });
    try {
      await answer(dataSource, message, message.data as BranchCommand, true, {}, key);
      return;
    } catch (error) {
      if (codeOf(error) !== LOCK_NOT_AVAILABLE || round >= ROLLBACK_ROUNDS_MAX) throw error;
    }
  }
}

/** Rounds of {@link rollbackPrepared} before the dispatcher's retry takes over. */
const ROLLBACK_ROUNDS_MAX = 20;

/**
 * Publishes the reply in a committed transaction of its own, in two round
 * trips. With `fence` (a no vote, a rollback) it also records the branch as
 * CANCELLED, so a prepare that arrives later is refused; a rollback that
 * finds the branch committed answers not ok instead.
 */
async function answer(
  dataSource: DataSource,
  message: MessageContext,
  command: BranchCommand,
  ok: boolean,
  details: ReplyDetails,
  fence?: FenceKey,
): Promise<void> {
  await withConnection(dataSource, async (client, runner) => {
    const escape = (value: string): string => client.escapeLiteral(value);
    let state: FenceState = FenceState.CANCELLED;
    if (fence === undefined) {
      await client.query('BEGIN');
    } else {
      const results = await run(client, [
        'BEGIN',
        `SET LOCAL lock_timeout = '${FENCE_LOCK_TIMEOUT_MS}ms'`,
        fenceInsertSql(fence, FenceState.CANCELLED, escape, { heuristic: details.heuristic === true }),
        `SELECT state FROM concordat.fence WHERE participant = ${escape(fence.participant)} AND global_tx_id = ${escape(fence.globalTxId)}::uuid AND branch_id = ${fence.branchId}`,
        // With the heuristic vote: a row the @Prepare left (its COMMIT) is marked already, one it rolled back is inserted above.
        ...(details.heuristic === true ? [fenceHeuristicSql(fence, true, escape)] : []),
      ]);
      state = (results[3]!.rows[0] as { state: FenceState } | undefined)?.state ?? FenceState.CANCELLED;
    }
    const refused = state === FenceState.CONFIRMED && command.action === BranchAction.ROLLBACK;
    const records = refused
      ? replyRecords(message, command, false, { error: 'ROLLBACK_AFTER_COMMIT: the branch committed before its rollback arrived', retriable: false })
      : replyRecords(message, command, ok, details);
    const insert = outboxInsertSql(records, escape);
    if (insert === undefined) {
      await writeOutboxRecords(runner.manager, records);
      await client.query('COMMIT');
    } else {
      await client.query(`${insert}; COMMIT`);
    }
    notifyCommitted(outboxNotifierFor(dataSource), records);
  });
}
