import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Container } from 'inversify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nonRetriable } from '../../../src/errors.js';
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
  retryGlobalTx,
  type TccContext,
} from '../../../src/transactions/index.js';
import { until } from '../../../src/testing/index.js';
import { EmbeddedTransport } from '../../../src/transport/index.js';
import { createTestDatabase, type TestDatabase } from '../../support/database.js';
import { tccSentinelBehind } from './support/sentinel.js';

/** A participant whose Confirm fails until told otherwise (a bug being fixed, a dependency down). */
@Service('flaky')
@TccParticipant('flaky', { retry: { maxAttempts: 1 } })
class Flaky {
  static confirmFails = true;
  /** The Try loses its own fence row (as if deleted by hand), so the Confirm that follows is refused as a protocol violation. */
  static loseFence = false;
  @Try()
  async try(context: TccContext): Promise<void> {
    await context.manager.query(`INSERT INTO effects VALUES ($1, 'try')`, [context.globalTxId]);
    if (Flaky.loseFence) await context.manager.query(`DELETE FROM concordat.fence WHERE global_tx_id = $1`, [context.globalTxId]);
  }
  @Confirm()
  async confirm(context: TccContext): Promise<void> {
    if (Flaky.confirmFails) throw nonRetriable(new Error('ledger closed'));
    await context.manager.query(`INSERT INTO effects VALUES ($1, 'confirm')`, [context.globalTxId]);
  }
  @Cancel()
  async cancel(context: TccContext): Promise<void> {
    await context.manager.query(`INSERT INTO effects VALUES ($1, 'cancel')`, [context.globalTxId]);
  }
}

describe('TCC decisions sent again to a participant whose handler fails (dead letters)', () => {
  let testDb: TestDatabase;
  let db: Database;
  let dir: string;
  let transport: EmbeddedTransport;
  let app: ConcordatApp;

  beforeAll(async () => {
    testDb = await createTestDatabase('tcc_resend');
    db = await openDatabase({ url: testDb.url, poolSize: 8 });
    await db.dataSource.query(`CREATE TABLE effects (global_tx_id uuid, action text)`);
    dir = await mkdtemp(join(tmpdir(), 'concordat-tcc-resend-'));
    transport = new EmbeddedTransport({ dataDir: dir });
    const container = new Container();
    // Resends every 100 ms: a few seconds hold many of them.
    container.bind(COORDINATOR_OPTIONS).toConstantValue({ scanIntervalMs: 20, resendIntervalMs: 100, resendIntervalMaxMs: 100 });
    app = ConcordatApp.create({ name: 'tcc-resend', services: [TransactionCoordinator, Flaky], container, database: db, transport, partitions: 1 });
    await app.start();
  });
  afterAll(async () => {
    await app.stop();
    await transport.close();
    await db.close();
    await testDb.drop();
    await rm(dir, { recursive: true, force: true });
  });

  const deadLetters = async (id: string): Promise<number> =>
    Number(
      (await db.dataSource.query(`SELECT count(*) AS n FROM concordat.dead_letter WHERE topic = 'concordat.tcc.flaky' AND partition_key = $1`, [id]))[0].n,
    );
  const resends = async (id: string): Promise<number> =>
    Number((await db.dataSource.query(`SELECT count(*) AS n FROM concordat.global_tx_event WHERE global_tx_id = $1 AND kind = 'RESENT'`, [id]))[0].n);
  const state = async (id: string): Promise<string> =>
    (await db.dataSource.query(`SELECT state FROM concordat.global_transaction WHERE id = $1`, [id]))[0].state;
  const effects = async (id: string): Promise<string[]> =>
    (await db.dataSource.query(`SELECT action FROM effects WHERE global_tx_id = $1 ORDER BY action`, [id])).map((r: { action: string }) => r.action);

  it('a Confirm that keeps failing is dead-lettered once however often it is sent again; once the handler works, a resend confirms', async () => {
    Flaky.confirmFails = true;
    const id = await app.transaction((context) => beginTcc(context, { name: 'flaky', branches: [{ participant: 'flaky', payload: {} }], timeoutMs: 60_000 }));
    await until(async () => (await deadLetters(id)) > 0, { message: 'the first dead letter' });
    // Many resends reach the participant and fail again: at least 8 sent, and handled before a sentinel behind them.
    await until(async () => (await resends(id)) >= 8, { message: '8 resends' });
    await tccSentinelBehind(app, 'flaky', id);
    expect(await state(id)).toBe('CONFIRMING');
    expect(await deadLetters(id)).toBe(1);

    Flaky.confirmFails = false;
    await until(async () => (await state(id)) === 'CONFIRMED', { message: 'the confirmation' });
    expect(await effects(id)).toEqual(['confirm', 'try']);
    expect(await deadLetters(id)).toBe(1);
  });

  it("an operator's retry is a new command: it reaches a participant that already answered the decision once", async () => {
    // A Confirm refused as a protocol violation (no fence) fails the branch; the refusal was an answer, recorded in the inbox.
    Flaky.confirmFails = false;
    Flaky.loseFence = true;
    const id = await app.transaction((context) => beginTcc(context, { name: 'flaky', branches: [{ participant: 'flaky', payload: {} }], timeoutMs: 60_000 }));
    await until(async () => (await state(id)) === 'FAILED', { message: 'the branch to fail' });
    // The operator repairs the fence and retries: the Confirm must run, not be skipped as a duplicate.
    await db.dataSource.query(`INSERT INTO concordat.fence (participant, global_tx_id, branch_id, state) VALUES ('flaky', $1, 1, 'TRIED')`, [id]);
    Flaky.loseFence = false;
    await retryGlobalTx(db.dataSource, id);
    await until(async () => (await state(id)) === 'CONFIRMED', { message: 'the confirmation after the retry' });
    expect(await effects(id)).toEqual(['confirm', 'try']);
  });
});
