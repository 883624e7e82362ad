import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Container } from 'inversify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Database } from '../../../src/persistence/index.js';
import { ConcordatApp, Service } from '../../../src/runtime/index.js';
import {
  COORDINATOR_OPTIONS,
  Cancel,
  Confirm,
  TccParticipant,
  TransactionCoordinator,
  Try,
  beginTcc,
  type TccContext,
} from '../../../src/transactions/index.js';
import { until } from '../../../src/testing/index.js';
import { EmbeddedTransport } from '../../../src/transport/index.js';
import { createTestDatabase, type TestDatabase } from '../../support/database.js';

const MAIN = fileURLToPath(new URL('../../../src/cli/main.ts', import.meta.url));

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

/** The participant that exists; the transaction also names `roomz.reserve`, which no service declares. */
@Service('rooms')
@TccParticipant('rooms.reserve')
class Rooms {
  @Try()
  async try(context: TccContext): Promise<void> {
    await context.manager.query(`INSERT INTO effects VALUES ($1, 'try')`, [context.globalTxId]);
  }
  @Confirm()
  async confirm(context: TccContext): Promise<void> {
    await context.manager.query(`INSERT INTO effects VALUES ($1, 'confirm')`, [context.globalTxId]);
  }
  @Cancel()
  async cancel(context: TccContext): Promise<void> {
    await context.manager.query(`INSERT INTO effects VALUES ($1, 'cancel')`, [context.globalTxId]);
  }
}

describe('a branch for a participant no service declares (a typo) does not keep a global transaction active for ever', () => {
  let testDb: TestDatabase;
  let db: Database;
  let dir: string;
  let transport: EmbeddedTransport;
  let app: ConcordatApp;

  beforeAll(async () => {
    testDb = await createTestDatabase('unknown_participant');
    db = await openDatabase({ url: testDb.url, poolSize: 8 });
    await db.dataSource.query(`CREATE TABLE effects (global_tx_id uuid, action text)`);
    dir = await mkdtemp(join(tmpdir(), 'concordat-unknown-participant-'));
    transport = new EmbeddedTransport({ dataDir: dir });
    const container = new Container();
    container.bind(COORDINATOR_OPTIONS).toConstantValue({ scanIntervalMs: 20, resendIntervalMs: 50, resendIntervalMaxMs: 50, decisionResendsMax: 3 });
    app = ConcordatApp.create({ name: 'unknown-participant', services: [TransactionCoordinator, Rooms], container, database: db, transport, partitions: 1 });
    await app.start();
  });
  afterAll(async () => {
    await app.stop();
    await transport.close();
    await db.close();
    await testDb.drop();
    await rm(dir, { recursive: true, force: true });
  });

  const row = async (id: string): Promise<{ state: string; reason: string | null }> =>
    (await db.dataSource.query(`SELECT state, reason FROM concordat.global_transaction WHERE id = $1`, [id]))[0];

  it('after decisionResendsMax resends of its Cancel it ends FAILED naming the branch; the real branch is cancelled; tx end settles it by hand', async () => {
    const id = await app.transaction((context) =>
      beginTcc(context, {
        name: 'book-room',
        branches: [
          { participant: 'rooms.reserve', payload: {} },
          { participant: 'roomz.reserve', payload: {} },
        ],
        timeoutMs: 300,
      }),
    );
    const failed = await until(
      async () => {
        const r = await row(id);
        return r.state === 'FAILED' ? r : undefined;
      },
      { message: 'the coordinator to give up' },
    );
    expect(failed.reason).toBe('gave up after 3 resends of cancel: roomz.reserve (branch 2) never answered');
    const branches = await db.dataSource.query(`SELECT branch_id AS id, state, error FROM concordat.branch WHERE global_tx_id = $1 ORDER BY branch_id`, [id]);
    expect(branches).toEqual([
      { id: 1, state: 'CANCELLED', error: null },
      { id: 2, state: 'FAILED', error: 'no answer to cancel after 3 resends' },
    ]);
    const effects = await db.dataSource.query(`SELECT action FROM effects WHERE global_tx_id = $1 ORDER BY action`, [id]);
    expect(effects.map((e: { action: string }) => e.action)).toEqual(['cancel', 'try']);
    const resent = await db.dataSource.query(`SELECT count(*)::int AS n FROM concordat.global_tx_event WHERE global_tx_id = $1 AND kind = 'RESENT'`, [id]);
    expect(resent).toEqual([{ n: 3 }]);

    // FAILED and settled (the branch never existed): the operator ends it CANCELLED, on the record.
    const ended = await cli(['tx', 'end', id, '--as', 'cancelled', '--reason', 'typo: roomz for rooms', '--by', 'alice', '--url', testDb.url]);
    expect(ended.stderr).toBe('');
    expect(ended.code).toBe(0);
    expect(ended.stdout).toBe(`ended ${id}: now CANCELLED\n`);
    expect(await row(id)).toEqual({ state: 'CANCELLED', reason: 'ended by hand by alice: typo: roomz for rooms' });
    const events = await db.dataSource.query(`SELECT kind, detail FROM concordat.global_tx_event WHERE global_tx_id = $1 ORDER BY seq DESC LIMIT 2`, [id]);
    expect(events).toEqual([
      { kind: 'ENDED', detail: 'ended by hand by alice: typo: roomz for rooms' },
      { kind: 'OPERATOR', detail: 'end as CANCELLED by alice: typo: roomz for rooms' },
    ]);
  });
});
