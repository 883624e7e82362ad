import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ConcordatError, ErrorCode } from '../../../src/errors.js';
import { openDatabase, type Database } from '../../../src/persistence/index.js';
import { ConcordatApp, OnMessage, Service, runTransaction, type MessageContext } from '../../../src/runtime/index.js';
import { EmbeddedTransport, KafkaTransport, type Transport } from '../../../src/transport/index.js';
import { until } from '../../../src/testing/index.js';
import { startTestBroker, type TestBroker } from '../broker/helpers/broker.js';
import { createTestDatabase, type TestDatabase } from '../../support/database.js';

/**
 * Scheduled and delayed delivery (issue 14): `publish(..., { deliverAt |
 * delayMs })` from `app.transaction` and from a handler, delivered once at
 * or after its time, ordered against its key's immediate messages by when it
 * became due; `cancelScheduled` in a transaction, and its race against the
 * relay. Each on the embedded log and through kafkajs to `concordat broker`.
 */

interface Seen {
  id: string;
  label: string;
  atMs: number;
}
const seen: Seen[] = [];

@Service('scheduled-app')
class Timers {
  @OnMessage('sched.events')
  async event(context: MessageContext<{ label: string; then?: { label: string; delayMs: number } }>): Promise<void> {
    seen.push({ id: context.message.id, label: context.data.label, atMs: Date.now() });
    const then = context.data.then;
    if (then !== undefined) context.publish('sched.events', { label: then.label }, { key: 'from-handler', delayMs: then.delayMs });
  }
}

const labels = (): string[] => seen.map((s) => s.label);
const seenOf = (label: string): Seen[] => seen.filter((s) => s.label === label);
const waitFor = async (label: string, message: string): Promise<void> => {
  await until(() => seenOf(label).length > 0, { timeoutMs: 30_000, intervalMs: 10, message });
};

const testConsumer = { sessionTimeoutMs: 6000, heartbeatIntervalMs: 500, maxWaitMs: 50, retryBackoffMs: 20, retryBackoffMaxMs: 100 };

