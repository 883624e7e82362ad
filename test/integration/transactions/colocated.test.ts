import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nonRetriable } from '../../../src/errors.js';
import { LogManager } from '../../../src/log/index.js';
import { openDatabase, type Database } from '../../../src/persistence/index.js';
import { ConcordatApp, Service } from '../../../src/runtime/index.js';
import { Cancel, Confirm, REPLY_TOPIC, TccParticipant, TransactionCoordinator, Try, beginTcc, type TccContext } from '../../../src/transactions/index.js';
import { EmbeddedTransport } from '../../../src/transport/index.js';
import { createTestDatabase, type TestDatabase } from '../../support/database.js';
import { waitFor } from './support/fixture.js';

function participant(name: string) {
  @Service(name)
  @TccParticipant(name)
  class Participant {
    @Try()
    async try(context: TccContext<{ refuse?: string }>): Promise<void> {
      await context.manager.query(`INSERT INTO effects VALUES ($1, $2, 'try')`, [context.globalTxId, name]);
      // Long enough that both participants' transactions are open at once and reach the global transactions together.
      await context.manager.query(`SELECT pg_sleep(0.002)`);
      // Quotes and a backslash: the reason travels as an escaped literal in the COMMIT round trip.
      if (context.payload.refuse === name) throw nonRetriable(new Error(`${name} says "no", it's final \\ really`));
    }
    @Confirm()
    async confirm(context: TccContext): Promise<void> {
      await context.manager.query(`INSERT INTO effects VALUES ($1, $2, 'confirm')`, [context.globalTxId, name]);
    }
    @Cancel()
    async cancel(context: TccContext): Promise<void> {
      await context.manager.query(`INSERT INTO effects VALUES ($1, $2, 'cancel')`, [context.globalTxId, name]);
    }
  }
  return Participant;
}

/**
 * Participants in the coordinator's app, on its database: their replies are
 * applied by the coordinator inside their own transactions (colocated.ts),
 * not sent through the log. Two participants' transactions race for the same
 * global transactions (each holds a Try of every one), so each must see the
 * other's committed vote once it has the row lock, or nothing is decided.
 */
describe('participants co-located with the coordinator (one app, one database)', () => {
  let testDb: TestDatabase;
  let db: Database;
  let dir: string;
  let logManager: LogManager;
  let app: ConcordatApp;

  beforeAll(async () => {
    testDb = await createTestDatabase('colocated');
    db = await openDatabase({ url: testDb.url, poolSize: 12 });
    await db.dataSource.query(`CREATE TABLE effects (global_tx_id uuid, participant text, action text)`);
    dir = await mkdtemp(join(tmpdir(), 'concordat-colocated-'));
    logManager = await LogManager.open({ dataDir: dir });
    const transport = new EmbeddedTransport(logManager);
    app = ConcordatApp.create({
      name: 'colocated',
      services: [TransactionCoordinator, participant('left'), participant('right')],
      database: db,
      transport,
      partitions: 4,
    });
    await app.start();
  });
  afterAll(async () => {
    await app.stop();
    await logManager.close();
    await db.close();
    await testDb.drop();
    await rm(dir, { recursive: true, force: true });
  });

  it("decides every global transaction from replies applied in the participants' transactions; no reply goes through the log", async () => {
    const count = 60;
    const ids = await app.transaction(async (context) => {
      const ids: string[] = [];
      for (let i = 0; i < count; i++) {
        const refuse = i % 5 === 0 ? 'right' : undefined;
        ids.push(
          await beginTcc(context, {
            name: 'colocated',
            branches: [
              { participant: 'left', payload: { refuse } },
              { participant: 'right', payload: { refuse } },
            ],
            timeoutMs: 60_000,
          }),
        );
      }
      return ids;
    });
    const ended = async (): Promise<Array<{ state: string; n: number }>> =>
      db.dataSource.query(
        `SELECT state, count(*)::int AS n FROM concordat.global_transaction WHERE id = ANY($1::uuid[]) AND ended_at IS NOT NULL GROUP BY state ORDER BY state`,
        [ids],
      );
    await waitFor(async () => ((await ended()).reduce((sum, row) => sum + row.n, 0) === count ? true : undefined), `all ${count} global transactions ended`);
    expect(await ended()).toEqual([
      { state: 'CANCELLED', n: count / 5 },
      { state: 'CONFIRMED', n: count - count / 5 },
    ]);
    const actions = await db.dataSource.query(`SELECT participant, action, count(*)::int AS n FROM effects GROUP BY 1, 2 ORDER BY 1, 2`);
    expect(actions).toEqual([
      { participant: 'left', action: 'cancel', n: count / 5 },
      { participant: 'left', action: 'confirm', n: count - count / 5 },
      { participant: 'left', action: 'try', n: count },
      { participant: 'right', action: 'confirm', n: count - count / 5 },
      // A Try that refuses rolls its own writes back.
      { participant: 'right', action: 'try', n: count - count / 5 },
    ]);
    const reasons = await db.dataSource.query(`SELECT DISTINCT reason FROM concordat.global_transaction WHERE id = ANY($1::uuid[]) AND state = 'CANCELLED'`, [
      ids,
    ]);
    expect(reasons).toEqual([{ reason: 'right refused: Error: right says "no", it\'s final \\ really' }]);
    // One decision each, and the replies are in the timeline as usual.
    const decisions = await db.dataSource.query(
      `SELECT count(*)::int AS n FROM concordat.global_tx_event WHERE global_tx_id = ANY($1::uuid[]) AND kind = 'DECIDED'`,
      [ids],
    );
    expect(decisions).toEqual([{ n: count }]);
    // Everything the transactions published has been relayed (the outbox is empty): none of it was a reply.
    await waitFor(
      async () => (Number((await db.dataSource.query(`SELECT count(*) AS n FROM concordat.outbox`))[0].n) === 0 ? true : undefined),
      'the outbox drained',
    );
    const replies = [0, 1, 2, 3].map((p) => logManager.describePartition(REPLY_TOPIC, p).highWatermark);
    expect(replies).toEqual([0, 0, 0, 0]);
  });
});
