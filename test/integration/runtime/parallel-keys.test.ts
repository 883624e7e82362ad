import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ConcordatApp, OnMessage, Service, type AppOptions, type MessageContext } from '../../../src/runtime/index.js';
import { EffectLedger, FaultyTransport, until } from '../../../src/testing/index.js';
import { EmbeddedTransport, KafkaTransport, type Transport } from '../../../src/transport/index.js';
import { startTestBroker, type TestBroker } from '../broker/helpers/broker.js';
import { createTestDatabase, type TestDatabase } from '../../support/database.js';

/**
 * Parallel keys within a partition (issue 14), end to end on each
 * transport, one partition, `concurrency: { perPartition: 16 }`:
 * - handlers of different keys run at once (16 seen in flight, never more);
 * - under FaultyTransport (every delivery twice, deliveries dropped after
 *   the handler committed) each message has its effect exactly once and
 *   each key's effects happen in offset order; at every handler call the
 *   committed offset is at or below the record handled;
 * - a record that keeps failing holds the committed offset at its own
 *   offset while the other keys go on past it; a new instance of the app
 *   starts there, handles it, and the inbox skips the records handled above
 *   it.
 */

const PER_PARTITION = 16;
const LEDGER = 'parallel_effects';

interface Entry {
  key: string;
  seq: number;
}

/** Gate of the concurrency test: handlers wait on it, counting how many wait at once. */
const gate = { inFlight: 0, inFlightMax: 0, open: false, waiters: [] as Array<() => void> };

@Service('parkeys-gate')
class GateService {
  @OnMessage('parkeys.gate', { concurrency: { perPartition: PER_PARTITION } })
  async handle(_context: MessageContext<Entry>): Promise<void> {
    gate.inFlight++;
    gate.inFlightMax = Math.max(gate.inFlightMax, gate.inFlight);
    if (!gate.open) await new Promise<void>((resolve) => gate.waiters.push(resolve));
    gate.inFlight--;
  }
}

/** What the ledger handler saw: violations of the committed-offset rule, checked at each call. */
const watch = { transport: null as Transport | null, violations: [] as string[], calls: 0 };

@Service('parkeys-ledger')
class LedgerService {
  @OnMessage('parkeys.entries', { concurrency: { perPartition: PER_PARTITION }, retry: { maxAttempts: 5, strategy: 'fixed', initialDelayMs: 10 } })
  async record(context: MessageContext<Entry>): Promise<void> {
    watch.calls++;
    const { offset, partition } = context.delivery;
    const lag = await watch.transport!.consumerLag!('parkeys-ledger', ['parkeys.entries']);
    const committed = lag.find((entry) => entry.partition === partition)?.committedOffset ?? -1;
    // This record is not done while its handler runs: the committed offset must not have passed it.
    if (committed > offset) watch.violations.push(`offset ${offset} handled with ${committed} committed`);
    // A little I/O of varying length, so that keys finish out of offset order.
    await sleep(Math.floor(Math.random() * 3));
    await new EffectLedger(context.manager.dataSource, LEDGER).record(context.manager, { consumer: 'ledger', key: context.data.key, seq: context.data.seq });
  }
}

/** The stuck-key test: the key 'stuck' fails while `blocked`; offsets of what each handler call saw. */
const stuck = { blocked: true, offset: -1, done: new Map<string, number>() };

@Service('parkeys-stuck')
class StuckService {
  @OnMessage('parkeys.stuck', {
    concurrency: { perPartition: PER_PARTITION },
    retry: { maxAttempts: 100, strategy: 'fixed', initialDelayMs: 200, maxDelayMs: 200 },
  })
  async record(context: MessageContext<Entry>): Promise<void> {
    const { key, seq } = context.data;
    if (key === 'stuck' && seq === 1) {
      stuck.offset = context.delivery.offset;
      if (stuck.blocked) throw new Error('stuck: the record keeps failing');
    }
    await new EffectLedger(context.manager.dataSource, LEDGER).record(context.manager, { consumer: 'stuck', key, seq });
    stuck.done.set(`${key}#${seq}`, context.delivery.offset);
  }
}

const testConsumer = { sessionTimeoutMs: 6000, heartbeatIntervalMs: 500, maxWaitMs: 100, retryBackoffMs: 20, retryBackoffMaxMs: 100 };

/**
 * Publishes entries `firstSeq`..`lastSeq` for each of `keys`, keys
 * interleaved, 50 per transaction; returns the expected counts of `consumer`
 * (`lastSeq` per key).
 */
