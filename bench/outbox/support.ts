import { readdirSync, readFileSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { ensureDatabase, openDatabase, startEmbeddedPostgres, type Database, type RunningPostgres } from '../../src/persistence/index.js';

/** One line of the results table. */
export interface Row {
  name: string;
  baseline: string;
  measured: string;
  /** measured / baseline as a throughput ratio (higher is better), or null for an absolute bound. */
  ratio: number | null;
  target: string;
  pass: boolean | null;
}

/** Where the benchmarks run: a PostgreSQL server and a scratch directory for logs. */
export interface BenchEnv {
  /** Admin URL of the server (database `postgres` or the one in DATABASE_URL). */
  serverUrl: string;
  dir: string;
  /** CPU time used so far, in µs, by this process and (when it can tell) the PostgreSQL cluster's processes. */
  cpu(): CpuSample;
  /** A fresh database on the server, migrated, with the bench schema. */
  freshDatabase(name: string, poolSize: number): Promise<Database>;
  close(): Promise<void>;
}

/**
 * `DATABASE_URL` when set, otherwise an embedded PostgreSQL in a temporary
 * directory (removed at the end). Databases are created per benchmark.
 */
export async function benchEnv(): Promise<BenchEnv> {
  const dir = await mkdtemp(join(process.env.BENCH_DIR ?? tmpdir(), 'concordat-bench-outbox-'));
  // Run as root, the embedded PostgreSQL runs as `postgres`, which must be able to create its directory here.
  await chmod(dir, 0o777);
  let embedded: RunningPostgres | undefined;
  const serverUrl = process.env.DATABASE_URL ?? (embedded = await startEmbeddedPostgres({ dataDir: join(dir, 'postgres'), maxConnections: 300 })).url;
  const opened: Database[] = [];
  const pgData = process.env.BENCH_PG_DATA ?? (embedded === undefined ? undefined : join(dir, 'postgres'));
  return {
    serverUrl,
    dir,
    cpu: () => ({ nodeUs: nodeCpuUs(), pgUs: pgData === undefined ? undefined : clusterCpuUs(pgData) }),
    async freshDatabase(name, poolSize) {
      const admin = new pg.Client({ connectionString: serverUrl });
      await admin.connect();
      await admin.query(`DROP DATABASE IF EXISTS ${admin.escapeIdentifier(name)} WITH (FORCE)`);
      await admin.end();
      await ensureDatabase(serverUrl, name);
      const url = new URL(serverUrl);
      url.pathname = `/${name}`;
      const db = await openDatabase({ url: url.toString(), poolSize });
      await db.dataSource.query(`
        CREATE SCHEMA bench;
        CREATE TABLE bench.customers (id int PRIMARY KEY, balance bigint NOT NULL);
        INSERT INTO bench.customers SELECT i, 1000000000 FROM generate_series(0, 9999) AS i;
        CREATE TABLE bench.orders (id bigserial PRIMARY KEY, customer int NOT NULL, amount int NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
        CREATE TABLE bench.effects (id bigserial PRIMARY KEY, message_id text NOT NULL, n int NOT NULL);`);
      opened.push(db);
      return db;
    },
    async close() {
      for (const db of opened) await db.close().catch(() => undefined);
      await embedded?.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** CPU used so far: this process, and the PostgreSQL cluster when known (undefined for a remote server). */
export interface CpuSample {
  nodeUs: number;
  pgUs: number | undefined;
}

/** CPU per operation between two samples, in µs: `node + postgres` or `node` alone. */
export function cpuPerOp(before: CpuSample, after: CpuSample, ops: number): { nodeUs: number; pgUs: number | undefined; totalUs: number } {
  const nodeUs = (after.nodeUs - before.nodeUs) / ops;
  const pgUs = before.pgUs === undefined || after.pgUs === undefined ? undefined : (after.pgUs - before.pgUs) / ops;
  return { nodeUs, pgUs, totalUs: nodeUs + (pgUs ?? 0) };
}

/** `node 120 + pg 250 = 370 µs` */
export function cpuText(cpu: { nodeUs: number; pgUs: number | undefined; totalUs: number }): string {
  return cpu.pgUs === undefined ? `node ${n(cpu.nodeUs)} µs` : `node ${n(cpu.nodeUs)} + pg ${n(cpu.pgUs)} = ${n(cpu.totalUs)} µs`;
}

function nodeCpuUs(): number {
  const usage = process.cpuUsage();
  return usage.user + usage.system;
}

/**
 * utime + stime of the postmaster in `dataDir` and its live children, plus
 * the postmaster's cutime + cstime (children that ended: backends of closed
 * connections), from /proc (proc(5); Linux; clock ticks of 10 ms, fine over
 * runs of seconds). A child that ends between reading its own line and the
 * postmaster's may be counted twice or not at all: one backend's time, noise
 * next to a run's total. Measures
 * what the benchmark costs the database whatever else runs on the machine,
 * which wall-clock ratios on a shared 2-core VM do not.
 */
export function clusterCpuUs(dataDir: string): number | undefined {
  try {
    const postmaster = Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    let ticks = 0;
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      let stat: string;
      try {
        stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      } catch {
        continue;
      }
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(entry) === postmaster) {
        // Its own time, and (cutime, cstime) that of the children it has reaped: without those a
        // backend that exits between two samples takes its CPU with it, and a difference can go negative.
        ticks += Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]);
      } else if (Number(fields[1]) === postmaster) {
        ticks += Number(fields[11]) + Number(fields[12]);
      }
    }
    return ticks * 10_000;
  } catch {
    return undefined;
  }
}

/** The value at quantile `q` (0..1) of `values`. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

export function median(values: readonly number[]): number {
  return quantile(values, 0.5);
}

/**
 * Runs `clients` concurrent loops of `op` for `ms`; returns operations per second.
 * Each loop stops starting operations at the deadline and finishes the one in flight.
 */
export async function closedLoop(clients: number, ms: number, op: (client: number) => Promise<void>): Promise<number> {
  return (await closedLoopCounted(clients, ms, op)).rate;
}

/** {@link closedLoop}, also returning how many operations were done. */
export async function closedLoopCounted(clients: number, ms: number, op: (client: number) => Promise<void>): Promise<{ rate: number; ops: number }> {
  const start = performance.now();
  const deadline = start + ms;
  let done = 0;
  await Promise.all(
    Array.from({ length: clients }, async (_, client) => {
      while (performance.now() < deadline) {
        await op(client);
        done++;
      }
    }),
  );
  return { rate: done / ((performance.now() - start) / 1000), ops: done };
}

/** `12345.6` → `12,346`. */
export function n(value: number, digits = 0): string {
  return value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

/** A markdown table of the rows. */
export function table(rows: Row[]): string {
  const lines = ['| benchmark | baseline (same run) | measured | ratio | target | met |', '|---|---|---|---|---|---|'];
  for (const row of rows) {
    const ratio = row.ratio === null ? '—' : `${row.ratio.toFixed(2)}×`;
    const met = row.pass === null ? '—' : row.pass ? 'yes' : 'no';
    lines.push(`| ${row.name} | ${row.baseline} | ${row.measured} | ${ratio} | ${row.target} | ${met} |`);
  }
  return lines.join('\n');
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
