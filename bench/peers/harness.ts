import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import type { Order, SystemName, Workload } from './workload.js';

/**
 * The part of a system's process that is the same for every system: it
 * reads what the orchestrator (index.ts) passed, runs the three phases over
 * the system's `place` function and sends the figures back over the IPC
 * channel. Imports no database driver and nothing of Concordat's, so the
 * DBOS and Restate processes load only their own code.
 *
 * Protocol (child → parent over `process.send`):
 *   { kind: 'mark', label }   the parent samples the CPU of PostgreSQL and
 *                             restate-server, then answers { kind: 'marked', label }
 *   { kind: 'result', result } once, at the end
 *   { kind: 'error', message } instead of a result
 */

/** What the orchestrator passes to a system's process (JSON in BENCH_PEERS_CONFIG). */
export interface ChildConfig {
  system: SystemName;
  /** The system's own database on the shared server. */
  databaseUrl: string;
  /** DBOS only: its system database, on the same server. */
  systemDatabaseUrl?: string;
  /** The workload JSON file (see workload.ts). */
  workloadFile: string;
  /** A scratch directory of this system's own (Concordat's embedded log). */
  workDir: string;
  inFlight: number;
  /** Give up on an order after this long, in ms. */
  orderTimeoutMs: number;
  /** Restate only: where restate-server listens. */
  restate?: { ingressUrl: string; adminUrl: string };
}

/** CPU the parent read at a mark, in µs; undefined where it cannot tell (a remote PostgreSQL). */
export interface ServerCpu {
  pgUs: number | undefined;
  serverUs: number | undefined;
}

export interface PhaseResult {
  orders: number;
  elapsedMs: number;
  p50Ms: number;
  p99Ms: number;
}

export interface ChildResult {
  warmup: PhaseResult;
  idle: PhaseResult;
  throughput: PhaseResult & { nodeCpuUs: number };
  /** Counters the system's process kept over the whole run (SQLSTATE class 40 errors, dispatcher stats…). */
  counters: Record<string, number>;
}

export type ChildMessage = { kind: 'mark'; label: string } | { kind: 'result'; result: ChildResult } | { kind: 'error'; message: string };
export type ParentMessage = { kind: 'marked'; label: string };

/** Marks around the throughput phase, where the parent samples server CPU. */
export const MARK = { THROUGHPUT_START: 'throughput-start', THROUGHPUT_END: 'throughput-end' } as const;

/** A system under test, started. */
export interface RunningSystem {
  /** Places one order; resolves once its final status (CONFIRMED or CANCELLED) is committed. */
  place(order: Order): Promise<void>;
  /** Counters to report, read after the last phase. */
  counters?(): Record<string, number> | Promise<Record<string, number>>;
  stop(): Promise<void>;
}

export function childConfig(): ChildConfig {
  const text = process.env.BENCH_PEERS_CONFIG;
  if (text === undefined) throw new Error('BENCH_PEERS_CONFIG is not set: run this file through bench/peers/index.ts (npm run bench:peers)');
  return JSON.parse(text) as ChildConfig;
}

/**
 * The body of every system's process: starts the system, runs the phases,
 * sends the result, stops the system, and exits (0, or 1 after sending the
 * error). Never returns.
 */
export async function childMain(start: (config: ChildConfig, workload: Workload) => Promise<RunningSystem>): Promise<never> {
  let code = 0;
  let system: RunningSystem | undefined;
  try {
    if (process.send === undefined) throw new Error('no IPC channel: run this file through bench/peers/index.ts (npm run bench:peers)');
    const config = childConfig();
    const workload = JSON.parse(readFileSync(config.workloadFile, 'utf8')) as Workload;
    system = await start(config, workload);
    const result = await runPhases(config, workload, system);
    send({ kind: 'result', result });
  } catch (error) {
    code = 1;
    const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
    if (process.send !== undefined) send({ kind: 'error', message });
    else console.error(message);
  }
  try {
    await withTimeout(system?.stop() ?? Promise.resolve(), 30_000, 'stopping the system');
  } catch (error) {
    console.error(`stopping failed: ${error instanceof Error ? error.message : String(error)}`);
  }
  // Explicitly: some libraries install exit hooks or keep handles open.
  process.exit(code);
}