async function publish(
  app: ConcordatApp,
  topic: string,
  keys: string[],
  lastSeq: number,
  consumer: string,
  firstSeq = 1,
): Promise<Record<string, Record<string, number>>> {
  const entries: Entry[] = [];
  for (let seq = firstSeq; seq <= lastSeq; seq++) for (const key of keys) entries.push({ key, seq });
  for (let i = 0; i < entries.length; i += 50) {
    await app.transaction(async (context) => {
      for (const entry of entries.slice(i, i + 50)) context.publish(topic, entry, { key: entry.key });
    });
  }
  return { [consumer]: Object.fromEntries(keys.map((key) => [key, lastSeq])) };
}

describe.each(['embedded', 'kafkajs → concordat broker'])('parallel keys within a partition (%s)', (kind) => {
  let broker: TestBroker | undefined;
  let dir: string;
  const cleanups: Array<() => Promise<unknown>> = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'concordat-parkeys-'));
    if (kind !== 'embedded') broker = await startTestBroker();
  });
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
  });
  afterAll(async () => {
    await broker?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  /** A transport of this kind; the embedded one in a directory of its own. */
  async function newTransport(name: string): Promise<Transport> {
    const transport =
      kind === 'embedded'
        ? new EmbeddedTransport({
            dataDir: join(dir, name),
            consumer: { heartbeatIntervalMs: 200, maxWaitMs: 100, retryBackoffMs: 20, retryBackoffMaxMs: 200 },
          })
        : new KafkaTransport({ brokers: [broker!.bootstrap], consumer: testConsumer });
    cleanups.push(() => transport.close());
    return transport;
  }

  async function newDatabase(prefix: string): Promise<TestDatabase> {
    const testDb = await createTestDatabase(prefix);
    cleanups.push(() => testDb.drop());
    return testDb;
  }

  async function startApp(services: Function[], url: string, transport: Transport, extra: Partial<AppOptions> = {}): Promise<ConcordatApp> {
    const app = ConcordatApp.create({
      name: 'parkeys',
      services,
      database: { url, poolSize: PER_PARTITION + 8 },
      transport,
      partitions: 1,
      relay: { pollIntervalMs: 50 },
      ...extra,
    });
    await app.start();
    cleanups.push(() => app.stop());
    return app;
  }

  it(`runs handlers of different keys at once: ${PER_PARTITION} in flight, never more`, async () => {
    Object.assign(gate, { inFlight: 0, inFlightMax: 0, open: false, waiters: [] });
    const testDb = await newDatabase('parkeys_gate');
    const app = await startApp([GateService], testDb.url, await newTransport('gate'));
    const keys = Array.from({ length: 3 * PER_PARTITION }, (_, i) => `g${i}`);
    await publish(app, 'parkeys.gate', keys, 1, 'gate');
    try {
      // One partition: with one handler at a time this never holds, and `until` fails.
      await until(() => gate.inFlight >= PER_PARTITION, { timeoutMs: 30_000, message: `${PER_PARTITION} handlers in flight at once` });
    } finally {
      gate.open = true;
      for (const release of gate.waiters.splice(0)) release();
    }
    await until(() => app.stats()['parkeys-gate']!.processed === keys.length, { message: 'every message handled' });
    expect(gate.inFlightMax).toBe(PER_PARTITION);
  });

  it(`FaultyTransport, perPartition ${PER_PARTITION}: each effect exactly once, each key in offset order, the committed offset never past a record not done`, async () => {
    Object.assign(watch, { violations: [], calls: 0 });
    const testDb = await newDatabase('parkeys_faults');
    const inner = await newTransport('faults');
    watch.transport = inner;
    const faulty = new FaultyTransport(inner).deliverTwice().dropAfterHandling(20);
    const app = await startApp([LedgerService], testDb.url, faulty);
    const ledger = new EffectLedger(app.dataSource, LEDGER);
    await ledger.install();
    const keys = Array.from({ length: 48 }, (_, i) => `k${i}`);
    const expected = await publish(app, 'parkeys.entries', keys, 8, 'ledger');
    await until(async () => (await ledger.count()) >= 384 && faulty.pending() === 0, { timeoutMs: 60_000, message: '384 effects and every fault fired' });
    // Everything is done once the committed offset reaches the end of the partition.
    await until(async () => (await inner.consumerLag!('parkeys-ledger', ['parkeys.entries']))[0]?.lag === 0, { message: 'the group caught up' });
    const report = await ledger.assertExactlyOnceInOrder(expected);
    expect(report.total).toBe(384);
    expect(watch.violations).toEqual([]);
    const stats = app.stats()['parkeys-ledger']!;
    expect(stats).toMatchObject({ processed: 384, deadLettered: 0 });
    // Every delivery came twice, and 20 came again after their drop: all skipped by the inbox.
    expect(stats.duplicates).toBeGreaterThanOrEqual(384);
    expect(faulty.stats.deliveriesDropped).toBe(20);
  });

  it('a failing record holds the committed offset at its own while other keys go on; a restart handles it and the inbox skips what was done above it', async () => {
    Object.assign(stuck, { blocked: true, offset: -1, done: new Map() });
    const testDb = await newDatabase('parkeys_stuck');
    const transport = await newTransport('stuck');
    const committed = async (): Promise<number> => (await transport.consumerLag!('parkeys-stuck', ['parkeys.stuck']))[0]?.committedOffset ?? -1;
    // On kafkajs the stuck record shares its fetch with the rest (see below): one record per transaction, so
    // that it shares its transaction with none (a message being retried holds up the others of its transaction).
    const dispatcher = kind === 'embedded' ? {} : { dispatcher: { batchRecordsMax: 1 } };
    const first = await startApp([StuckService], testDb.url, transport, dispatcher);
    const ledger = new EffectLedger(first.dataSource, LEDGER);
    await ledger.install();
    const others = Array.from({ length: 40 }, (_, i) => `s${i}`);
    // A first round, all done and committed: the stuck record will not be the partition's first.
    await publish(first, 'parkeys.stuck', others, 1, 'stuck');
    await until(async () => (await committed()) === 40, { message: 'the first 40 committed' });
    if (kind === 'embedded') {
      // The stuck record alone, failing (so it is the only record of its chunk), then 4 more of each key:
      // the worker reads on past the stuck record.
      await publish(first, 'parkeys.stuck', ['stuck'], 1, 'stuck');
      await until(() => stuck.offset >= 0, { message: 'the stuck record tried' });
      await publish(first, 'parkeys.stuck', ['stuck', ...others], 5, 'stuck', 2);
    } else {
      // kafkajs fetches a partition again only once its batch is done, so the window is one fetch: the
      // stuck record first, and 4 more of each key behind it in the same transaction (one produce, one fetch).
      await first.transaction(async (context) => {
        context.publish('parkeys.stuck', { key: 'stuck', seq: 1 }, { key: 'stuck' });
        for (let seq = 2; seq <= 5; seq++) for (const key of ['stuck', ...others]) context.publish('parkeys.stuck', { key, seq }, { key });
      });
    }
    await until(() => stuck.done.size === 40 + 160, { timeoutMs: 60_000, message: 'every other key done' });
    await until(async () => (await committed()) === stuck.offset, { message: 'the committed offset at the stuck record' });
    // Past the stuck record every other key's records are done, none of its own key.
    const doneAbove = [...stuck.done.values()].filter((offset) => offset > stuck.offset).length;
    // (On kafkajs the relay wrote the one transaction's rows in its shards' order, so some landed below the stuck record.)
    if (kind === 'embedded') expect(doneAbove).toBe(160);
    else expect(doneAbove).toBeGreaterThan(0);
    expect([...stuck.done.keys()].filter((id) => id.startsWith('stuck#'))).toEqual([]);
    await first.stop();

    stuck.blocked = false;
    const second = await startApp([StuckService], testDb.url, transport, dispatcher);
    // The first app closed its database; the ledger reads through the second's.
    const ledger2 = new EffectLedger(second.dataSource, LEDGER);
    await until(async () => (await ledger2.count()) === 40 + 5 + 160, { timeoutMs: 60_000, message: 'all 205 effects' });
    await until(async () => (await committed()) === 40 + 5 + 160, { message: 'the second instance committed to the end' });
    // The second instance started at the stuck record: it handled its key's 5 and skipped the rest.
    expect(second.stats()['parkeys-stuck']).toMatchObject({ processed: 5, duplicates: doneAbove, deadLettered: 0 });
    await ledger2.assertExactlyOnceInOrder({ stuck: { ...Object.fromEntries(others.map((key) => [key, 5])), stuck: 5 } });
  }, 180_000);
});
