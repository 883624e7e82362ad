import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Database } from '../../../src/persistence/index.js';
import { ConcordatApp, Service, TransactionContext } from '../../../src/runtime/index.js';
import { Prepare, TransactionCoordinator, XaParticipant, beginTcc, cleanupFences, cleanupHistory, type XaContext } from '../../../src/transactions/index.js';
import { createTestDatabase, type TestDatabase } from '../../support/database.js';

const MAIN = fileURLToPath(new URL('../../../src/cli/main.ts', import.meta.url));

/** Runs `concordat <args>` as a process; resolves with its exit code and output. */
function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], { env: { ...process.env, CONCORDAT_LOG_LEVEL: 'silent' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

// Each test runs the CLI several times, each a new Node process (about 2 s of CPU under tsx): on a loaded machine
// a test took 60 s, the default timeout, with nothing wrong.
describe('operating global transactions: concordat tx list|show|retry|abort|end, cleanup', { timeout: 180_000 }, () => {
  let testDb: TestDatabase;
  let db: Database;

  beforeAll(async () => {
    testDb = await createTestDatabase('tx_operations');
    db = await openDatabase({ url: testDb.url, poolSize: 4 });
  });
  afterAll(async () => {
    await db.close();
    await testDb.drop();
  });

  /** Begins a TCC global transaction for a participant nobody runs: it stays TRYING until its deadline. */
  const stuck = (name: string, timeoutMs = 3_600_000): Promise<string> =>
    db.transaction(async (manager) => {
      const context = new TransactionContext(manager, 'test');
      const id = await beginTcc(context, {
        name,
        branches: [
          { participant: 'nobody', payload: { n: 1 } },
          { participant: 'nobody-else', payload: {} },
        ],
        timeoutMs,
      });
      await context.flush();
      return id;
    });
  const commands = (id: string) =>
    db.dataSource.query(`SELECT topic, headers->>'ce_type' AS type FROM concordat.outbox WHERE partition_key = $1 ORDER BY seq`, [id]);

  it('list shows transactions by state and age; show prints branches and the timeline', async () => {
    const id = await stuck('stuck-order');
    const list = await cli(['tx', 'list', '--url', testDb.url, '--state', 'trying', '--mode', 'tcc']);
    expect(list.stderr).toBe('');
    expect(list.code).toBe(0);
    const lines = list.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^ID\s+MODE\s+NAME\s+STATE\s+AGE\s+DEADLINE IN\s+OVERDUE\s+BRANCHES\s+REASON$/);
    expect(lines.find((l) => l.startsWith(id))).toMatch(new RegExp(`^${id}\\s+TCC\\s+stuck-order\\s+TRYING\\s+\\d+\\.\\ds\\s+\\d+\\.\\dm\\s+PENDING 2$`));

    const none = await cli(['tx', 'list', '--url', testDb.url, '--state', 'FAILED']);
    expect(none.stdout).toBe('no global transactions match\n');
    const older = await cli(['tx', 'list', '--url', testDb.url, '--older-than', '1h', '--json']);
    expect(JSON.parse(older.stdout)).toEqual([]);

    const show = await cli(['tx', 'show', id, '--url', testDb.url]);
    expect(show.code).toBe(0);
    expect(show.stdout).toContain(`${id}  TCC 'stuck-order'  TRYING`);
    expect(show.stdout).toMatch(/BRANCH\s+PARTICIPANT\s+STATE\s+ATTEMPTS\s+ERROR\n1\s+nobody\s+PENDING\s+0\n2\s+nobody-else\s+PENDING\s+0/);
    expect(show.stdout).toMatch(/BEGUN\s+TRYING\s+TCC 'stuck-order' with 2 branch\(es\): nobody, nobody-else/);
    expect(show.stdout).toMatch(/SENT\s+try → branch 1, 2/);
  });

  it('list cut at its --limit says so on stderr (stdout stays parseable); a list that holds everything does not', async () => {
    await stuck('limit-1');
    await stuck('limit-2');
    const count = Number((await db.dataSource.query(`SELECT count(*) AS n FROM concordat.global_transaction`))[0].n);
    const cut = await cli(['tx', 'list', '--url', testDb.url, '--limit', String(count - 1), '--json']);
    expect(cut.code).toBe(0);
    expect(JSON.parse(cut.stdout)).toHaveLength(count - 1);
    expect(cut.stderr).toBe(
      `concordat: warning: only the first ${count - 1} global transactions are shown; more match: raise --limit, or narrow with --state, --mode or --older-than\n`,
    );
    const whole = await cli(['tx', 'list', '--url', testDb.url, '--limit', String(count), '--json']);
    expect(JSON.parse(whole.stdout)).toHaveLength(count);
    expect(whole.stderr).toBe('');
  });

  it('abort decides CANCELLING and writes the Cancels to the outbox; a second abort is refused; retry sends them again', async () => {
    const id = await stuck('to-abort');
    const aborted = await cli(['tx', 'abort', id, '--url', testDb.url, '--reason', 'customer called']);
    expect(aborted.stderr).toBe('');
    expect(aborted.stdout).toBe(`aborted ${id}: now CANCELLING; sent cancel → branch 1, cancel → branch 2\n`);
    const [row] = await db.dataSource.query(`SELECT state, reason, decision FROM concordat.global_transaction WHERE id = $1`, [id]);
    expect(row).toEqual({ state: 'CANCELLING', reason: 'aborted by operator: customer called', decision: 'CANCELLING' });
    expect(await commands(id)).toEqual([
      { topic: 'concordat.tcc.nobody', type: 'concordat.tcc.try' },
      { topic: 'concordat.tcc.nobody-else', type: 'concordat.tcc.try' },
      { topic: 'concordat.tcc.nobody', type: 'concordat.tcc.cancel' },
      { topic: 'concordat.tcc.nobody-else', type: 'concordat.tcc.cancel' },
    ]);

    const again = await cli(['tx', 'abort', id, '--url', testDb.url]);
    expect(again.code).toBe(1);
    expect(again.stderr).toBe(`concordat: global transaction ${id} is CANCELLING: only an undecided (TRYING) one can be aborted\n`);

    const retried = await cli(['tx', 'retry', id, '--url', testDb.url]);
    expect(retried.stdout).toBe(`retried ${id}: now CANCELLING; sent cancel → branch 1, cancel → branch 2\n`);
    expect((await commands(id)).length).toBe(6);
    const show = await cli(['tx', 'show', id, '--url', testDb.url, '--json']);
    const detail = JSON.parse(show.stdout);
    expect(detail.events.map((e: { kind: string }) => e.kind)).toEqual(['BEGUN', 'SENT', 'OPERATOR', 'DECIDED', 'SENT', 'OPERATOR', 'SENT']);
    // Who: the CLI records user@host (`tx end --by` names someone else).
    expect(detail.events[2].detail).toMatch(/^abort by [^@\s]+@[^:\s]+: customer called$/);
    expect(detail.events[5].detail).toMatch(/^retry CANCELLING by [^@\s]+@\S+$/);
  });

  it('end: refused while branches may still act (naming them); --force ends it by hand, sending nothing, with who and why in the timeline', async () => {
    const id = await stuck('to-end');
    const refused = await cli(['tx', 'end', id, '--as', 'failed', '--reason', 'order lost', '--url', testDb.url]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toBe(
      `concordat: global transaction ${id} is TRYING: branches may still act: nobody (branch 1, PENDING), nobody-else (branch 2, PENDING). ` +
        'Ending it by hand sends them nothing more, and what they hold stays held; tx abort rolls it back instead. Pass --force to end it anyway\n',
    );
    const ended = await cli(['tx', 'end', id, '--as', 'FAILED', '--reason', 'order lost', '--by', 'bob', '--force', '--url', testDb.url]);
    expect(ended.stderr).toBe('');
    expect(ended.stdout).toBe(`ended ${id}: now FAILED\n`);
    const [row] = await db.dataSource.query(`SELECT state, reason, ended_at IS NOT NULL AS ended, resend_at FROM concordat.global_transaction WHERE id = $1`, [
      id,
    ]);
    expect(row).toEqual({ state: 'FAILED', reason: 'ended by hand by bob: order lost', ended: true, resend_at: null });
    expect((await commands(id)).map((c: { type: string }) => c.type)).toEqual(['concordat.tcc.try', 'concordat.tcc.try']);
    const detail = JSON.parse((await cli(['tx', 'show', id, '--url', testDb.url, '--json'])).stdout);
    expect(detail.events.slice(-2)).toEqual([
      expect.objectContaining({ kind: 'OPERATOR', detail: 'end as FAILED by bob: order lost' }),
      expect.objectContaining({ kind: 'ENDED', state: 'FAILED', detail: 'ended by hand by bob: order lost' }),
    ]);

    const again = await cli(['tx', 'end', id, '--as', 'failed', '--reason', 'again', '--url', testDb.url]);
    expect(again.stderr).toBe(
      `concordat: global transaction ${id} is FAILED: it has already ended FAILED; end it --as cancelled once its branches are settled, or tx retry it\n`,
    );
    const settled = await cli(['tx', 'end', id, '--as', 'cancelled', '--reason', 'released by hand', '--by', 'bob', '--url', testDb.url]);
    expect(settled.stdout).toBe(`ended ${id}: now CANCELLED\n`);
    const bad = await cli(['tx', 'end', id, '--as', 'done', '--reason', 'x', '--url', testDb.url]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("option '--as <state>' argument 'done' is invalid. ends by hand as cancelled or failed, not done");
  });

  it('list flags the transactions no coordinator acts on (past the deadline, still TRYING) and warns on stderr', async () => {
    const late = await stuck('no-coordinator');
    const onTime = await stuck('on-time');
    await db.dataSource.query(`UPDATE concordat.global_transaction SET deadline = now() - interval '5 minutes' WHERE id = $1`, [late]);
    const list = await cli(['tx', 'list', '--url', testDb.url, '--state', 'TRYING']);
    expect(list.code).toBe(0);
    const lines = list.stdout.trim().split('\n');
    expect(lines.find((l) => l.startsWith(late))).toMatch(
      new RegExp(`^${late}\\s+TCC\\s+no-coordinator\\s+TRYING\\s+\\S+\\s+-5\\.\\dm\\s+5\\.\\dm\\s+PENDING 2$`),
    );
    expect(lines.find((l) => l.startsWith(onTime))).toMatch(new RegExp(`^${onTime}\\s+TCC\\s+on-time\\s+TRYING\\s+\\S+\\s+\\d+\\.\\dm\\s+PENDING 2$`));
    expect(list.stderr).toBe(
      'concordat: warning: 1 global transaction(s) overdue by more than 60.0s (undecided past the deadline, or a resend not sent): ' +
        'no coordinator is acting on them. Is an app with TransactionCoordinator among its services running on this database?\n',
    );
    const json = JSON.parse((await cli(['tx', 'list', '--url', testDb.url, '--state', 'TRYING', '--json'])).stdout) as Array<{
      id: string;
      overdueSeconds: number | null;
    }>;
    expect(json.find((r) => r.id === late)!.overdueSeconds).toBeGreaterThanOrEqual(300);
    expect(json.find((r) => r.id === onTime)!.overdueSeconds).toBeNull();
    const show = await cli(['tx', 'show', late, '--url', testDb.url]);
    expect(show.stdout).toMatch(/\noverdue: a coordinator should have acted 5\.\dm ago\n/);
    expect(show.stderr).toContain('concordat: warning: 1 global transaction(s) overdue by more than 60.0s');
    await db.dataSource.query(`UPDATE concordat.global_transaction SET state = 'CANCELLED', ended_at = now() WHERE id = ANY($1::uuid[])`, [[late, onTime]]);
  });

  it('names what does not exist, and rejects bad flags with the accepted values', async () => {
    const missing = randomUUID();
    const show = await cli(['tx', 'show', missing, '--url', testDb.url]);
    expect(show.code).toBe(1);
    expect(show.stderr).toBe(`concordat: global transaction ${missing} does not exist\n`);
    const retry = await cli(['tx', 'retry', missing, '--url', testDb.url]);
    expect(retry.stderr).toBe(`concordat: global transaction ${missing} does not exist\n`);
    const bad = await cli(['tx', 'list', '--url', testDb.url, '--state', 'DONE']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain(
      "option '--state <states>' argument 'DONE' is invalid. unknown state DONE; states are TRYING, CONFIRMING, CANCELLING, CONFIRMED, CANCELLED, FAILED",
    );
  });

  it('cleanup deletes fences and history of ended transactions past the retention, in batches, and keeps the rest', async () => {
    const active = await stuck('active');
    const ended = await stuck('ended');
    const failed = await stuck('failed');
    await db.dataSource.query(`UPDATE concordat.global_transaction SET state = 'CANCELLED', ended_at = now() - interval '2 hours' WHERE id = $1`, [ended]);
    await db.dataSource.query(`UPDATE concordat.global_transaction SET state = 'FAILED', ended_at = now() - interval '2 hours' WHERE id = $1`, [failed]);
    const orphan = randomUUID(); // a global transaction this database does not hold
    const fences: Array<[string, number, string]> = [
      [active, 1, 'TRIED'],
      [active, 2, 'CANCELLED'],
      [ended, 1, 'CANCELLED'],
      [ended, 2, 'TRIED'],
      [orphan, 1, 'CONFIRMED'],
      [orphan, 2, 'TRIED'],
    ];
    for (const [id, branch, state] of fences) {
      await db.dataSource.query(
        `INSERT INTO concordat.fence (participant, global_tx_id, branch_id, state, updated_at) VALUES ('p', $1, $2, $3, now() - interval '2 hours')`,
        [id, branch, state],
      );
    }
    const young = randomUUID();
    await db.dataSource.query(`INSERT INTO concordat.fence (participant, global_tx_id, branch_id, state) VALUES ('p', $1, 1, 'CONFIRMED')`, [young]);

    const hourMs = 3_600_000;
    expect(await cleanupFences(db.dataSource, hourMs, { batchRowsMax: 1, batchesMax: 100 })).toBe(3);
    const left = await db.dataSource.query(`SELECT global_tx_id AS id, branch_id AS b FROM concordat.fence WHERE participant = 'p' ORDER BY 1, 2`);
    expect(
      left
        .map((r: { id: string; b: number }) => `${r.id === active ? 'active' : r.id === orphan ? 'orphan' : r.id === young ? 'young' : 'ended'}:${r.b}`)
        .sort(),
    ).toEqual(['active:1', 'active:2', 'orphan:2', 'young:1']);
    expect(await cleanupHistory(db.dataSource, hourMs, { batchRowsMax: 10, batchesMax: 10 })).toBe(1);
    const txs = await db.dataSource.query(`SELECT id FROM concordat.global_transaction WHERE id = ANY($1::uuid[])`, [[active, ended, failed]]);
    expect(txs.map((r: { id: string }) => r.id).sort()).toEqual([active, failed].sort());
    const orphans = await db.dataSource.query(
      `SELECT (SELECT count(*)::int FROM concordat.branch WHERE global_tx_id = $1) AS branches, (SELECT count(*)::int FROM concordat.global_tx_event WHERE global_tx_id = $1) AS events`,
      [ended],
    );
    expect(orphans).toEqual([{ branches: 0, events: 0 }]);
  });
});

/**
 * The machine's own PostgreSQL (127.0.0.1:5432) runs with
 * max_prepared_transactions = 0, as PostgreSQL does by default: an app with
 * a 2PC participant must refuse to start there, naming the setting. Skipped
 * where no such server answers.
 */
const LOCAL_URL = process.env.CONCORDAT_NO_PREPARED_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const local = await probe(LOCAL_URL);

describe.runIf(local === '0')('start-up check of max_prepared_transactions', () => {
  @Service('xa-check')
  @XaParticipant('xa-check')
  class Participant {
    @Prepare()
    async work(_context: XaContext): Promise<void> {}
  }

  it('an app with a 2PC participant refuses to start on a server without prepared transactions, naming the setting', async () => {
    const name = `xa_check_${randomUUID().slice(0, 8)}`;
    const admin = new pg.Client({ connectionString: LOCAL_URL });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${name}`);
    const url = new URL(LOCAL_URL);
    url.pathname = `/${name}`;
    const app = ConcordatApp.create({
      name: 'xa-check',
      services: [Participant, TransactionCoordinator],
      database: { url: url.toString(), poolSize: 2 },
      transport: undefined,
      relay: false,
      dataDir: `/tmp/${name}`,
    });
    try {
      await expect(app.start()).rejects.toThrow(
        'PostgreSQL has max_prepared_transactions = 0, so 2PC participants cannot PREPARE TRANSACTION. Set max_prepared_transactions',
      );
    } finally {
      await app.stop();
      await rm(`/tmp/${name}`, { recursive: true, force: true });
      await admin.query(`DROP DATABASE ${name} WITH (FORCE)`);
      await admin.end();
    }
  });
});

async function probe(url: string): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1000 });
  try {
    await client.connect();
    const { rows } = await client.query('SHOW max_prepared_transactions');
    return String(rows[0].max_prepared_transactions);
  } catch {
    return undefined;
  } finally {
    await client.end().catch(() => undefined);
  }
}
