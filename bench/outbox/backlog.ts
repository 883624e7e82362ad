import 'reflect-metadata';
import pg from 'pg';
import { benchEnv, n, quantile, sleep } from './support.js';

/**
 * `npm run bench:outbox:backlog [-- --rows=10000000] [-- --seconds=120]`:
 * how published outbox rows should be removed when the backlog is huge
 * (docs/outbox.md, "Removing published rows").
 *
 * Two tables with the outbox's columns, each filled with `rows` unpublished
 * rows; then, for `seconds`, 8 writers insert (one row per transaction)
 * while 4 drainers read batches of 500 the way relay lanes do (256 shards
 * split over the 4), "publishing" nothing, so that only the database is
 * measured:
 *
 * A. **batched delete** (what the relay does): each statement deletes the
 *    previous batch and reads the next, `DELETE ... WHERE seq = ANY(...)`.
 * B. **partition drop**: the table is partitioned by `seq` ranges of
 *    `partitionRows`; drainers keep a per-shard cursor instead of deleting
 *    (`seq > cursor`), and a dropper removes every partition all cursors
 *    have passed, with `DETACH PARTITION ... CONCURRENTLY` then `DROP TABLE`.
 *
 * `--only=A` or `--only=B` runs one strategy.
 *
 * Reported per strategy: drain rate, writer throughput and latency
 * (p50/p99/max), read-statement latency, WAL bytes per drained row, dead
 * tuples left, and (B) the time partitions took to detach and drop.
 */
process.env.CONCORDAT_LOG_LEVEL ??= 'warn';
const arg = (name: string, fallback: number): number => Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? fallback);
const rows = arg('rows', 10_000_000);
const seconds = arg('seconds', 120);
const partitionRows = arg('partition-rows', 500_000);
const only = process.argv.find((a) => a.startsWith('--only='))?.split('=')[1];
const LANES = 4;
const WRITERS = 8;
const BATCH = 500;

const env = await benchEnv();
const db = await env.freshDatabase('bench_backlog', WRITERS + LANES + 4);
const url = new URL(env.serverUrl);
url.pathname = '/bench_backlog';
const connect = async (): Promise<pg.Client> => {
  const client = new pg.Client({ connectionString: url.toString() });
  await client.connect();
  return client;
};
const admin = await connect();
console.log(
  `outbox backlog: ${n(rows)} rows, ${seconds} s per strategy, ${WRITERS} writers, ${LANES} drainers of ${BATCH}, partitions of ${n(partitionRows)} rows`,
);

const COLUMNS = `message_id text NOT NULL, topic text NOT NULL, partition_key text, shard smallint NOT NULL,
  headers jsonb NOT NULL, payload bytea, created_at timestamptz NOT NULL DEFAULT now()`;
const ROW = (i: string): string =>
  `gen_random_uuid()::text, 'orders.placed', 'customer-' || (${i} % 100000), (hashint4((${i} % 100000)::int) & 255),
   jsonb_build_object('ce_specversion', '1.0', 'ce_id', gen_random_uuid()::text, 'ce_type', 'orders.placed', 'ce_source', 'bench',
     'ce_time', now()::text, 'content-type', 'application/json', 'ce_partitionkey', 'customer-' || (${i} % 100000)),
   convert_to('{"orderId":"' || ${i} || '","customer":' || (${i} % 100000) || ',"amount":42,"sku":"sku-1","quantity":2}', 'UTF8')`;
const QUEUE_SETTINGS = `(autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 10000,
  autovacuum_vacuum_insert_scale_factor = 0, autovacuum_vacuum_insert_threshold = 100000, autovacuum_vacuum_cost_delay = 0)`;

async function fill(table: string): Promise<number> {
  const start = performance.now();
  for (let from = 1; from <= rows; from += 1_000_000) {
    const to = Math.min(rows, from + 999_999);
    await admin.query(
      `INSERT INTO ${table} (message_id, topic, partition_key, shard, headers, payload) SELECT ${ROW('i')} FROM generate_series(${from}, ${to}) AS i`,
    );
    process.stdout.write(`    ${table}: ${n(to)} rows\r`);
  }
  await admin.query(`VACUUM ANALYZE ${table}`);
  process.stdout.write('\n');
  return (performance.now() - start) / 1000;
}

interface Phase {
  drained: number;
  writes: number[];
  reads: number[];
  stop: boolean;
}

