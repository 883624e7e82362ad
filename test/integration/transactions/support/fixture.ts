import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDatabase, type Database } from '../../../../src/persistence/index.js';
import { until } from '../../../../src/testing/index.js';
import { EmbeddedTransport } from '../../../../src/transport/index.js';
import { createTestDatabase, type TestDatabase } from '../../../support/database.js';

/**
 * A database of its own and a log of its own for one test file, with the
 * queries global-transaction tests keep asking. `close()` removes both and
 * fails if a prepared transaction was left behind in the database.
 */
export interface TxFixture {
  db: Database;
  /** URL of the fixture's database, for an app that opens a pool of its own (as one in another process would). */
  url: string;
  transport: EmbeddedTransport;
  dir: string;
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  /** The global transaction's state, reason and whether it ended. */
  txRow(id: string): Promise<{ state: string; reason: string | null; ended: boolean }>;
  /** Its branch states, by branch ID. */
  branchStates(id: string): Promise<string[]>;
  /** Waits until the global transaction ended (or `timeoutMs` passed) and returns its row. */
  ended(id: string, timeoutMs?: number): Promise<{ state: string; reason: string | null; ended: boolean }>;
  /** gids prepared in this database. */
  prepared(): Promise<string[]>;
  close(): Promise<void>;
}

export async function createTxFixture(name: string, setupSql: string[] = [], poolSize = 16): Promise<TxFixture> {
  const testDb: TestDatabase = await createTestDatabase(name);
  const db = await openDatabase({ url: testDb.url, poolSize });
  for (const sql of setupSql) await db.dataSource.query(sql);
  const dir = await mkdtemp(join(tmpdir(), `concordat-${name}-`));
  const transport = new EmbeddedTransport({
    dataDir: dir,
    consumer: { heartbeatIntervalMs: 200, maxWaitMs: 200, retryBackoffMs: 20, retryBackoffMaxMs: 200 },
  });
  const query = <T>(sql: string, params: unknown[] = []): Promise<T[]> => db.dataSource.query(sql, params);
  const txRow = async (id: string) => {
    const rows = await query<{ state: string; reason: string | null; ended: boolean }>(
      `SELECT state, reason, ended_at IS NOT NULL AS ended FROM concordat.global_transaction WHERE id = $1`,
      [id],
    );
    if (rows[0] === undefined) throw new Error(`no global transaction ${id}`);
    return rows[0];
  };
  const prepared = async () =>
    (await query<{ gid: string }>(`SELECT gid FROM pg_prepared_xacts WHERE database = current_database() ORDER BY gid`)).map((r) => r.gid);
  return {
    db,
    url: testDb.url,
    transport,
    dir,
    query,
    txRow,
    branchStates: async (id) =>
      (await query<{ state: string }>(`SELECT state FROM concordat.branch WHERE global_tx_id = $1 ORDER BY branch_id`, [id])).map((r) => r.state),
    ended: async (id, timeoutMs = 20_000) => {
      let last: Awaited<ReturnType<typeof txRow>> | undefined;
      return until(
        async () => {
          last = await txRow(id);
          return last.ended ? last : undefined;
        },
        { timeoutMs, message: () => `global transaction ${id} to end (last seen: ${JSON.stringify(last)})` },
      );
    },
    prepared,
    close: async () => {
      const left = await prepared();
      for (const gid of left) await db.dataSource.query(`ROLLBACK PREPARED '${gid}'`);
      await transport.close();
      await db.close();
      await testDb.drop();
      await rm(dir, { recursive: true, force: true });
      if (left.length > 0) throw new Error(`prepared transactions left behind: ${left.join(', ')}`);
    },
  };
}

/** `until` with this directory's habits: `probe` returns undefined for "not yet", `what` names what is awaited, 20 s. */
export function waitFor<T>(probe: () => Promise<T | undefined>, what: string, timeoutMs = 20_000): Promise<T> {
  return until(probe, { timeoutMs, message: `waiting for ${what}` }) as Promise<T>;
}
