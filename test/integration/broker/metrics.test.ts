import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Kafka, logLevel } from 'kafkajs';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBroker } from '../../../src/broker/index.js';
import { metricTypes, parseMetrics, sampleSum, sampleValue } from '../../support/prometheus.js';

/**
 * The broker's `/metrics`, `/healthz` and `/readyz`, scraped over real HTTP
 * while kafkajs produces over real TCP; and `concordat broker --metrics-port`
 * as a process.
 */
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';
const MAIN = fileURLToPath(new URL('../../../src/cli/main.ts', import.meta.url));

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'concordat-broker-metrics-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('broker metrics endpoint', () => {
  it('serves request latency per API key, connections and the log metrics; ready while serving, gone once closed', async () => {
    const registry = new Registry();
    const broker = await startBroker({ dataDir: join(dir, 'in-process'), port: 0, metrics: { port: 0, registry } });
    const kafka = new Kafka({ brokers: [broker.bootstrap], clientId: 'metrics-test', logLevel: logLevel.NOTHING });
    const admin = kafka.admin();
    const producer = kafka.producer();
    let base = '';
    try {
      const address = broker.metricsAddress!;
      expect(address.host).toBe('127.0.0.1');
      base = `http://127.0.0.1:${address.port}`;
      await admin.connect();
      await admin.createTopics({ topics: [{ topic: 'metrics.orders', numPartitions: 2 }] });
      await producer.connect();
      for (let i = 0; i < 4; i++) {
        await producer.send({
          topic: 'metrics.orders',
          messages: [
            { key: `k${i}`, value: 'x'.repeat(100) },
            { key: `k${i}`, value: 'y'.repeat(100) },
          ],
        });
      }

      const response = await fetch(`${base}/metrics`);
      expect(response.status).toBe(200);
      const text = await response.text();
      const samples = parseMetrics(text);
      expect(metricTypes(text).get('concordat_broker_request_duration_seconds')).toBe('histogram');
      // Produce (API key 0): one request per send, each answered after its fdatasync.
      const produces = sampleValue(samples, 'concordat_broker_request_duration_seconds_count', { api_key: '0', api: 'Produce' });
      expect(produces).toBe(4);
      const produceSeconds = sampleValue(samples, 'concordat_broker_request_duration_seconds_sum', { api_key: '0' });
      expect(produceSeconds).toBeGreaterThan(0);
      expect(produceSeconds).toBeLessThan(4 * 5);
      expect(sampleValue(samples, 'concordat_broker_request_duration_seconds_count', { api_key: '18', api: 'ApiVersions' })).toBeGreaterThanOrEqual(2);
      expect(sampleValue(samples, 'concordat_broker_request_duration_seconds_count', { api_key: '19', api: 'CreateTopics' })).toBe(1);
      // The admin and the producer hold their connections (the admin's bootstrap one may be closed already).
      expect(sampleValue(samples, 'concordat_broker_connections')).toBe(broker.connectionCount);
      expect(broker.connectionCount).toBeGreaterThanOrEqual(2);
      expect(sampleValue(samples, 'concordat_log_appended_records_total', { topic: 'metrics.orders' })).toBe(8);
      expect(sampleValue(samples, 'concordat_log_appended_bytes_total', { topic: 'metrics.orders' })).toBeGreaterThan(8 * 100);
      expect(sampleValue(samples, 'concordat_log_partitions', { topic: 'metrics.orders' })).toBe(2);
      expect(sampleValue(samples, 'concordat_log_segments', { topic: 'metrics.orders' })).toBe(2);
      const describedBytes = broker.logManager.describeTopic('metrics.orders').partitions.reduce((sum, p) => sum + p.sizeBytes, 0);
      expect(sampleValue(samples, 'concordat_log_size_bytes', { topic: 'metrics.orders' })).toBe(describedBytes);
      expect(sampleValue(samples, 'concordat_log_fsync_duration_seconds_count')).toBeGreaterThanOrEqual(4);
      expect(sampleSum(samples, 'concordat_log_fsync_duration_seconds_sum')).toBeGreaterThan(0);

      const ready = await fetch(`${base}/readyz`);
      expect(ready.status).toBe(200);
      expect(await ready.json()).toEqual({ status: 'ready', notReady: {}, checks: { log: 'ok', listener: 'ok' } });
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
    } finally {
      await producer.disconnect();
      await admin.disconnect();
      await broker.close();
    }
    await expect(fetch(`${base}/healthz`)).rejects.toThrow();
  });

  it('refuses a metrics port out of range with CONFIG_INVALID naming broker.metrics.port', async () => {
    await expect(startBroker({ dataDir: join(dir, 'bad'), port: 0, metrics: { port: 70_000 } })).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
      message: expect.stringMatching(/broker\.metrics\.port: .*65535.*\(got 70000\)/),
    });
  });

  it('concordat broker --metrics-port serves them from the process, ready until SIGTERM', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, 'broker', '--data', join(dir, 'cli'), '--port', '0', '--metrics-port', '0'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      const base = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no metrics line within 20 s')), 20_000);
        createInterface({ input: child.stdout! }).on('line', (line) => {
          const match = /^concordat broker metrics on (http:\/\/127\.0\.0\.1:\d+)\/metrics \(\/healthz, \/readyz\)$/.exec(line);
          if (match === null) return;
          clearTimeout(timer);
          resolve(match[1]!);
        });
        void exited.then((code) => reject(new Error(`broker exited ${code}`)));
      });
      const ready = await fetch(`${base}/readyz`);
      expect(ready.status).toBe(200);
      expect(await ready.json()).toMatchObject({ status: 'ready', checks: { log: 'ok', listener: 'ok' } });
      const samples = parseMetrics(await (await fetch(`${base}/metrics`)).text());
      expect(sampleValue(samples, 'concordat_broker_connections')).toBe(0);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  });
});
