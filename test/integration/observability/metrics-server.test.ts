import { Counter, Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { compileMetricsOptions } from '../../../src/config/index.js';
import { ConcordatError } from '../../../src/errors.js';
import { MetricsServer } from '../../../src/observability/index.js';

/** The endpoints over real HTTP on a port the OS picked. */
describe('MetricsServer', () => {
  const servers: MetricsServer[] = [];
  afterEach(async () => {
    for (const server of servers.splice(0)) await server.close();
  });

  async function start(checks: Parameters<typeof MetricsServer.start>[1], registry = new Registry(), readyTimeoutMs = 2000): Promise<string> {
    const server = await MetricsServer.start(compileMetricsOptions({ port: 0, registry, readyTimeoutMs }), checks, 'test');
    servers.push(server);
    expect(server.address.host).toBe('127.0.0.1');
    expect(server.address.port).toBeGreaterThan(0);
    return `http://127.0.0.1:${server.address.port}`;
  }

  it('serves the registry as Prometheus text, /healthz, and 404 elsewhere', async () => {
    const registry = new Registry();
    const counter = new Counter({ name: 'test_things_total', help: 'Things', labelNames: ['kind'], registers: [registry] });
    counter.inc({ kind: 'a' }, 3);
    const base = await start({}, registry);
    const metrics = await fetch(`${base}/metrics`);
    expect(metrics.status).toBe(200);
    expect(metrics.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(await metrics.text()).toContain('test_things_total{kind="a"} 3');
    const health = await fetch(`${base}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });
    const other = await fetch(`${base}/nope`);
    expect(other.status).toBe(404);
    const post = await fetch(`${base}/metrics`, { method: 'POST' });
    expect(post.status).toBe(405);
  });

  it('answers /readyz 503 naming what is not ready (a failed check, a throw, a timeout), 200 once all hold', async () => {
    let groupReady = false;
    const base = await start(
      {
        database: () => null,
        'consumer-groups': () => (groupReady ? null : "consumer group 'orders' has no assignment yet"),
        slow: (signal) => new Promise((resolve) => (groupReady ? resolve(null) : signal.addEventListener('abort', () => resolve('aborted')))),
        broken: () => {
          if (!groupReady) throw new Error('connection refused');
          return null;
        },
      },
      new Registry(),
      100,
    );
    const before = await fetch(`${base}/readyz`);
    expect(before.status).toBe(503);
    expect(await before.json()).toEqual({
      status: 'not ready',
      notReady: { 'consumer-groups': "consumer group 'orders' has no assignment yet", slow: 'no answer within 100 ms', broken: 'Error: connection refused' },
      checks: {
        database: 'ok',
        'consumer-groups': "consumer group 'orders' has no assignment yet",
        slow: 'no answer within 100 ms',
        broken: 'Error: connection refused',
      },
    });
    groupReady = true;
    const after = await fetch(`${base}/readyz`);
    expect(after.status).toBe(200);
    expect(await after.json()).toEqual({ status: 'ready', notReady: {}, checks: { database: 'ok', 'consumer-groups': 'ok', slow: 'ok', broken: 'ok' } });
  });

  it('stops answering once closed', async () => {
    const base = await start({});
    await servers.pop()!.close();
    await expect(fetch(`${base}/healthz`)).rejects.toThrow();
  });

  it('refuses a port out of range with CONFIG_INVALID naming the option', () => {
    expect(() => compileMetricsOptions({ port: 70_000 })).toThrow(ConcordatError);
    expect(() => compileMetricsOptions({ port: 70_000 })).toThrow(/metrics\.port: .*65535.* \(got 70000\)/);
    try {
      compileMetricsOptions({ port: -1 });
    } catch (error) {
      expect((error as ConcordatError).code).toBe('CONFIG_INVALID');
    }
    expect(() => compileMetricsOptions({ registry: {} as never })).toThrow(/metrics\.registry: must be a prom-client Registry/);
  });

  it('refuses an address in use with CONFIG_INVALID naming it', async () => {
    const base = await start({});
    const port = Number(new URL(base).port);
    await expect(MetricsServer.start(compileMetricsOptions({ port }), {}, 'test')).rejects.toThrow(
      new RegExp(`cannot serve metrics on 127\\.0\\.0\\.1:${port}: .*EADDRINUSE`),
    );
  });
});
