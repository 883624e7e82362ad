import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { createServer, type AddressInfo } from 'node:net';
import { arch, platform } from 'node:os';
import { join } from 'node:path';

/**
 * restate-server, the binary that `@restatedev/restate-server` ships in its
 * platform package, run from bench/peers/node_modules on a data directory of
 * the bench's, on three free loopback ports (node-to-node, admin, ingress),
 * with telemetry off. Everything else at its defaults.
 */
export interface RunningRestate {
  pid: number;
  adminUrl: string;
  ingressUrl: string;
  /** Where its output goes. */
  logFile: string;
  /** SIGTERM, then SIGKILL if it has not exited within 20 s. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILL now, synchronously (for an exiting process). */
  kill(): void;
}

/** Waits for the server to answer on its admin and ingress ports, 60 s at most. @throws Error with the tail of its log */
export async function startRestateServer(dir: string): Promise<RunningRestate> {
  const binary = createRequire(import.meta.url).resolve(`@restatedev/restate-server-${platform()}-${arch()}/bin/restate-server`);
  await mkdir(dir, { recursive: true });
  const [nodePort, adminPort, ingressPort] = [await freePort(), await freePort(), await freePort()];
  const logFile = join(dir, 'restate-server.log');
  const log = createWriteStream(logFile);
  const child = spawn(binary, ['--no-logo', '--base-dir', join(dir, 'data')], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      RESTATE_LISTEN_MODE: 'tcp',
      RESTATE_BIND_ADDRESS: `127.0.0.1:${nodePort}`,
      RESTATE_ADVERTISED_ADDRESS: `http://127.0.0.1:${nodePort}/`,
      RESTATE_ADMIN__BIND_ADDRESS: `127.0.0.1:${adminPort}`,
      RESTATE_INGRESS__BIND_ADDRESS: `127.0.0.1:${ingressPort}`,
      RESTATE_DISABLE_TELEMETRY: 'true',
      RESTATE_LOG_DISABLE_ANSI_CODES: 'true',
    },
  });
  child.stdout!.pipe(log);
  child.stderr!.pipe(log);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const server: RunningRestate = {
    pid: child.pid!,
    adminUrl: `http://127.0.0.1:${adminPort}`,
    ingressUrl: `http://127.0.0.1:${ingressPort}`,
    logFile,
    stop: () => stop(child, exited),
    kill: () => void child.kill('SIGKILL'),
  };
  try {
    await waitUntilUp(server, exited);
  } catch (error) {
    await server.stop();
    throw new Error(`${(error as Error).message}\n--- ${logFile} (tail) ---\n${tail(logFile)}`);
  }
  return server;
}

async function waitUntilUp(server: RunningRestate, exited: Promise<number | null>): Promise<void> {
  let gone: number | null | undefined;
  void exited.then((code) => (gone = code));
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (gone !== undefined) throw new Error(`restate-server exited with code ${gone} while starting`);
    if ((await answers(`${server.adminUrl}/health`)) && (await answers(`${server.ingressUrl}/restate/health`))) return;
    if (Date.now() > deadline) throw new Error('restate-server did not answer on its admin and ingress ports within 60 s');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function answers(url: string): Promise<boolean> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(2000) });
    await response.arrayBuffer();
    return response.ok;
  } catch {
    return false;
  }
}

async function stop(child: ChildProcess, exited: Promise<number | null>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  await exited;
  clearTimeout(timer);
}

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-30).join('\n');
  } catch {
    return '(no log)';
  }
}

/** A TCP port free on 127.0.0.1 right now (the OS picks it). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}
