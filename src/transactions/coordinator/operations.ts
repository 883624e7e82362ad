import type { DataSource, EntityManager } from 'typeorm';
import { ConcordatError, ErrorCode } from '../../errors.js';
import { runTransaction } from '../../persistence/transaction.js';
import { TransactionContext } from '../../runtime/index.js';
import { compileCoordinatorOptions, type CoordinatorOptions } from './coordinator.js';
import { driveGlobalTx } from './driver.js';
import type { Transition, TxInput } from './protocol.js';
import type { GlobalTxState, TxMode } from './states.js';
import { isGlobalTxId } from './store.js';

/**
 * What operators do to global transactions (`concordat tx list|show|retry|abort`),
 * as functions over a DataSource so that tools and tests use the same code.
 * Retry and abort go through the coordinator's own state machine, under the
 * row lock, with their commands in the outbox of the same transaction: a
 * running coordinator and an operator can never both drive one step.
 */

export interface ListFilter {
  /** Only these states. @default every state */
  states?: GlobalTxState[];
  mode?: TxMode;
  /** Only transactions created at least this long ago, in ms. @default 0 */
  olderThanMs?: number;
  /** Most rows returned. Range 1..10000. @default 50 */
  limit?: number;
}

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
}

/** Global transactions, oldest first, by state and age. */
export async function listGlobalTxs(manager: EntityManager, filter: ListFilter = {}): Promise<GlobalTxSummary[]> {
  const limit = Math.max(1, Math.min(10_000, filter.limit ?? 50));
  return manager.query(
    `SELECT g.id, g.mode, g.name, g.state, g.reason, g.created_at AS "createdAt", g.ended_at AS "endedAt",
            round(extract(epoch FROM now() - g.created_at)::numeric, 1)::float8 AS "ageSeconds",
            round(extract(epoch FROM g.deadline - now())::numeric, 1)::float8 AS "deadlineInSeconds",
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
  };
  branches: Array<{ branchId: number; participant: string; state: string; attempts: number; error: string | null; result: unknown; updatedAt: Date }>;
  events: Array<{ at: Date; kind: string; branchId: number | null; state: string | null; detail: string | null }>;
}

/** A global transaction with its branches and timeline. @returns undefined when it does not exist */
export async function showGlobalTx(manager: EntityManager, id: string): Promise<GlobalTxDetail | undefined> {
  if (!isGlobalTxId(id)) return undefined;
  const txs: GlobalTxDetail['tx'][] = await manager.query(
    `SELECT id, mode, name, state, decision, reason, payload, created_at AS "createdAt", deadline, decided_at AS "decidedAt",
            ended_at AS "endedAt", resend_at AS "resendAt", resend_count AS "resendCount"
       FROM concordat.global_transaction WHERE id = $1`,
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
 * a FAILED transaction in its decision.
 *
 * @throws ConcordatError GLOBAL_TX_NOT_FOUND, or GLOBAL_TX_STATE_INVALID for one that ended CONFIRMED or CANCELLED.
 */
export async function retryGlobalTx(dataSource: DataSource, id: string, options: CoordinatorOptions = {}): Promise<Transition> {
  return operate(dataSource, id, { kind: 'retry' }, options);
}

/**
 * Aborts an undecided (TRYING) global transaction: it decides CANCELLING with
 * `aborted by operator: <reason>` and the usual rollback follows.
 *
 * @throws ConcordatError GLOBAL_TX_NOT_FOUND, or GLOBAL_TX_STATE_INVALID once it has decided.
 */
export async function abortGlobalTx(dataSource: DataSource, id: string, reason: string, options: CoordinatorOptions = {}): Promise<Transition> {
  return operate(dataSource, id, { kind: 'abort', reason }, options);
}

async function operate(dataSource: DataSource, id: string, input: TxInput, options: CoordinatorOptions): Promise<Transition> {
  const compiled = compileCoordinatorOptions(options);
  const timing = { resendIntervalMs: compiled.resendIntervalMs, resendIntervalMaxMs: compiled.resendIntervalMaxMs, random: Math.random };
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
