/**
 * Prometheus metrics of global transactions, on prom-client (prom-client's
 * default registry unless given one):
 *
 * | metric                                               | type      | labels      | counted where |
 * |------------------------------------------------------|-----------|-------------|---------------|
 * | `concordat_global_transactions_begun_total`          | counter   | mode        | the process that calls `beginTcc`/`beginTwoPhase`/`beginSaga`, when the row is written (before the caller's `COMMIT`: a begin whose transaction rolls back counts too, and never ends) |
 * | `concordat_global_transactions_ended_total`          | counter   | mode, state | the coordinator, after the `COMMIT` that ended it (CONFIRMED, CANCELLED, FAILED) |
 * | `concordat_global_transaction_duration_seconds`      | histogram | mode, state | the coordinator, at the end: from the time in the global transaction's UUIDv7 ID (RFC 9562 §5.7; the begin's clock) to the end (the coordinator's clock); IDs given at begin that are not UUIDv7 are not observed |
 * | `concordat_global_transaction_resends_total`         | counter   | mode        | the coordinator: decisions sent again to branches that did not acknowledge (one per global transaction per round) |
 * | `concordat_global_transactions`                      | gauge     | mode, state | on scrape: global transactions not ended, by state (TRYING, CONFIRMING, CANCELLING) |
 * | `concordat_two_phase_branches_in_doubt`              | gauge     |             | on scrape: 2PC branches prepared (voted yes) whose global transaction has not ended |
 *
 * The two gauges come from one query per scrape over the not-ended rows
 * only (the partial index `global_transaction_active`); ended transactions (kept for `historyRetentionMs`)
 * are counted by the ended counter instead. Operator actions (`concordat tx
 * retry|abort|end`, in their own process) are not counted.
 *
 * @module
 */

import { Counter, Gauge, Histogram, register as defaultRegistry, type Registry } from 'prom-client';
import type { DataSource } from 'typeorm';
import type { Transition } from './protocol.js';
import { GlobalTxState, TxEventKind, TxMode } from './states.js';
import type { LoadedGlobalTx } from './store.js';

/** The global-transaction metrics of one prom-client registry (the table in the file header). */
export interface TxMetrics {
  /** A global transaction of `mode` was written by begin. */
  begun(mode: TxMode): void;
  /** Steps whose transaction committed: counts ends (with their duration) and resends. */
  committed(steps: readonly ModeStep[]): void;
  /** Adds a coordinator's database to the on-scrape gauges (the first attached is read). @returns a function that removes it */
  attachStates(dataSource: DataSource): () => void;
}

/** A transition with the mode of its global transaction. */
export interface ModeStep {
  id: string;
  mode: TxMode;
  step: Transition;
}

/** Seconds: a co-located TCC ends in milliseconds, a saga with retries in minutes, a FAILED one after an hour of resends. */
export const DURATION_BUCKETS_SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600];

const IN_FLIGHT: readonly GlobalTxState[] = [GlobalTxState.TRYING, GlobalTxState.CONFIRMING, GlobalTxState.CANCELLING];
const MODES: readonly TxMode[] = Object.values(TxMode);

const STATES_SQL = `
  SELECT g.mode, g.state, count(DISTINCT g.id)::int AS transactions, count(b.global_tx_id)::int AS "inDoubt"
    FROM concordat.global_transaction g
    LEFT JOIN concordat.branch b ON b.global_tx_id = g.id AND g.mode = '2PC' AND b.state = 'TRIED'
   WHERE g.ended_at IS NULL
   GROUP BY g.mode, g.state`;

interface StateCounts {
  rows: Array<{ mode: string; state: string; transactions: number; inDoubt: number }>;
}

const sets = new WeakMap<Registry, TxMetrics>();

