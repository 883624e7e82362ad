import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { ConcordatError } from '../../../src/errors.js';
import { LogManager } from '../../../src/log/index.js';
import { until } from '../../../src/testing/index.js';

/**
 * Restarting `concordat broker` at once after its process group was
 * SIGKILLed, while the killed node process is still a zombie: under npx it
 * runs as npm → sh → node, and after a group kill node stays a zombie until
 * PID 1 reaps it (1–1.7 s measured), which is when a supervisor restarts it.
 * Here the broker's parent is a `sleep` that never waits, so the zombie
 * lasts as long as the test needs it.
 */
const MAIN = fileURLToPath(new URL('../../../src/cli/main.ts', import.meta.url));
const START_TIMEOUT_MS = 30_000;

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'concordat-restart-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function untilAccepts(port: number, why: () => string): Promise<void> {
  await until(() => accepts(port), { timeoutMs: START_TIMEOUT_MS, intervalMs: 50, message: () => `port ${port} accepting connections: ${why()}` });
}

/** State letter of /proc/<pid>/stat (R, S, Z, ...), or null when the PID is gone. */
async function procState(pid: number): Promise<string | null> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0]!;
  } catch {
    return null;
  }
}

/**
 * `sh` starts the broker with `setsid` in the background (its own session
 * and process group, PID = PGID), prints its PID, and execs `sleep`: the
 * broker's parent is then a process that never reaps it.
 */
function startUnreaped(dataDir: string, port: number): Promise<{ parent: ChildProcess; pid: number; output: string[] }> {
  const script = `setsid "$0" --import tsx "$1" broker --data "$2" --port "$3" </dev/null >/dev/null 2>&1 & echo $!; exec sleep 600`;
  const parent = spawn('sh', ['-c', script, process.execPath, MAIN, dataDir, String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
  const output: string[] = [];
  createInterface({ input: parent.stderr! }).on('line', (line) => output.push(line));
  return new Promise((resolve, reject) => {
    createInterface({ input: parent.stdout! }).once('line', (line) => resolve({ parent, pid: Number(line), output }));
    parent.once('exit', (code) => reject(new Error(`sh exited ${code}: ${output.join('\n')}`)));
  });
}

/** The broker as a supervisor restarts it: a direct child, started at once. Resolves when it listens. */
function startBroker(dataDir: string, port: number): { child: ChildProcess; listening: Promise<void>; stderr: string[] } {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, 'broker', '--data', dataDir, '--port', String(port)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stderr: string[] = [];
  createInterface({ input: child.stderr! }).on('line', (line) => stderr.push(line));
  const listening = new Promise<void>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (line.startsWith(`concordat broker listening on 127.0.0.1:${port} `)) resolve();
    });
    child.once('exit', (code) => reject(new Error(`the restarted broker exited ${code}: ${stderr.join('\n')}`)));
  });
  return { child, listening, stderr };
}

describe('concordat broker restarted right after a crash', () => {
  it('starts on the same data directory while the killed broker is still a zombie', { timeout: 120_000 }, async () => {
    const dataDir = join(dir, 'zombie');
    const port = await freePort();
    const first = await startUnreaped(dataDir, port);
    onTestFinished(() => {
      first.parent.kill('SIGKILL');
    });
    await untilAccepts(port, () => first.output.join('\n'));

    // While it runs, the directory is locked: another process cannot open it.
    const refused = await LogManager.open({ dataDir }).then(
      async (logManager) => {
        await logManager.close();
        return null;
      },
      (error: unknown) => error as ConcordatError,
    );
    expect(refused?.code).toBe('LOG_DIR_LOCKED');
    expect(refused?.message).toBe(`log directory ${dataDir} is locked: process ${first.pid} has it open`);

    process.kill(-first.pid, 'SIGKILL');
    await until(async () => (await procState(first.pid)) === 'Z', { timeoutMs: 10_000, intervalMs: 10, message: 'the killed broker a zombie' });

    const second = startBroker(dataDir, port);
    onTestFinished(() => {
      second.child.kill('SIGKILL');
    });
    await second.listening;
    // The window was hit: the killed broker was still unreaped when the new one took the directory.
    expect(await procState(first.pid)).toBe('Z');
    expect(await accepts(port)).toBe(true);
  });

  it('takes over a lock file naming a live process that does not hold the lock (a reused PID)', async () => {
    const dataDir = join(dir, 'reused');
    const first = await LogManager.open({ dataDir });
    await first.close();
    // The PID of a live process that has nothing to do with the log: this test's parent.
    await writeFile(join(dataDir, '.lock'), `${process.ppid}\n`);
    expect(await procState(process.ppid)).not.toBeNull();
    const reopened = await LogManager.open({ dataDir });
    await reopened.close();
  });
});
