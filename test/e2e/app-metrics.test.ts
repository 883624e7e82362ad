import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Container } from 'inversify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nonRetriable } from '../../src/errors.js';
import { openDatabase, type Database } from '../../src/persistence/index.js';
import { ConcordatApp, OnMessage, Service, type MessageContext, type OnApplicationStart } from '../../src/runtime/index.js';
import {
  COORDINATOR_OPTIONS,
  Cancel,
  Confirm,
  TccParticipant,
  TransactionCoordinator,
  Try,
  XaParticipant,
  Prepare,
  beginTcc,
  beginTwoPhase,
  type TccContext,
} from '../../src/transactions/index.js';
import { EmbeddedTransport } from '../../src/transport/index.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { metricTypes, parseMetrics, sampleSum, sampleValue, type Sample } from '../support/prometheus.js';

/**
 * A small app with a TCC coordinator and participants on the embedded log
 * and real Postgres, with `metrics: { port: 0 }`: `/readyz` is 503 while it
 * starts (asked from a start hook, before the consumer groups subscribe) and
 * 200 once started; `/metrics`, scraped over real HTTP, carries every
 * metric family of issue 12 with values that follow from what the test did.
 */
@Service('metrics-alpha')
@TccParticipant('metrics-alpha')
class Alpha {
  @Try()
  async try(context: TccContext<{ refuse?: boolean }>): Promise<void> {
    if (context.payload.refuse === true) throw nonRetriable(new Error('alpha says no'));
  }
  @Confirm()
  async confirm(): Promise<void> {}
  @Cancel()
  async cancel(): Promise<void> {}
}

/** Prepares (PREPARE TRANSACTION) and votes yes. */
@Service('metrics-xa')
@XaParticipant('metrics-xa')
class Xa {
  @Prepare()
  async prepare(): Promise<void> {}
}

/** Holds every message of `metrics.slow` until the test opens the gate, so that the group's lag is visible. */
let openGate: () => void = () => {};
const gate = new Promise<void>((resolve) => {
  openGate = resolve;
});
const slowHandled: string[] = [];

@Service('metrics-slow')
class Slow {
  @OnMessage('metrics.slow')
  async handle(context: MessageContext<{ n: number }>): Promise<void> {
    await gate;
    slowHandled.push(String(context.data.n));
  }
}

/** What `/readyz` answered from inside `start()`. */
const duringStart: { status?: number; body?: unknown } = {};

@Service('metrics-probe')
class Probe implements OnApplicationStart {
  async onApplicationStart(app: ConcordatApp): Promise<void> {
    const response = await fetch(`http://127.0.0.1:${app.metricsAddress!.port}/readyz`);
    duringStart.status = response.status;
    duringStart.body = await response.json();
  }
}