/** 8 writers inserting one row per transaction until `phase.stop`. */
function writers(table: string, phase: Phase): Promise<void>[] {
  return Array.from({ length: WRITERS }, async (_, w) => {
    const client = await connect();
    let i = 0;
    try {
      while (!phase.stop) {
        const started = performance.now();
        await client.query('BEGIN');
        await client.query(`INSERT INTO ${table} (message_id, topic, partition_key, shard, headers, payload) SELECT ${ROW(`${w * 1_000_000_000 + i++}`)}`);
        await client.query('COMMIT');
        phase.writes.push(performance.now() - started);
      }
    } finally {
      await client.end();
    }
  });
}

/** The largest value (0 for none); `Math.max(...values)` overflows the stack past ~100k values. */
const maxOf = (values: readonly number[]): number => values.reduce((a, b) => (b > a ? b : a), 0);

const shardsOfLane = (lane: number): number[] => Array.from({ length: 256 }, (_, s) => s).filter((s) => s % LANES === lane);

/** A: the relay's own statement, minus the publish. */
function deleteDrainers(phase: Phase): Promise<void>[] {
  return Array.from({ length: LANES }, async (_, lane) => {
    const client = await connect();
    const shards = shardsOfLane(lane);
    let previous: string[] = [];
    let rotation = 0;
    try {
      while (!phase.stop) {
        const rotated = [...shards.slice(rotation % shards.length), ...shards.slice(0, rotation % shards.length)];
        rotation++;
        const started = performance.now();
        const result = await client.query(
          `WITH gone AS (DELETE FROM a_outbox WHERE seq = ANY($3::bigint[]))
           SELECT o.seq FROM unnest($1::smallint[]) AS s(shard)
            CROSS JOIN LATERAL (SELECT seq FROM a_outbox WHERE shard = s.shard AND seq <> ALL($3::bigint[]) ORDER BY seq LIMIT $2) AS o
            LIMIT $2`,
          [rotated, BATCH, previous],
        );
        phase.reads.push(performance.now() - started);
        phase.drained += previous.length;
        previous = result.rows.map((row: { seq: string }) => row.seq);
      }
    } finally {
      await client.end();
    }
  });
}

/** B: per-shard cursors, no deletes. */
function cursorDrainers(phase: Phase, cursors: bigint[]): Promise<void>[] {
  return Array.from({ length: LANES }, async (_, lane) => {
    const client = await connect();
    const shards = shardsOfLane(lane);
    let rotation = 0;
    try {
      while (!phase.stop) {
        const rotated = [...shards.slice(rotation % shards.length), ...shards.slice(0, rotation % shards.length)];
        rotation++;
        const started = performance.now();
        const result = await client.query(
          `SELECT o.shard, o.seq FROM unnest($1::smallint[], $3::bigint[]) AS s(shard, after)
            CROSS JOIN LATERAL (SELECT shard, seq FROM b_outbox WHERE shard = s.shard AND seq > s.after ORDER BY seq LIMIT $2) AS o
            LIMIT $2`,
          [rotated, BATCH, rotated.map((s) => cursors[s]!.toString())],
        );
        phase.reads.push(performance.now() - started);
        for (const row of result.rows as Array<{ shard: number; seq: string }>) {
          const seq = BigInt(row.seq);
          if (seq > cursors[row.shard]!) cursors[row.shard] = seq;
        }
        phase.drained += result.rows.length;
      }
    } finally {
      await client.end();
    }
  });
}

/** B: drops every partition whose rows all lie below every shard's cursor. */
async function dropper(phase: Phase, cursors: bigint[], dropped: Array<{ name: string; detachMs: number; dropMs: number }>): Promise<void> {
  const client = await connect();
  try {
    while (!phase.stop) {
      await sleep(1000);
      const low = cursors.reduce((a, b) => (a < b ? a : b));
      const parts: Array<{ name: string; upper: string }> = (
        await client.query(
          `SELECT c.relname AS name, (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \\(''?(\\d+)''?\\)'))[1] AS upper
             FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'b_outbox'::regclass ORDER BY 2::bigint`,
        )
      ).rows;
      for (const part of parts) {
        if (BigInt(part.upper) - 1n > low || phase.stop) break;
        const t0 = performance.now();
        await client.query(`ALTER TABLE b_outbox DETACH PARTITION ${part.name} CONCURRENTLY`);
        const t1 = performance.now();
        await client.query(`DROP TABLE ${part.name}`);
        dropped.push({ name: part.name, detachMs: t1 - t0, dropMs: performance.now() - t1 });
      }
    }
  } finally {
    await client.end();
  }
}

async function walLsn(): Promise<bigint> {
  const {
    rows: [row],
  } = await admin.query(`SELECT pg_current_wal_lsn() - '0/0'::pg_lsn AS bytes`);
  return BigInt(row.bytes);
}

