import { Container } from 'inversify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConcordatApp, Service } from '../../../src/runtime/index.js';
import { until } from '../../../src/testing/index.js';
import {
  COORDINATOR_OPTIONS,
  COORDINATOR_SERVICE,
  Cancel,
  REPLY_TOPIC,
  Confirm,
  TccParticipant,
  TransactionCoordinator,
  Try,
  beginTcc,
  type CoordinatorOptions,
  type TccContext,
} from '../../../src/transactions/index.js';
import { createTxFixture, type TxFixture } from './support/fixture.js';

@Service('counter')
@TccParticipant('counter')
class Counter {
  @Try()
  async try(context: TccContext): Promise<void> {
    await context.manager.query(`INSERT INTO effects VALUES ($1, $2, 'try')`, [context.globalTxId, context.branchId]);
  }
  @Confirm()
  async confirm(context: TccContext): Promise<void> {
    await context.manager.query(`INSERT INTO effects VALUES ($1, $2, 'confirm')`, [context.globalTxId, context.branchId]);
  }
  @Cancel()
  async cancel(context: TccContext): Promise<void> {
    await context.manager.query(`INSERT INTO effects VALUES ($1, $2, 'cancel')`, [context.globalTxId, context.branchId]);
  }
}

/**
 * Two coordinator instances in one consumer group share the work: replies
 * keyed by global transaction go to the partition one of them owns, and
 * both scan for deadlines at once. Neither may drive a step twice: every
 * global transaction has exactly one decision, each participant action runs
 * once, and both instances did some of the work.
 */
describe('two coordinator instances share the work without driving one global transaction twice', () => {
  let f: TxFixture;
  const apps: ConcordatApp[] = [];

  beforeAll(async () => {
    f = await createTxFixture('coordinators', [`CREATE TABLE effects (global_tx_id uuid, branch_id int, action text)`], 24);
    await f.transport.ensureTopics([{ name: 'concordat.tx.replies', partitions: 4 }]);
    // Resends far away, so every reply counted below is one the protocol needed.
    const options: CoordinatorOptions = { scanIntervalMs: 20, resendIntervalMs: 10_000 };
    for (const name of ['coordinator-a', 'coordinator-b']) {
      const container = new Container();
      container.bind(COORDINATOR_OPTIONS).toConstantValue(options);
      const app = ConcordatApp.create({ name, services: [TransactionCoordinator], container, database: f.db, transport: f.transport, partitions: 4 });
      await app.start();
      apps.push(app);
    }
  });
  afterAll(async () => {
    for (const app of apps.reverse()) await app.stop();
    await f.close();
  });

  const begin = (count: number, timeoutMs: number): Promise<string[]> =>
    apps[0]!.transaction(async (context) => {
      const ids: string[] = [];
      for (let i = 0; i < count; i++) {
        ids.push(
          await beginTcc(context, {
            name: 'shared',
            branches: [
              { participant: 'counter', payload: {} },
              { participant: 'counter', payload: {} },
            ],
            timeoutMs,
          }),
        );
      }
      return ids;
    });
  const decisions = (ids: string[]) =>
    f.query<{ id: string; n: number }>(
      `SELECT g.id, (SELECT count(*)::int FROM concordat.global_tx_event e WHERE e.global_tx_id = g.id AND e.kind = 'DECIDED') AS n
         FROM concordat.global_transaction g WHERE g.id = ANY($1::uuid[])`,
      [ids],
    );

  it('replies: 60 global transactions confirmed, one decision each, each action once, both instances working', async () => {
    // A pool of their own, as participants in another process have: on the coordinators' own pool
    // they would hand their replies to a co-located coordinator in their transactions (colocated.ts).
    const participants = ConcordatApp.create({
      name: 'participants',
      services: [Counter],
      database: { url: f.url },
      transport: f.transport,
      partitions: 4,
      relay: false,
    });
    await participants.start();
    try {
      const ids = await begin(60, 30_000);
      for (const id of ids) expect(await f.ended(id)).toEqual({ state: 'CONFIRMED', reason: null, ended: true });
      expect((await decisions(ids)).every((row) => row.n === 1)).toBe(true);
      const actions = await f.query<{ action: string; n: number }>(
        `SELECT action, count(*)::int AS n FROM effects WHERE global_tx_id = ANY($1::uuid[]) GROUP BY action ORDER BY action`,
        [ids],
      );
      expect(actions).toEqual([
        { action: 'confirm', n: 120 },
        { action: 'try', n: 120 },
      ]);
      const processed = apps.map((app) => app.stats()[COORDINATOR_SERVICE]!.processed);
      expect(processed.every((n) => n > 0)).toBe(true);
      expect(processed[0]! + processed[1]!).toBe(60 * 4);
    } finally {
      await participants.stop();
    }
  });

  it('deadlines: both instances scan at once; 40 expired global transactions are each decided once', async () => {
    // No participant runs: every transaction expires and is cancelled by whichever scan claims it first.
    const ids = await begin(40, 150);
    await until(async () => (await decisions(ids)).every((row) => row.n === 1), { message: 'every deadline decision' });
    // More scans, by both instances at once, must find nothing left to decide.
    const coordinators = apps.map((app) => app.service<TransactionCoordinator>(TransactionCoordinator));
    for (let round = 0; round < 2; round++) await Promise.all(coordinators.map((coordinator) => coordinator.scan()));
    const rows = await decisions(ids);
    expect(rows).toHaveLength(40);
    expect(rows.every((row) => row.n === 1)).toBe(true);
    const states = await f.query<{ state: string; n: number }>(
      `SELECT state, count(*)::int AS n FROM concordat.global_transaction WHERE id = ANY($1::uuid[]) GROUP BY state`,
      [ids],
    );
    expect(states).toEqual([{ state: 'CANCELLING', n: 40 }]);
  });

  it('a reply naming no UUID, or a global transaction nobody knows, is consumed once and changes nothing', async () => {
    const before = apps.map((app) => app.stats()[COORDINATOR_SERVICE]!);
    const junk = [
      { globalTxId: "x'; DROP TABLE concordat.branch; --", branchId: 1, action: 'try', ok: true },
      { globalTxId: '00000000-0000-7000-8000-000000000000', branchId: 1, action: 'confirm', ok: true },
    ];
    const ids = await apps[0]!.transaction(async (context) => junk.map((data) => context.publish(REPLY_TOPIC, data, { key: data.globalTxId })));
    await until(
      async () =>
        (
          await f.query<{ n: number }>(`SELECT count(*)::int AS n FROM concordat.inbox WHERE consumer = $1 AND message_id = ANY($2)`, [
            COORDINATOR_SERVICE,
            ids,
          ])
        )[0]!.n === 2,
      { message: 'both replies consumed' },
    );
    const after = apps.map((app) => app.stats()[COORDINATOR_SERVICE]!);
    expect(after.reduce((n, s) => n + s.deadLettered, 0)).toBe(before.reduce((n, s) => n + s.deadLettered, 0));
    expect(after.reduce((n, s) => n + s.retries, 0)).toBe(before.reduce((n, s) => n + s.retries, 0));
    expect((await f.query<{ n: number }>(`SELECT count(*)::int AS n FROM concordat.branch`))[0]!.n).toBeGreaterThan(0);
  });
});
