import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { dataFile, runDemo } from '../../examples/order-saga/demo.js';
import { Mode } from '../../examples/order-saga/deployment.js';
import type { ConcordatApp } from '../../src/runtime/index.js';
import { metricTypes, parseMetrics, sampleSum, sampleValue, type Sample } from '../support/prometheus.js';

/**
 * The order demo in process (`npm start -- --metrics-port`), TCC, on the
 * first 30 orders: once every order finished, `/readyz` is 200 and
 * `/metrics`, scraped over real HTTP, carries every family of issue 12 with
 * the figures the run implies (test/e2e/app-metrics.test.ts covers the
 * states a finished demo does not show: in flight, in doubt, resends, lag > 0).
 */
describe('order demo /metrics', () => {
  let dir: string;
  let ordersFile: string;
  const ORDERS = 30;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'concordat-demo-metrics-'));
    const lines = (await readFile(dataFile('orders.csv'), 'utf8'))
      .trim()
      .split('\n')
      .slice(0, ORDERS + 1);
    ordersFile = join(dir, 'orders.csv');
    await writeFile(ordersFile, lines.join('\n') + '\n');
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('carries every metric family with values that follow from the run', async () => {
    let scraped: { text: string; samples: Sample[]; ready: { status: number; body: unknown }; groups: string[] } | undefined;
    let startedAt: { host: string; port: number } | undefined;
    const result = await runDemo({
      mode: Mode.TCC,
      ordersFile,
      productsFile: dataFile('products.csv'),
      accountsFile: dataFile('accounts.csv'),
      dataDir: dir,
      databaseUrl: inject('databaseUrl'),
      databaseName: `order_saga_metrics_${process.pid}`,
      partitions: 4,
      timeoutMs: 120_000,
      inFlightMax: 20,
      metricsPort: 0,
      onStarted: (app) => {
        startedAt = app.metricsAddress;
      },
      beforeStop: async (app: ConcordatApp) => {
        const base = `http://127.0.0.1:${app.metricsAddress!.port}`;
        const ready = await fetch(`${base}/readyz`);
        const text = await (await fetch(`${base}/metrics`)).text();
        scraped = {
          text,
          samples: parseMetrics(text),
          ready: { status: ready.status, body: await ready.json() },
          groups: app.handlers.consumers.map((c) => c.group),
        };
      },
    });
    expect(result.ok).toBe(true);
    expect(startedAt?.host).toBe('127.0.0.1');
    const { text, samples, ready, groups } = scraped!;
    expect(ready).toEqual({
      status: 200,
      body: { status: 'ready', notReady: {}, checks: { app: 'ok', database: 'ok', 'consumer-groups': 'ok', relay: 'ok' } },
    });
    const { confirmed, cancelled } = result.summary;
    expect(confirmed + cancelled).toBe(ORDERS);

    // Coordinator: one TCC global transaction per order, each ended, none in flight.
    expect(sampleValue(samples, 'concordat_global_transactions_begun_total', { mode: 'TCC' })).toBe(ORDERS);
    expect(sampleValue(samples, 'concordat_global_transactions_ended_total', { mode: 'TCC', state: 'CONFIRMED' })).toBe(confirmed);
    expect(sampleSum(samples, 'concordat_global_transactions_ended_total', { mode: 'TCC', state: 'CANCELLED' })).toBe(cancelled);
    expect(sampleSum(samples, 'concordat_global_transaction_duration_seconds_count', { mode: 'TCC' })).toBe(ORDERS);
    const seconds = sampleSum(samples, 'concordat_global_transaction_duration_seconds_sum', { mode: 'TCC' });
    expect(seconds).toBeGreaterThan(0);
    expect(seconds / ORDERS).toBeLessThan(30);
    expect(sampleSum(samples, 'concordat_global_transactions')).toBe(0);
    expect(sampleValue(samples, 'concordat_two_phase_branches_in_doubt')).toBe(0);
    expect(metricTypes(text).get('concordat_global_transaction_resends_total')).toBe('counter');

    // Consumer lag: every group of the demo, on every partition of what it consumes, nothing left.
    const lagged = new Set(samples.filter((s) => s.name === 'concordat_consumer_lag').map((s) => s.labels.group));
    expect([...lagged].sort()).toEqual([...groups].sort());
    expect(sampleSum(samples, 'concordat_consumer_lag')).toBe(0);

    // Log: what the run appended, the syncs it took, what is on disk.
    const appended = sampleSum(samples, 'concordat_log_appended_records_total');
    expect(appended).toBeGreaterThanOrEqual(ORDERS * 3);
    expect(sampleSum(samples, 'concordat_log_appended_bytes_total')).toBeGreaterThan(appended * 50);
    const syncs = sampleValue(samples, 'concordat_log_fsync_duration_seconds_count');
    expect(syncs).toBeGreaterThan(0);
    expect(syncs).toBeLessThanOrEqual(appended);
    expect(sampleValue(samples, 'concordat_log_fsync_duration_seconds_sum') / syncs).toBeLessThan(5);
    const topics = samples.filter((s) => s.name === 'concordat_log_partitions');
    expect(topics.length).toBeGreaterThan(3);
    for (const topic of topics) expect(topic.value, topic.labels.topic).toBe(4);
    expect(sampleSum(samples, 'concordat_log_segments')).toBeGreaterThanOrEqual(topics.length * 4);
    expect(sampleSum(samples, 'concordat_log_size_bytes')).toBe(sampleSum(samples, 'concordat_log_appended_bytes_total'));

    // Outbox and dispatcher.
    expect(sampleSum(samples, 'concordat_outbox_published_total')).toBe(appended);
    expect(sampleSum(samples, 'concordat_messages_total', { outcome: 'processed' })).toBeGreaterThanOrEqual(ORDERS * 3);
    expect(metricTypes(text).get('concordat_handler_duration_seconds')).toBe('histogram');
  });
});