async function runPhases(config: ChildConfig, workload: Workload, system: RunningSystem): Promise<ChildResult> {
  const { warmup, idle, throughput } = workload.phases;
  const orders = workload.orders;
  const place = (order: Order): Promise<void> => withTimeout(system.place(order), config.orderTimeoutMs, `order ${order.orderId} (${config.system})`);
  const warm = await inFlight(orders.slice(0, warmup), config.inFlight, place);
  const alone = await inFlight(orders.slice(warmup, warmup + idle), 1, place);
  await mark(MARK.THROUGHPUT_START);
  const cpuFrom = process.cpuUsage();
  const hot = await inFlight(orders.slice(warmup + idle, warmup + idle + throughput), config.inFlight, place);
  const cpu = process.cpuUsage(cpuFrom);
  await mark(MARK.THROUGHPUT_END);
  const counters = (await system.counters?.()) ?? {};
  return { warmup: warm, idle: alone, throughput: { ...hot, nodeCpuUs: cpu.user + cpu.system }, counters };
}

/**
 * Places `orders` with at most `limit` in flight (a new one as soon as one
 * ends), in list order. Latency of an order: from the call to `place` to
 * its promise resolving.
 */
async function inFlight(orders: readonly Order[], limit: number, place: (order: Order) => Promise<void>): Promise<PhaseResult> {
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  const worker = async (): Promise<void> => {
    while (next < orders.length) {
      const order = orders[next++]!;
      const t0 = performance.now();
      await place(order);
      latencies.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, orders.length) }, worker));
  const elapsedMs = performance.now() - started;
  latencies.sort((a, b) => a - b);
  const at = (q: number): number => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN;
  return { orders: latencies.length, elapsedMs, p50Ms: at(0.5), p99Ms: at(0.99) };
}

function send(message: ChildMessage): void {
  process.send!(message);
}

/** Asks the parent to sample server CPU now and waits for it (10 s at most). */
async function mark(label: string): Promise<void> {
  const answered = new Promise<void>((resolve) => {
    const listener = (message: ParentMessage): void => {
      if (message.kind !== 'marked' || message.label !== label) return;
      process.off('message', listener);
      resolve();
    };
    process.on('message', listener);
  });
  send({ kind: 'mark', label });
  await withTimeout(answered, 10_000, `the orchestrator's answer to mark ${label}`);
}

/** `promise`, or a rejection naming `what` after `ms`. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Counts the errors of SQLSTATE class 40 (40P01 deadlock detected, 40001
 * serialization failure) that PostgreSQL returned to `Client` — node-postgres'
 * client class, whichever copy the system loaded — by wrapping its `query`.
 * Every such error aborted a transaction that the system then ran again
 * (a dispatcher retry or batch split, a DBOS transaction retry, a Restate
 * `ctx.run` retry) or gave up on: these are the "deadlock retries".
 * @returns the counts so far, keyed `sqlstate_<code>`
 */
export function watchSqlStateClass40(Client: { prototype: object }): () => Record<string, number> {
  const counts: Record<string, number> = {};
  const observe = (error: unknown): void => {
    const code = (error as { code?: unknown } | null)?.code;
    if (typeof code === 'string' && code.startsWith('40')) counts[`sqlstate_${code}`] = (counts[`sqlstate_${code}`] ?? 0) + 1;
  };
  const proto = Client.prototype as { query: (...args: unknown[]) => unknown };
  const original = proto.query;
  proto.query = function query(this: unknown, ...args: unknown[]): unknown {
    const last = args.length - 1;
    const callback = args[last];
    if (typeof callback === 'function') {
      args[last] = (error: unknown, result: unknown) => {
        if (error) observe(error);
        return (callback as (error: unknown, result: unknown) => unknown)(error, result);
      };
      return original.apply(this, args);
    }
    const result = original.apply(this, args);
    if (result instanceof Promise) result.catch(observe);
    return result;
  };
  return () => ({ ...counts });
}

/** Sum of the class 40 counts (see {@link watchSqlStateClass40}). */
export function class40Total(counts: Record<string, number>): number {
  return Object.entries(counts)
    .filter(([key]) => key.startsWith('sqlstate_40'))
    .reduce((sum, [, n]) => sum + n, 0);
}
