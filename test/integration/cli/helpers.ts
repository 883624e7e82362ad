import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('../../../src/cli/main.ts', import.meta.url));
// By path: a command may run with a temporary directory as its cwd, where `--import tsx` would not resolve.
const TSX = fileURLToPath(new URL('../../../node_modules/tsx/dist/loader.mjs', import.meta.url));
// tsx looks for tsconfig.json from the cwd; Concordat's source needs its decorator settings.
const TSCONFIG = fileURLToPath(new URL('../../../tsconfig.json', import.meta.url));

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function env(extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const base: NodeJS.ProcessEnv = { ...process.env, CONCORDAT_LOG_LEVEL: 'silent', TSX_TSCONFIG_PATH: TSCONFIG };
  // Never the test run's: each command names its database and brokers.
  delete base.DATABASE_URL;
  delete base.KAFKA_BROKERS;
  return { ...base, ...extra };
}

/** Runs `concordat <args>` to its end. */
export function cli(args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', TSX, MAIN, ...args], {
      env: env(options.env ?? {}),
      ...(options.cwd !== undefined && { cwd: options.cwd }),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

/** `concordat <args> --json`, which must succeed; its stdout parsed. */
export async function cliJson<T = unknown>(args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<T> {
  const run = await cli([...args, '--json'], options);
  if (run.code !== 0) throw new Error(`concordat ${args.join(' ')} exited ${run.code}: ${run.stderr}`);
  return JSON.parse(run.stdout) as T;
}

export interface RunningBroker {
  child: ChildProcess;
  bootstrap: string;
  /** SIGTERM, then waits for the exit (the log closes cleanly). */
  stop(): Promise<void>;
}

/**
 * `concordat broker --data <dataDir> --port 0` as a process, once it prints
 * where it listens; without Kafka's 3 s initial rebalance delay, so its
 * groups' first rebalance does not hold the tests up.
 */
export function startBrokerProcess(dataDir: string): Promise<RunningBroker> {
  const args = ['--import', TSX, MAIN, 'broker', '--data', dataDir, '--port', '0', '--group-initial-rebalance-delay-ms', '0'];
  const child = spawn(process.execPath, args, { env: env({}), stdio: ['ignore', 'pipe', 'pipe'] });
  const stderr: string[] = [];
  createInterface({ input: child.stderr! }).on('line', (line) => stderr.push(line));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`broker did not start: ${stderr.join('\n')}`)), 30_000);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const match = /^concordat broker listening on 127\.0\.0\.1:(\d+) /.exec(line);
      if (match === null) return;
      clearTimeout(timer);
      resolve({
        child,
        bootstrap: `127.0.0.1:${match[1]}`,
        async stop() {
          if (child.exitCode === null) child.kill('SIGTERM');
          await exited;
        },
      });
    });
    void exited.then((code) => reject(new Error(`broker exited ${code}: ${stderr.join('\n')}`)));
  });
}
