import { createServer } from 'node:http2';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { childMain, watchSqlStateClass40, withTimeout, type ChildConfig, type RunningSystem } from './harness.js';
import { orderSaga, type Execute, type Order, type OrderStatus, type Workload } from './workload.js';

/**
 * Restate's row of `bench:peers`: the order saga as a Restate service
 * handler whose steps are `ctx.run` blocks, served by this process over
 * HTTP/2 on loopback and driven by the restate-server the orchestrator started
 * (index.ts), with orders sent through its ingress by the typed client.
 * `ctx.run` is at-least-once (a block that ran but whose result restate-server
 * did not journal runs again), so each block does its step in one database
 * transaction together with an idempotency row keyed by order and step
 * (`peers.step_results`): a second run finds the row, rolls its own work
 * back and returns the first run's result. The SDK, the server and the pool
 * (node-postgres' default of 10 connections) at their defaults.
 */

// The SDK calls Promise.withResolvers, which Node 20 lacks (it came with Node 22): the standard polyfill, before the SDK loads.
const promiseStatics = Promise as unknown as { withResolvers?: unknown };
if (typeof promiseStatics.withResolvers !== 'function') {
  promiseStatics.withResolvers = function withResolvers<T>(): { promise: Promise<T>; resolve: (value: T) => void; reject: (reason?: unknown) => void } {
    let resolve!: (value: T) => void;
    let reject!: (reason?: unknown) => void;
    const promise = new Promise<T>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return { promise, resolve, reject };
  };
}
// Per-invocation INFO lines would cost Restate CPU the other systems do not spend on logs.
process.env.RESTATE_LOGGING ??= 'WARN';
const restate = await import('@restatedev/restate-sdk');
const clients = await import('@restatedev/restate-sdk-clients');

/**
 * Runs `work` and records its result under (order, step) in one
 * transaction; if the row is there already (an earlier run of the same
 * block committed), rolls back and returns the recorded result instead.
 */
async function exactlyOnce<T>(pool: pg.Pool, orderId: string, step: string, work: (execute: Execute) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let open = false;
  try {
    await client.query('BEGIN');
    open = true;
    const result = await work((text, params) => client.query(text, params as unknown[]));
    const recorded = await client.query(`INSERT INTO peers.step_results (order_id, step, result) VALUES ($1, $2, $3) ON CONFLICT (order_id, step) DO NOTHING`, [
      orderId,
      step,
      JSON.stringify(result ?? null),
    ]);
    if (recorded.rowCount === 1) {
      await client.query('COMMIT');
      open = false;
      return result;
    }
    await client.query('ROLLBACK');
    open = false;
    const { rows } = await client.query<{ result: T }>(`SELECT result FROM peers.step_results WHERE order_id = $1 AND step = $2`, [orderId, step]);
    return rows[0]!.result;
  } catch (error) {
    if (open) await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}

function orderService(pool: pg.Pool) {
  return restate.service({
    name: 'orders',
    handlers: {
      async place(ctx: import('@restatedev/restate-sdk').Context, o: Order): Promise<OrderStatus> {
        return orderSaga(o, (name, work) => ctx.run(name, () => exactlyOnce(pool, o.orderId, name, work)));
      },
    },
  });
}

/** Tells restate-server where this process serves the services (its admin API), as `restate deployments register` does. */
async function register(adminUrl: string, endpointUrl: string): Promise<void> {
  const response = await withTimeout(
    fetch(`${adminUrl}/deployments`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ uri: endpointUrl, force: true }),
    }),
    30_000,
    'registering the deployment with restate-server',
  );
  if (!response.ok) throw new Error(`restate-server refused the deployment ${endpointUrl}: ${response.status} ${await response.text()}`);
}

async function start(config: ChildConfig, _workload: Workload): Promise<RunningSystem> {
  if (config.restate === undefined) throw new Error('Restate needs the addresses of restate-server');
  const sqlErrors = watchSqlStateClass40(pg.Client);
  const pool = new pg.Pool({ connectionString: config.databaseUrl });
  const service = orderService(pool);
  // The SDK's own createEndpointHandler on an HTTP/2 server of ours, so that it listens on loopback only.
  const endpoint = createServer(restate.createEndpointHandler({ services: [service] }));
  await new Promise<void>((resolve, reject) => {
    endpoint.once('error', reject);
    endpoint.listen(0, '127.0.0.1', resolve);
  });
  await register(config.restate.adminUrl, `http://127.0.0.1:${(endpoint.address() as AddressInfo).port}`);
  const orders = clients.connect({ url: config.restate.ingressUrl }).serviceClient<typeof service>({ name: 'orders' });
  return {
    async place(o: Order): Promise<void> {
      await orders.place(o);
    },
    counters: () => sqlErrors(),
    async stop() {
      endpoint.close();
      await pool.end();
    },
  };
}

await childMain(start);