describe.each(['embedded', 'kafkajs → concordat broker'])('scheduled delivery end to end (%s)', (kind) => {
  let testDb: TestDatabase;
  let transport: Transport;
  let broker: TestBroker | undefined;
  let dir: string;
  let app: ConcordatApp;

  beforeAll(async () => {
    testDb = await createTestDatabase('scheduled_app');
    dir = await mkdtemp(join(tmpdir(), 'concordat-scheduled-'));
    if (kind === 'embedded') {
      transport = new EmbeddedTransport({ dataDir: dir, consumer: { heartbeatIntervalMs: 200, maxWaitMs: 50, retryBackoffMs: 20, retryBackoffMaxMs: 200 } });
    } else {
      broker = await startTestBroker();
      transport = new KafkaTransport({ brokers: [broker.bootstrap], consumer: testConsumer });
    }
    app = ConcordatApp.create({
      name: 'scheduled-app',
      services: [Timers],
      database: { url: testDb.url, poolSize: 4 },
      transport,
      partitions: 1,
      relay: { pollIntervalMs: 200 },
    });
    await app.start();
    // The consumer is up before the timed parts: its first join is not what they measure.
    await app.publish('sched.events', { label: 'warm-up' });
    await waitFor('warm-up', 'the warm-up message handled');
  });
  afterAll(async () => {
    await app?.stop();
    await transport?.close();
    await broker?.stop();
    await testDb?.drop();
    await rm(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    seen.length = 0;
  });

  const pending = async (id: string): Promise<boolean> =>
    (await app.dataSource.query(`SELECT 1 FROM concordat.outbox_scheduled WHERE message_id = $1`, [id])).length === 1;

  it('delivers a delayed message once, at or after its time, after the immediate messages of its key committed before it was due', async () => {
    const deliverAt = new Date(Date.now() + 1500);
    const id = await app.transaction(async (context) => {
      const scheduled = context.publish('sched.events', { label: 'later' }, { key: 'k1', deliverAt });
      context.publish('sched.events', { label: 'now' }, { key: 'k1' });
      return scheduled;
    });
    await waitFor('now', 'the immediate message handled');
    // Published after the scheduled one, delivered before it; at that moment the scheduled one still waits.
    expect(await pending(id)).toBe(true);
    expect(labels()).toEqual(['now']);
    await waitFor('later', 'the scheduled message handled');
    const [later, ...again] = seenOf('later');
    expect(again).toEqual([]);
    expect(later!.id).toBe(id);
    expect(later!.atMs).toBeGreaterThanOrEqual(deliverAt.getTime());
    // And behind it on its key, an immediate message published now comes after it.
    await app.publish('sched.events', { label: 'after' }, { key: 'k1' });
    await waitFor('after', 'the message behind it handled');
    expect(labels()).toEqual(['now', 'later', 'after']);
  });

  it('a message published for later exists if and only if its transaction commits', async () => {
    let id = '';
    await expect(
      app.transaction(async (context) => {
        id = context.publish('sched.events', { label: 'rolled-back' }, { key: 'k2', delayMs: 50 });
        throw new Error('business rule failed');
      }),
    ).rejects.toThrow('business rule failed');
    expect(await pending(id)).toBe(false);
    // A sentinel due after it on the same key: once it is handled, the rolled-back one would have been too.
    await app.publish('sched.events', { label: 'sentinel' }, { key: 'k2', delayMs: 200 });
    await waitFor('sentinel', 'the sentinel handled');
    expect(labels()).toEqual(['sentinel']);
  });

  it('a handler publishes for later: delivered after its delay', async () => {
    await app.publish('sched.events', { label: 'trigger', then: { label: 'follow-up', delayMs: 300 } });
    await waitFor('follow-up', 'the follow-up handled');
    const trigger = seenOf('trigger')[0]!;
    const followUp = seenOf('follow-up')[0]!;
    expect(followUp.atMs - trigger.atMs).toBeGreaterThanOrEqual(300);
  });

  it('two scheduled messages of a key are delivered in the order of their times, not of their publishing', async () => {
    const base = Date.now();
    await app.transaction(async (context) => {
      context.publish('sched.events', { label: 'second' }, { key: 'k3', deliverAt: new Date(base + 600) });
      context.publish('sched.events', { label: 'first' }, { key: 'k3', deliverAt: new Date(base + 300) });
    });
    await waitFor('second', 'both handled');
    expect(labels()).toEqual(['first', 'second']);
  });

  it('cancelScheduled before the time: never delivered; the message behind it on its key is', async () => {
    const id = await app.publish('sched.events', { label: 'cancelled' }, { key: 'k4', delayMs: 500 });
    await app.transaction((context) => context.cancelScheduled(id));
    expect(await pending(id)).toBe(false);
    await app.publish('sched.events', { label: 'behind' }, { key: 'k4', delayMs: 600 });
    await waitFor('behind', 'the message behind it handled');
    expect(labels()).toEqual(['behind']);
    // Cancelling again, or after delivery, says that nothing is pending.
    const again = app.transaction((context) => context.cancelScheduled(id));
    await expect(again).rejects.toMatchObject({ code: ErrorCode.SCHEDULED_MESSAGE_NOT_FOUND, context: { messageId: id } });
    await expect(again).rejects.toThrow(`cannot cancel scheduled message ${id}: no such message is pending`);
    const delivered = seenOf('behind')[0]!.id;
    await expect(app.transaction((context) => context.cancelScheduled(delivered))).rejects.toMatchObject({ code: ErrorCode.SCHEDULED_MESSAGE_NOT_FOUND });
  });

  it('a cancel whose transaction rolls back cancels nothing', async () => {
    const id = await app.publish('sched.events', { label: 'kept' }, { key: 'k5', delayMs: 300 });
    await expect(
      app.transaction(async (context) => {
        await context.cancelScheduled(id);
        throw new Error('changed my mind');
      }),
    ).rejects.toThrow('changed my mind');
    await waitFor('kept', 'the message handled');
    expect(seenOf('kept').map((s) => s.id)).toEqual([id]);
  });

  it('cancel races the relay: each message is either cancelled or delivered, exactly one of the two', async () => {
    const count = 60;
    const base = Date.now() + 300;
    const ids = await app.transaction(async (context) =>
      Array.from({ length: count }, (_, i) => context.publish('sched.events', { label: `race-${i}` }, { key: 'race', deliverAt: new Date(base + i * 4) })),
    );
    // Each cancel is sent around its message's time, some before, some after.
    const cancelled = new Set<string>();
    const refused = new Set<string>();
    await Promise.all(
      ids.map(async (id, i) => {
        const at = base + i * 4 + ((i * 7) % 21) - 10;
        await new Promise((resolve) => setTimeout(resolve, Math.max(0, at - Date.now())));
        try {
          await app.transaction((context) => context.cancelScheduled(id));
          cancelled.add(id);
        } catch (error) {
          // Due and not yet moved (DUE), or already moved into the outbox (NOT_FOUND): too late either way.
          const late: string[] = [ErrorCode.SCHEDULED_MESSAGE_DUE, ErrorCode.SCHEDULED_MESSAGE_NOT_FOUND];
          if (!(error instanceof ConcordatError) || !late.includes(error.code)) throw error;
          refused.add(id);
        }
      }),
    );
    expect(cancelled.size + refused.size).toBe(count);
    // Due after all of them on their key: once it is handled, every message not cancelled was delivered before it.
    await app.publish('sched.events', { label: 'race-end' }, { key: 'race', delayMs: 100 });
    await waitFor('race-end', 'the sentinel handled');
    const delivered = seen.filter((s) => s.label.startsWith('race-') && s.label !== 'race-end').map((s) => s.id);
    expect(new Set(delivered).size).toBe(delivered.length);
    expect(delivered.filter((id) => cancelled.has(id))).toEqual([]);
    expect(new Set(delivered)).toEqual(refused);
  });

  it('refuses a bad schedule before anything is written', async () => {
    const bad = [{ deliverAt: new Date(NaN) }, { delayMs: -1 }, { delayMs: Infinity }, { deliverAt: new Date(), delayMs: 5 }];
    for (const options of bad) {
      await expect(app.publish('sched.events', { label: 'bad' }, options)).rejects.toMatchObject({ code: ErrorCode.SCHEDULE_INVALID });
    }
    expect(Number((await app.dataSource.query(`SELECT count(*) AS n FROM concordat.outbox_scheduled`))[0].n)).toBe(0);
  });
});

describe('cancelScheduled without a relay (real Postgres)', () => {
  let testDb: TestDatabase;
  let db: Database;

  beforeAll(async () => {
    testDb = await createTestDatabase('scheduled_cancel');
    db = await openDatabase({ url: testDb.url, poolSize: 2 });
  });
  afterAll(async () => {
    await db?.close();
    await testDb?.drop();
  });

  it('refuses a message whose time has come (SCHEDULED_MESSAGE_DUE) and leaves it to be delivered', async () => {
    const deliverAt = new Date(Date.now() - 1000);
    const id = await runTransaction(db.dataSource, 'test', async (context) => context.publish('sched.due', { n: 1 }, { deliverAt }));
    const cancel = runTransaction(db.dataSource, 'test', (context) => context.cancelScheduled(id));
    await expect(cancel).rejects.toMatchObject({ code: ErrorCode.SCHEDULED_MESSAGE_DUE, context: { messageId: id, deliverAt: deliverAt.toISOString() } });
    await expect(cancel).rejects.toThrow(`cannot cancel scheduled message ${id}: it was due at ${deliverAt.toISOString()} and is being delivered`);
    expect(await db.dataSource.query(`SELECT message_id FROM concordat.outbox_scheduled`)).toEqual([{ message_id: id }]);
  });

  it('cancels a message published earlier in the same transaction: nothing is written', async () => {
    const id = await runTransaction(db.dataSource, 'test', async (context) => {
      const published = context.publish('sched.same', { n: 2 }, { delayMs: 60_000 });
      await context.cancelScheduled(published);
      return published;
    });
    expect(await db.dataSource.query(`SELECT 1 FROM concordat.outbox_scheduled WHERE message_id = $1`, [id])).toEqual([]);
  });

  it('stores delayMs by the database clock from the insert, and deliverAt as given', async () => {
    const deliverAt = new Date('2031-02-03T04:05:06.789Z');
    const [a, b] = await runTransaction(db.dataSource, 'test', async (context) => [
      context.publish('sched.stored', { n: 3 }, { delayMs: 90_000 }),
      context.publish('sched.stored', { n: 4 }, { deliverAt }),
    ]);
    const rows: Array<{ message_id: string; delay_ms: number; deliver_at: Date }> = await db.dataSource.query(
      `SELECT message_id, extract(epoch FROM deliver_at - created_at) * 1000 AS delay_ms, deliver_at FROM concordat.outbox_scheduled WHERE topic = 'sched.stored'`,
    );
    const byId = new Map(rows.map((row) => [row.message_id, row]));
    // created_at is read a few µs after deliver_at's clock in the same insert.
    expect(Number(byId.get(a!)!.delay_ms)).toBeGreaterThanOrEqual(89_999);
    expect(Number(byId.get(a!)!.delay_ms)).toBeLessThan(91_000);
    expect(byId.get(b!)!.deliver_at.toISOString()).toBe(deliverAt.toISOString());
  });
});