describe('app /metrics, /healthz and /readyz (issue 12)', () => {
  let testDb: TestDatabase;
  let db: Database;
  let dir: string;
  let transport: EmbeddedTransport;
  let app: ConcordatApp;
  let base: string;

  beforeAll(async () => {
    testDb = await createTestDatabase('app_metrics');
    db = await openDatabase({ url: testDb.url, poolSize: 8 });
    dir = await mkdtemp(join(tmpdir(), 'concordat-app-metrics-'));
    transport = new EmbeddedTransport({ dataDir: dir });
    const container = new Container();
    container.bind(COORDINATOR_OPTIONS).toConstantValue({ scanIntervalMs: 50, resendIntervalMs: 100, resendIntervalMaxMs: 200 });
    app = ConcordatApp.create({
      name: 'metrics-app',
      services: [TransactionCoordinator, Alpha, Xa, Slow, Probe],
      container,
      database: db,
      transport,
      partitions: 2,
      metrics: { port: 0 },
    });
    expect(app.metricsAddress).toBeUndefined();
    await app.start();
    base = `http://127.0.0.1:${app.metricsAddress!.port}`;
  });
  afterAll(async () => {
    openGate();
    await app?.stop();
    await transport?.close();
    // The 2PC branch left prepared on purpose: a prepared transaction would keep the database from being dropped.
    for (const { gid } of (await db?.dataSource.query(`SELECT gid FROM pg_prepared_xacts WHERE database = current_database()`)) ?? []) {
      await db.dataSource.query(`ROLLBACK PREPARED '${gid}'`);
    }
    await db?.close();
    await testDb?.drop();
    await rm(dir, { recursive: true, force: true });
  });

  async function scrape(): Promise<{ text: string; samples: Sample[] }> {
    const response = await fetch(`${base}/metrics`);
    expect(response.status).toBe(200);
    const text = await response.text();
    return { text, samples: parseMetrics(text) };
  }
  async function waitFor<T>(check: () => Promise<T | undefined>, what: string, timeoutMs = 20_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = await check();
      if (value !== undefined) return value;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }
  const txState = async (id: string): Promise<string> =>
    (await db.dataSource.query(`SELECT state FROM concordat.global_transaction WHERE id = $1`, [id]))[0].state;
  const begin = (branches: string[], payload: object, timeoutMs = 30_000): Promise<string> =>
    app.transaction((context) => beginTcc(context, { name: 'metrics-test', branches: branches.map((participant) => ({ participant, payload })), timeoutMs }));

  it('answers /readyz 503 while starting (naming the app state and the groups without assignment), 200 once started', async () => {
    expect(duringStart.status).toBe(503);
    expect(duringStart.body).toEqual({
      status: 'not ready',
      notReady: {
        app: 'the app is STARTING',
        'consumer-groups':
          "no assignment yet for consumer groups 'concordat-coordinator', 'metrics-alpha', 'metrics-xa', 'metrics-xa.xa-decisions', 'metrics-slow'",
      },
      checks: {
        app: 'the app is STARTING',
        database: 'ok',
        'consumer-groups':
          "no assignment yet for consumer groups 'concordat-coordinator', 'metrics-alpha', 'metrics-xa', 'metrics-xa.xa-decisions', 'metrics-slow'",
        relay: 'ok',
      },
    });
    const ready = await fetch(`${base}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready', notReady: {}, checks: { app: 'ok', database: 'ok', 'consumer-groups': 'ok', relay: 'ok' } });
    const health = await fetch(`${base}/healthz`);
    expect(health.status).toBe(200);
    expect(app.metricsAddress!.host).toBe('127.0.0.1');
  });

  it('counts TCC transactions begun and ended, their duration, the ones in flight, resends, and 2PC branches in doubt', async () => {
    const before = (await scrape()).samples;
    const begunBefore = sampleValue(before, 'concordat_global_transactions_begun_total', { mode: 'TCC' });
    const confirmed = [await begin(['metrics-alpha'], {}), await begin(['metrics-alpha', 'metrics-alpha'], {})];
    const cancelled = await begin(['metrics-alpha'], { refuse: true });
    // A branch whose participant no app runs: cancelled at its deadline, the Cancel resent until the test ends.
    const stuck = await begin(['metrics-alpha', 'metrics-nobody'], {}, 200);
    for (const id of confirmed) await waitFor(async () => ((await txState(id)) === 'CONFIRMED' ? true : undefined), `${id} confirmed`);
    await waitFor(async () => ((await txState(cancelled)) === 'CANCELLED' ? true : undefined), `${cancelled} cancelled`);
    await waitFor(async () => ((await txState(stuck)) === 'CANCELLING' ? true : undefined), `${stuck} cancelling`);
    const { text, samples } = await waitFor(async () => {
      const scraped = await scrape();
      return sampleSum(scraped.samples, 'concordat_global_transaction_resends_total', { mode: 'TCC' }) >= 2 ? scraped : undefined;
    }, 'two resends of the stuck Cancel');

    const types = metricTypes(text);
    expect(types.get('concordat_global_transactions_begun_total')).toBe('counter');
    expect(types.get('concordat_global_transactions_ended_total')).toBe('counter');
    expect(types.get('concordat_global_transaction_duration_seconds')).toBe('histogram');
    expect(types.get('concordat_global_transactions')).toBe('gauge');
    expect(types.get('concordat_global_transaction_resends_total')).toBe('counter');
    expect(types.get('concordat_two_phase_branches_in_doubt')).toBe('gauge');
    expect(sampleValue(samples, 'concordat_global_transactions_begun_total', { mode: 'TCC' }) - begunBefore).toBe(4);
    expect(sampleValue(samples, 'concordat_global_transactions_begun_total', { mode: '2PC' })).toBe(0);
    expect(sampleValue(samples, 'concordat_global_transactions_ended_total', { mode: 'TCC', state: 'CONFIRMED' })).toBe(2);
    expect(sampleValue(samples, 'concordat_global_transactions_ended_total', { mode: 'TCC', state: 'CANCELLED' })).toBe(1);
    expect(sampleValue(samples, 'concordat_global_transaction_duration_seconds_count', { mode: 'TCC', state: 'CONFIRMED' })).toBe(2);
    const seconds = sampleValue(samples, 'concordat_global_transaction_duration_seconds_sum', { mode: 'TCC', state: 'CONFIRMED' });
    expect(seconds).toBeGreaterThan(0);
    expect(seconds).toBeLessThan(2 * 30);
    // In flight now: only the stuck one, CANCELLING.
    expect(sampleValue(samples, 'concordat_global_transactions', { mode: 'TCC', state: 'CANCELLING' })).toBe(1);
    expect(sampleValue(samples, 'concordat_global_transactions', { mode: 'TCC', state: 'TRYING' })).toBe(0);
    expect(sampleValue(samples, 'concordat_two_phase_branches_in_doubt')).toBe(0);
    // Each resend round is a RESENT row of the timeline, committed before it was counted (more may have come since the scrape).
    const [row] = await db.dataSource.query(`SELECT count(*)::int AS n FROM concordat.global_tx_event WHERE kind = 'RESENT'`);
    expect(sampleValue(samples, 'concordat_global_transaction_resends_total', { mode: 'TCC' })).toBeLessThanOrEqual(row.n);
  });

  it('counts a prepared 2PC branch waiting for its decision as in doubt', async () => {
    const before = (await scrape()).samples;
    expect(sampleValue(before, 'concordat_two_phase_branches_in_doubt')).toBe(0);
    // metrics-xa prepares and votes yes; nobody answers for the second branch, so the decision waits (deadline 60 s).
    const id = await app.transaction((context) =>
      beginTwoPhase(context, {
        name: 'metrics-test',
        branches: [
          { participant: 'metrics-xa', payload: {} },
          { participant: 'metrics-nobody-xa', payload: {} },
        ],
        timeoutMs: 60_000,
      }),
    );
    await waitFor(async () => {
      const rows = await db.dataSource.query(`SELECT state FROM concordat.branch WHERE global_tx_id = $1 AND branch_id = 1`, [id]);
      return rows[0]?.state === 'TRIED' ? true : undefined;
    }, 'the first branch prepared');
    const { samples } = await scrape();
    expect(sampleValue(samples, 'concordat_two_phase_branches_in_doubt')).toBe(1);
    expect(sampleValue(samples, 'concordat_global_transactions', { mode: '2PC', state: 'TRYING' })).toBe(1);
    expect(sampleValue(samples, 'concordat_global_transactions_begun_total', { mode: '2PC' })).toBe(1);
    const [prepared] = await db.dataSource.query(`SELECT count(*)::int AS n FROM pg_prepared_xacts WHERE database = current_database()`);
    expect(prepared.n).toBe(1);
  });

  it('gives each group its lag per topic and partition, from the log, while a handler holds the messages and after', async () => {
    const group = app.handlers.consumers.find((consumer) => consumer.handlers.has('metrics.slow'))!.group;
    for (let n = 0; n < 5; n++) await app.publish('metrics.slow', { n }, { key: 'one-key' });
    const partition = transport['logManager']!.partitionFor('metrics.slow', 'one-key');
    const held = await waitFor(async () => {
      const { samples } = await scrape();
      const lag = samples.find(
        (s) => s.name === 'concordat_consumer_lag' && s.labels.group === group && s.labels.topic === 'metrics.slow' && s.labels.partition === String(partition),
      );
      return lag !== undefined && lag.value === 5 ? samples : undefined;
    }, 'a lag of 5 on the held partition');
    expect(sampleValue(held, 'concordat_consumer_lag', { group, topic: 'metrics.slow', partition: String(1 - partition) })).toBe(0);
    // Every group of the app, on every partition of the topics it consumes.
    expect(
      held
        .filter((s) => s.name === 'concordat_consumer_lag' && s.labels.group === 'concordat-coordinator')
        .map((s) => s.labels.partition)
        .sort(),
    ).toEqual(['0', '1']);
    openGate();
    await waitFor(async () => (slowHandled.length === 5 ? true : undefined), 'the five slow messages handled');
    await waitFor(async () => {
      const { samples } = await scrape();
      return sampleValue(samples, 'concordat_consumer_lag', { group, topic: 'metrics.slow', partition: String(partition) }) === 0 ? true : undefined;
    }, 'the lag back to 0 once the offsets are committed');
  });

  it('carries the log, outbox and dispatcher families with plausible values', async () => {
    const { text, samples } = await scrape();
    const partitions = (topic: string) => sampleValue(samples, 'concordat_log_partitions', { topic });
    expect(partitions('metrics.slow')).toBe(2);
    expect(partitions('concordat.tx.replies')).toBe(2);
    expect(sampleValue(samples, 'concordat_log_appended_records_total', { topic: 'metrics.slow' })).toBe(5);
    expect(sampleValue(samples, 'concordat_log_appended_bytes_total', { topic: 'metrics.slow' })).toBeGreaterThan(5 * 10);
    // The coordinator's commands to alpha went through the log (alpha's replies did not: co-located, they commit with alpha's work).
    const commands = samples.filter((s) => s.name === 'concordat_log_appended_records_total' && s.labels.topic!.startsWith('concordat.tcc.metrics-alpha'));
    expect(commands.reduce((sum, s) => sum + s.value, 0)).toBeGreaterThanOrEqual(5);
    expect(sampleValue(samples, 'concordat_log_segments', { topic: 'metrics.slow' })).toBe(2);
    expect(sampleValue(samples, 'concordat_log_size_bytes', { topic: 'metrics.slow' })).toBe(
      sampleValue(samples, 'concordat_log_appended_bytes_total', { topic: 'metrics.slow' }),
    );
    const syncs = sampleValue(samples, 'concordat_log_fsync_duration_seconds_count');
    expect(syncs).toBeGreaterThan(0);
    expect(sampleValue(samples, 'concordat_log_fsync_duration_seconds_sum') / syncs).toBeLessThan(5);
    for (const family of ['concordat_outbox_published_total', 'concordat_messages_total', 'concordat_handler_duration_seconds']) {
      expect(metricTypes(text).has(family), family).toBe(true);
    }
    expect(sampleSum(samples, 'concordat_outbox_published_total')).toBeGreaterThanOrEqual(5);
  });

  it('serves every family the Grafana dashboard charts (the two broker families are served by concordat broker, test/integration/broker/metrics.test.ts)', async () => {
    const dashboard = await readFile(new URL('../../docs/grafana/concordat.json', import.meta.url), 'utf8');
    const charted = new Set([...dashboard.matchAll(/concordat_[a-z_]+/g)].map((m) => m[0].replace(/_(bucket|count|sum)$/, '')));
    const served = metricTypes((await scrape()).text);
    const missing = [...charted].filter((family) => !served.has(family) && !family.startsWith('concordat_broker_'));
    expect(missing).toEqual([]);
    expect([...charted].filter((family) => family.startsWith('concordat_broker_')).sort()).toEqual([
      'concordat_broker_connections',
      'concordat_broker_request_duration_seconds',
    ]);
    expect(charted.size).toBeGreaterThanOrEqual(20);
  });

  it('refuses a metrics port out of range with CONFIG_INVALID naming metrics.port', () => {
    expect(() => ConcordatApp.create({ name: 'bad', services: [Alpha], metrics: { port: 65_536 } })).toThrow(
      /invalid options: metrics\.port: .*65535.*\(got 65536\)/,
    );
  });

  it('closes the endpoint on stop', async () => {
    await app.stop();
    expect(app.metricsAddress).toBeUndefined();
    await expect(fetch(`${base}/healthz`)).rejects.toThrow();
  });
});