/** The global-transaction metrics registered in `registry`, created on first call; later calls get the same set. */
export function txMetrics(registry: Registry = defaultRegistry): TxMetrics {
  const existing = sets.get(registry);
  if (existing !== undefined) return existing;
  const sources = new Set<DataSource>();
  // Both gauges are collected at once in a scrape: they share the query in flight; the next scrape runs a new one.
  let pending: Promise<StateCounts | undefined> | undefined;
  const counts = (): Promise<StateCounts | undefined> => {
    const source = sources.values().next().value;
    if (source === undefined || !source.isInitialized) return Promise.resolve(undefined);
    pending ??= source
      .query(STATES_SQL)
      .then((rows: StateCounts['rows']) => ({ rows }))
      .catch(() => undefined)
      .finally(() => {
        pending = undefined;
      });
    return pending;
  };
  const begun = new Counter({
    name: 'concordat_global_transactions_begun_total',
    help: 'Global transactions begun (written by begin)',
    labelNames: ['mode'],
    registers: [registry],
  });
  const ended = new Counter({
    name: 'concordat_global_transactions_ended_total',
    help: 'Global transactions ended, by end state',
    labelNames: ['mode', 'state'],
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'concordat_global_transaction_duration_seconds',
    help: 'Time from begin (the UUIDv7 ID) to end of a global transaction',
    labelNames: ['mode', 'state'],
    buckets: DURATION_BUCKETS_SECONDS,
    registers: [registry],
  });
  const resends = new Counter({
    name: 'concordat_global_transaction_resends_total',
    help: 'Decisions sent again to branches that did not acknowledge (one per global transaction per round)',
    labelNames: ['mode'],
    registers: [registry],
  });
  for (const mode of MODES) begun.inc({ mode }, 0);
  new Gauge({
    name: 'concordat_global_transactions',
    help: 'Global transactions not ended, by state',
    labelNames: ['mode', 'state'],
    registers: [registry],
    async collect() {
      const value = await counts();
      if (value === undefined) return;
      for (const mode of MODES) for (const state of IN_FLIGHT) this.set({ mode, state }, 0);
      for (const row of value.rows) this.set({ mode: row.mode, state: row.state }, row.transactions);
    },
  });
  new Gauge({
    name: 'concordat_two_phase_branches_in_doubt',
    help: '2PC branches prepared (voted yes) whose global transaction has not ended',
    registers: [registry],
    async collect() {
      const value = await counts();
      if (value !== undefined) this.set(value.rows.reduce((sum, row) => sum + row.inDoubt, 0));
    },
  });
  const set: TxMetrics = {
    begun(mode) {
      begun.inc({ mode });
    },
    committed(steps) {
      const now = Date.now();
      for (const { id, mode, step } of steps) {
        const rounds = step.events.filter((event) => event.kind === TxEventKind.RESENT).length;
        if (rounds > 0) resends.inc({ mode }, rounds);
        if (!step.ended || step.tx === undefined) continue;
        ended.inc({ mode, state: step.tx.state });
        const begunMs = uuidV7Millis(id);
        if (begunMs !== undefined) duration.observe({ mode, state: step.tx.state }, Math.max(0, now - begunMs) / 1000);
      }
    },
    attachStates(dataSource) {
      sources.add(dataSource);
      return () => sources.delete(dataSource);
    },
  };
  sets.set(registry, set);
  return set;
}

/** Pairs each defined step with the mode of its global transaction, read from the rows the step was computed from. */
export function withModes(ids: readonly string[], steps: ReadonlyArray<Transition | undefined>, states: ReadonlyMap<string, LoadedGlobalTx>): ModeStep[] {
  const out: ModeStep[] = [];
  steps.forEach((step, i) => {
    const state = states.get(ids[i]!);
    if (step !== undefined && state !== undefined) out.push({ id: ids[i]!, mode: state.tx.mode, step });
  });
  return out;
}

/** The Unix time in ms of a UUIDv7 (its first 48 bits), or undefined for another version. */
export function uuidV7Millis(id: string): number | undefined {
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i.test(id)) return undefined;
  return parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
}
