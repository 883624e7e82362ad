import { expect } from 'vitest';
import type { CrashCluster } from './cluster.js';

interface TxRow {
  id: string;
  state: string;
  reason: string | null;
  ended: boolean;
  decisions: number;
  branches: string[];
}

interface Effect {
  id: string;
  branch: number;
  action: string;
  n: number;
}

/**
 * What must hold after every crash, once all global transactions ended:
 * - each ended in the state its votes call for: CONFIRMED when nobody
 *   refused (or CANCELLED at the deadline, in a round that let it pass),
 *   CANCELLED when a branch refused; never FAILED;
 * - one decision each (sagas that complete take none), its branches all
 *   CONFIRMED or all CANCELLED;
 * - every participant action took effect at most once, and as the outcome
 *   says: TCC confirmed ⇔ tried and confirmed, cancelled ⇒ each Try undone;
 *   2PC committed ⇔ the work is there, rolled back ⇒ none of it; a saga
 *   completed ⇒ every step once, none compensated, cancelled ⇒ every step
 *   that ran compensated once, last first;
 * - no prepared transaction is left, and no TCC reservation hangs.
 */
export async function checkInvariants(cluster: CrashCluster): Promise<{ confirmed: number; cancelled: number }> {
  const ids = cluster.begun.map((b) => b.id);
  const txs: TxRow[] = await cluster.db.dataSource.query(
    `SELECT g.id, g.state, g.reason, g.ended_at IS NOT NULL AS ended,
            (SELECT count(*)::int FROM concordat.global_tx_event e WHERE e.global_tx_id = g.id AND e.kind = 'DECIDED') AS decisions,
            (SELECT array_agg(b.state ORDER BY b.branch_id) FROM concordat.branch b WHERE b.global_tx_id = g.id) AS branches
       FROM concordat.global_transaction g WHERE g.id = ANY($1::uuid[])`,
    [ids],
  );
  expect(txs).toHaveLength(ids.length);
  const effects: Effect[] = await cluster.db.dataSource.query(
    `SELECT global_tx_id AS id, branch_id AS branch, action, count(*)::int AS n FROM effects GROUP BY 1, 2, 3`,
  );
  const count = (id: string, branch: number, action: string): number => effects.find((e) => e.id === id && e.branch === branch && e.action === action)?.n ?? 0;
  expect(effects.filter((e) => e.n > 1)).toEqual([]);

  let confirmed = 0;
  for (const begun of cluster.begun) {
    const tx = txs.find((t) => t.id === begun.id)!;
    const expected = begun.refuse !== undefined ? ['CANCELLED'] : begun.deadlineRound ? ['CONFIRMED', 'CANCELLED'] : ['CONFIRMED'];
    expect({ id: tx.id, ended: tx.ended, state: expected.includes(tx.state) ? 'as expected' : tx.state, reason: tx.reason }).toMatchObject({
      id: begun.id,
      ended: true,
      state: 'as expected',
    });
    const ok = tx.state === 'CONFIRMED';
    if (ok) confirmed++;
    expect(tx.branches.every((s) => s === tx.state)).toBe(true);
    expect(tx.decisions).toBe(cluster.mode === 'saga' && ok ? 0 : 1);
    checkEffects(cluster.mode, tx, count);
  }
  if (cluster.mode === 'saga') await checkCompensationOrder(cluster, ids);
  expect(await cluster.db.dataSource.query(`SELECT gid FROM pg_prepared_xacts WHERE database = current_database()`)).toEqual([]);
  const hanging = await cluster.db.dataSource.query(`SELECT global_tx_id FROM concordat.fence WHERE global_tx_id = ANY($1::uuid[]) AND state = 'TRIED'`, [ids]);
  if (cluster.mode === 'tcc') expect(hanging).toEqual([]);
  return { confirmed, cancelled: ids.length - confirmed };
}

function checkEffects(mode: string, tx: TxRow, count: (id: string, branch: number, action: string) => number): void {
  const ok = tx.state === 'CONFIRMED';
  for (let branch = 1; branch <= tx.branches.length; branch++) {
    const where = `${tx.id} branch ${branch} (${tx.state})`;
    if (mode === 'tcc') {
      const tried = count(tx.id, branch, 'try');
      expect({ where, try: tried, confirm: count(tx.id, branch, 'confirm'), cancel: count(tx.id, branch, 'cancel') }).toEqual(
        ok ? { where, try: 1, confirm: 1, cancel: 0 } : { where, try: tried, confirm: 0, cancel: tried },
      );
    } else if (mode === '2pc') {
      expect({ where, work: count(tx.id, branch, 'work') }).toEqual({ where, work: ok ? 1 : 0 });
    } else {
      const stepped = count(tx.id, branch, 'step');
      expect({ where, step: stepped, compensate: count(tx.id, branch, 'compensate') }).toEqual(
        ok ? { where, step: 1, compensate: 0 } : { where, step: stepped, compensate: stepped },
      );
    }
  }
}

/** A cancelled saga compensated its steps last first. */
async function checkCompensationOrder(cluster: CrashCluster, ids: string[]): Promise<void> {
  const rows: Array<{ id: string; branches: number[] }> = await cluster.db.dataSource.query(
    `SELECT global_tx_id AS id, array_agg(branch_id ORDER BY seq) AS branches FROM effects
      WHERE action = 'compensate' AND global_tx_id = ANY($1::uuid[]) GROUP BY 1`,
    [ids],
  );
  for (const row of rows) expect({ id: row.id, order: row.branches }).toEqual({ id: row.id, order: [...row.branches].sort((a, b) => b - a) });
}
