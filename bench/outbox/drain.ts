import { join } from 'node:path';
import type { DataSource } from 'typeorm';
import { OutboxRelay } from '../../src/outbox/index.js';
import { runTransaction } from '../../src/runtime/index.js';
import { EmbeddedTransport } from '../../src/transport/index.js';
import { closedLoop, n, sleep, type BenchEnv, type Row } from './support.js';

const TOPIC = 'orders.placed';

/**
 * 2. Can the relay keep up with the writers?
 *
 * - Capacity: the outbox insert rate of `clients` writers at full speed
 *   (relay off), against the relay's drain rate on a backlog of
 *   `backlogRows` (writers off), through the embedded log with fdatasync.
 * - Sustained: writers at full speed and the relay together for `runMs`;
 *   the backlog is sampled every second. "Flat" means its least-squares
 *   slope over the run stays within 1% of the insert rate.
 */
export async function benchDrain(env: BenchEnv, settings: { clients: number; runMs: number; backlogRows: number }): Promise<Row[]> {
  const db = await env.freshDatabase('bench_drain', settings.clients + 8);
  const transport = new EmbeddedTransport({ dataDir: join(env.dir, 'drain-log') });
  await transport.ensureTopics([{ name: TOPIC, partitions: 8 }]);
  let i = 0;
  const write = (client: number): Promise<void> =>
    runTransaction(db.dataSource, 'bench', async (context) => {
      const customer = (client * 7919 + i++) % 10_000;
      await context.manager.query(`INSERT INTO bench.orders (customer, amount) VALUES ($1, $2)`, [customer, 42]);
      context.publish(TOPIC, { customer, amount: 42, sku: 'sku-1', quantity: 2 }, { key: `customer-${customer}` });
    });
  try {
    // Capacity of the writers alone.
    const insertRate = await closedLoop(settings.clients, Math.min(settings.runMs, 10_000), write);
    await db.dataSource.query(`TRUNCATE concordat.outbox`);

    // Capacity of the relay alone, on a backlog (rows as a writer would have made them).
    await fillBacklog(db.dataSource, settings.backlogRows);
    const relay = new OutboxRelay(db, transport, {});
    const drainStart = performance.now();
    await relay.start();
    while ((await backlog(db.dataSource)) > 0) await sleep(50);
    const drainRate = relay.published / ((performance.now() - drainStart) / 1000);

    // Both at once.
    const samples: Array<{ t: number; rows: number }> = [];
    const publishedBefore = relay.published;
    const start = performance.now();
    let inserted = 0;
    const writers = closedLoop(settings.clients, settings.runMs, async (client) => {
      await write(client);
      inserted++;
    });
    while (performance.now() - start < settings.runMs) {
      await sleep(1000);
      samples.push({ t: (performance.now() - start) / 1000, rows: await backlog(db.dataSource) });
    }
    await writers;
    const seconds = (performance.now() - start) / 1000;
    const sustainedInsert = inserted / seconds;
    const sustainedDrain = (relay.published - publishedBefore) / seconds;
    await relay.stop();
    const slope = leastSquaresSlope(samples);
    const rows = samples.map((s) => s.rows);
    const flat = Math.abs(slope) <= 0.01 * sustainedInsert;
    return [
      {
        name: `relay drain rate (backlog of ${n(settings.backlogRows)}) vs outbox insert rate (${settings.clients} writers)`,
        baseline: `${n(insertRate)} rows/s inserted`,
        measured: `${n(drainRate)} rows/s published and removed`,
        ratio: drainRate / insertRate,
        target: '≥ 1.0×',
        pass: drainRate / insertRate >= 1,
      },
      {
        name: `writers and relay together for ${n(seconds)} s: backlog (sampled each second)`,
        baseline: `${n(sustainedInsert)} rows/s inserted`,
        measured: `${n(sustainedDrain)} rows/s drained; backlog first ${n(rows[0] ?? 0)}, max ${n(Math.max(...rows))}, last ${n(rows.at(-1) ?? 0)}, slope ${n(slope, 1)} rows/s`,
        ratio: sustainedDrain / sustainedInsert,
        target: 'flat (|slope| ≤ 1% of inserts)',
        pass: flat,
      },
    ];
  } finally {
    await transport.close();
  }
}

/** Rows as `writeOutbox` makes them, inserted server-side in bulk. */
async function fillBacklog(dataSource: DataSource, rows: number): Promise<void> {
  await dataSource.query(
    `INSERT INTO concordat.outbox (message_id, topic, partition_key, shard, headers, payload)
     SELECT gen_random_uuid()::text, $1::text, 'customer-' || (i % 10000), (hashint4(i % 10000) & 255),
            jsonb_build_object('ce_specversion', '1.0', 'ce_id', gen_random_uuid()::text, 'ce_type', $1::text, 'ce_source', 'bench', 'content-type', 'application/json'),
            convert_to('{"customer":' || (i % 10000) || ',"amount":42,"sku":"sku-1","quantity":2}', 'UTF8')
       FROM generate_series(1, $2) AS i`,
    [TOPIC, rows],
  );
}

async function backlog(dataSource: DataSource): Promise<number> {
  const [row]: Array<{ n: string }> = await dataSource.query(`SELECT count(*) AS n FROM concordat.outbox`);
  return Number(row?.n ?? 0);
}

function leastSquaresSlope(points: Array<{ t: number; rows: number }>): number {
  if (points.length < 2) return 0;
  const meanT = points.reduce((s, p) => s + p.t, 0) / points.length;
  const meanR = points.reduce((s, p) => s + p.rows, 0) / points.length;
  const num = points.reduce((s, p) => s + (p.t - meanT) * (p.rows - meanR), 0);
  const den = points.reduce((s, p) => s + (p.t - meanT) ** 2, 0);
  return num / den;
}
