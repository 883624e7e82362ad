import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Database } from '../../../src/persistence/index.js';
import { runTransaction } from '../../../src/runtime/index.js';
import { runWithFaults, until, type ChildRun } from '../../../src/testing/index.js';
import { startTestBroker, type TestBroker } from '../broker/helpers/broker.js';
import { createTestDatabase, type TestDatabase } from '../../support/database.js';

/**
 * Scheduled messages survive SIGKILL between due and delivered (issue 14):
 * the app runs in a child process against `concordat broker` (kafkajs, real
 * TCP) and is killed right after the relay moved due rows into the outbox,
 * then right after the relay published them (before deleting them). After a
 * clean restart every message has had its effect exactly once, none before
 * its time.
 */
const SERVICE = fileURLToPath(new URL('./scheduled/timer-service.ts', import.meta.url));

describe('scheduled delivery under SIGKILL (kafkajs → concordat broker)', () => {
  let testDb: TestDatabase;
  let db: Database;
  let broker: TestBroker;
  const children: ChildRun[] = [];

  beforeAll(async () => {
    // A killed member's session ends after 1.5 s instead of the default's 10 s.
    broker = await startTestBroker({ log: { groups: { minSessionTimeoutMs: 500 } } });
    testDb = await createTestDatabase('scheduled_crash');
    db = await openDatabase({ url: testDb.url, poolSize: 2 });
    await db.dataSource.query(
      `CREATE TABLE timer_effects (message_id text NOT NULL, label text NOT NULL, handled_at timestamptz NOT NULL DEFAULT clock_timestamp())`,
    );
    await db.dataSource.query(`CREATE TABLE cron_effects (tick_at text NOT NULL, handled_at timestamptz NOT NULL DEFAULT clock_timestamp())`);
  });
  afterAll(async () => {
    for (const child of children) await child.stop('SIGKILL');
    await db?.close();
    await testDb?.drop();
    await broker?.stop();
  });

  const start = (faults?: Record<string, `kill${'' | `@${number}`}`>, cron = false): ChildRun => {
    const env = { DATABASE_URL: testDb.url, BOOTSTRAP: broker.bootstrap, CONCORDAT_LOG_LEVEL: 'warn', CRON: cron ? '1' : '0' };
    const child = runWithFaults(SERVICE, { env, ...(faults && { faults }), timeoutMs: 200_000 });
    children.push(child);
    return child;
  };
  const count = async (sql: string): Promise<number> => Number((await db.dataSource.query(sql))[0].n);

  it('killed after moving due rows, then after publishing them: each message takes effect once, at or after its time', async () => {
    const base = Date.now() + 1500;
    const scheduled = await runTransaction(db.dataSource, 'test', async (context) =>
      Array.from({ length: 6 }, (_, i) => {
        const deliverAt = new Date(base + i * 100);
        return { id: context.publish('crash.timers', { label: `t${i}` }, { key: `k${i % 2}`, deliverAt }), deliverAt };
      }),
    );

    const first = start({ 'scheduled.after-move': 'kill' });
    expect(await first.exited).toEqual({ code: null, signal: 'SIGKILL' });
    // The move committed before the kill: what left the schedule is in the outbox, nothing is lost or published yet.
    const moved = await count(`SELECT count(*) AS n FROM concordat.outbox WHERE topic = 'crash.timers'`);
    expect(moved).toBeGreaterThan(0);
    expect(moved + (await count(`SELECT count(*) AS n FROM concordat.outbox_scheduled`))).toBe(6);
    expect(await count(`SELECT count(*) AS n FROM timer_effects`)).toBe(0);

    const second = start({ 'relay.after-publish': 'kill' });
    expect(await second.exited).toEqual({ code: null, signal: 'SIGKILL' });

    const third = start();
    await until(async () => (await count(`SELECT count(DISTINCT message_id) AS n FROM timer_effects`)) === 6, {
      timeoutMs: 120_000,
      intervalMs: 50,
      message: 'every scheduled message took effect',
    }).catch((error: unknown) => {
      throw new Error(`${String(error)}; the last child said: ${third.stderr.slice(-20).join('\n')} ${third.stdout.join('\n')}`);
    });
    await until(async () => (await count(`SELECT count(*) AS n FROM concordat.outbox`)) === 0, { timeoutMs: 15_000, message: 'the outbox drained' });
    expect(await third.stop()).toEqual({ code: 0, signal: null });

    const effects: Array<{ message_id: string; handled_at: Date }> = await db.dataSource.query(`SELECT message_id, handled_at FROM timer_effects`);
    expect(effects.map((e) => e.message_id).sort()).toEqual(scheduled.map((s) => s.id).sort());
    for (const { id, deliverAt } of scheduled) {
      expect(effects.find((e) => e.message_id === id)!.handled_at.getTime()).toBeGreaterThanOrEqual(deliverAt.getTime());
    }
    expect(await count(`SELECT count(*) AS n FROM concordat.outbox_scheduled`)).toBe(0);
  }, 300_000);

  it('killed around cron ticks (after a tick was moved, after the handler of a tick committed): each tick runs once', async () => {
    const first = start({ 'scheduled.after-move': 'kill@2' }, true);
    expect(await first.exited).toEqual({ code: null, signal: 'SIGKILL' });
    const second = start({ 'dispatcher.after-commit': 'kill@2' }, true);
    expect(await second.exited).toEqual({ code: null, signal: 'SIGKILL' });
    // The second run committed a tick's effect before its kill: the tick is redelivered to the third and must not run again.
    const before = await count(`SELECT count(*) AS n FROM cron_effects`);
    expect(before).toBeGreaterThan(0);
    const third = start(undefined, true);
    await until(async () => (await count(`SELECT count(*) AS n FROM cron_effects`)) >= before + 3, {
      timeoutMs: 120_000,
      intervalMs: 50,
      message: 'three more ticks ran after the restarts',
    });
    expect(await third.stop()).toEqual({ code: 0, signal: null });
    const ticks: Array<{ tick_at: string; handled_at: Date }> = await db.dataSource.query(`SELECT tick_at, handled_at FROM cron_effects ORDER BY tick_at`);
    expect(new Set(ticks.map((t) => t.tick_at)).size).toBe(ticks.length);
    for (const tick of ticks) expect(tick.handled_at.getTime()).toBeGreaterThanOrEqual(new Date(tick.tick_at).getTime());
  }, 300_000);
});