async function run(label: string, start: (phase: Phase) => Promise<void>[], deadTable: string): Promise<Record<string, string>> {
  const phase: Phase = { drained: 0, writes: [], reads: [], stop: false };
  const wal0 = await walLsn();
  const t0 = performance.now();
  const tasks = start(phase);
  await sleep(seconds * 1000);
  phase.stop = true;
  await Promise.all(tasks);
  const elapsed = (performance.now() - t0) / 1000;
  const wal = Number((await walLsn()) - wal0);
  const {
    rows: [dead],
  } = await admin.query(
    `SELECT coalesce(sum(n_dead_tup), 0)::bigint AS dead, coalesce(sum(n_live_tup), 0)::bigint AS live FROM pg_stat_user_tables WHERE relname LIKE $1`,
    [`${deadTable}%`],
  );
  const result = {
    strategy: label,
    'drained rows/s': n(phase.drained / elapsed),
    'writer tx/s': n(phase.writes.length / elapsed),
    'writer p50/p99/max ms': `${n(quantile(phase.writes, 0.5), 1)} / ${n(quantile(phase.writes, 0.99), 1)} / ${n(maxOf(phase.writes), 1)}`,
    'read p50/p99/max ms': `${n(quantile(phase.reads, 0.5), 1)} / ${n(quantile(phase.reads, 0.99), 1)} / ${n(maxOf(phase.reads), 1)}`,
    'WAL bytes per row (drained + written)': n(wal / (phase.drained + phase.writes.length)),
    'dead tuples at the end': n(Number(dead.dead)),
  };
  console.log(result);
  return result;
}

try {
  const results: Array<Record<string, string>> = [];
  // A: the outbox as migrated (seq primary key, (shard, seq) index), rows deleted per batch.
  if (only === undefined || only === 'A') {
    await admin.query(`CREATE TABLE a_outbox (seq bigserial PRIMARY KEY, ${COLUMNS}) WITH ${QUEUE_SETTINGS}`);
    await admin.query(`CREATE INDEX a_outbox_shard_seq ON a_outbox (shard, seq)`);
    console.log(`  filled A in ${n(await fill('a_outbox'))} s`);
    results.push(await run('A. batched delete', (phase) => [...writers('a_outbox', phase), ...deleteDrainers(phase)], 'a_outbox'));
    await admin.query(`DROP TABLE a_outbox`);
  }

  // B: partitioned by seq range; published rows are left in place and whole partitions dropped.
  if (only === undefined || only === 'B') {
    await admin.query(`CREATE SEQUENCE b_outbox_seq`);
    await admin.query(
      `CREATE TABLE b_outbox (seq bigint NOT NULL DEFAULT nextval('b_outbox_seq'), ${COLUMNS}, PRIMARY KEY (shard, seq)) PARTITION BY RANGE (seq)`,
    );
    const partitions = Math.ceil((rows * 1.5 + 5_000_000) / partitionRows);
    for (let p = 0; p < partitions; p++) {
      await admin.query(
        `CREATE TABLE b_outbox_${p} PARTITION OF b_outbox FOR VALUES FROM (${p * partitionRows + 1}) TO (${(p + 1) * partitionRows + 1}) WITH ${QUEUE_SETTINGS}`,
      );
    }
    console.log(`  filled B in ${n(await fill('b_outbox'))} s`);
    const cursors = Array.from({ length: 256 }, () => 0n);
    const dropped: Array<{ name: string; detachMs: number; dropMs: number }> = [];
    results.push(
      await run(
        'B. partition drop',
        (phase) => [...writers('b_outbox', phase), ...cursorDrainers(phase, cursors), dropper(phase, cursors, dropped)],
        'b_outbox',
      ),
    );
    const detach = dropped.map((d) => d.detachMs);
    const drop = dropped.map((d) => d.dropMs);
    console.log(
      `  B dropped ${dropped.length} partitions of ${n(partitionRows)} rows: detach p50 ${n(quantile(detach, 0.5), 1)} ms, max ${n(maxOf(detach), 1)} ms; drop p50 ${n(quantile(drop, 0.5), 1)} ms, max ${n(maxOf(drop), 1)} ms`,
    );
  }
  console.log('\n| | ' + Object.keys(results[0]!).slice(1).join(' | ') + ' |');
  console.log(
    '|---|' +
      Object.keys(results[0]!)
        .slice(1)
        .map(() => '---')
        .join('|') +
      '|',
  );
  for (const r of results) console.log(`| ${r.strategy} | ${Object.values(r).slice(1).join(' | ')} |`);
} finally {
  await admin.end();
  await db.close();
  await env.close();
}
process.exit(0);
