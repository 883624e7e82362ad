import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** `concordat broker` as its own process, the way an operator runs it. */
export interface BrokerProcess {
  port: number;
  bootstrap: string;
  child: ChildProcess;
  /** SIGTERM, then waits for the graceful exit. */
  stop(): Promise<void>;
}

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

export function startBrokerProcess(dataDir: string, extra: string[] = []): Promise<BrokerProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, 'broker', '--data', dataDir, '--port', '0', ...extra], {
    env: { ...process.env, CONCORDAT_LOG_LEVEL: process.env.CONCORDAT_LOG_LEVEL ?? 'warn' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('concordat broker did not start within 30 s')), 30_000);
    void exited.then((code) => reject(new Error(`concordat broker exited with ${code}`)));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const match = / listening on [^:]+:(\d+) /.exec(line);
      if (match === null) return;
      clearTimeout(timer);
      const port = Number(match[1]);
      resolve({
        port,
        bootstrap: `127.0.0.1:${port}`,
        child,
        async stop() {
          child.kill('SIGTERM');
          const code = await exited;
          if (code !== 0) throw new Error(`concordat broker exited with ${code} after SIGTERM`);
        },
      });
    });
  });
}

export interface Measured {
  records: number;
  bytes: number;
  ms: number;
}

export const perSecond = (m: Measured) => (m.records * 1000) / m.ms;

export function describe(m: Measured): string {
  const rate = perSecond(m);
  const mb = (m.bytes * 1000) / m.ms / (1024 * 1024);
  return `${m.records.toLocaleString('en-US')} records in ${(m.ms / 1000).toFixed(2)} s = ${Math.round(rate).toLocaleString('en-US')} records/s (${mb.toFixed(1)} MiB/s)`;
}

/** The middle measurement by time (rounds run interleaved, so a burst of load on this shared machine hits both sides). */
export function median(rounds: Measured[]): Measured {
  const sorted = [...rounds].sort((a, b) => a.ms - b.ms);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** `name: <median> [rounds: r1, r2, r3 records/s]`. */
export function describeRounds(name: string, rounds: Measured[]): string {
  const each = rounds.map((m) => Math.round(perSecond(m)).toLocaleString('en-US')).join(', ');
  return `${name}: ${describe(median(rounds))}${rounds.length > 1 ? ` [rounds: ${each} records/s]` : ''}`;
}

export function ratioLine(name: string, ours: Measured, baseline: Measured, target: number | null): string {
  const ratio = perSecond(ours) / perSecond(baseline);
  const verdict = target === null ? '' : ratio >= target ? ` (target ≥ ${target}×: met)` : ` (target ≥ ${target}×: MISSED)`;
  return `${name}: ${ratio.toFixed(2)}×${verdict}`;
}

export async function timed<T>(work: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const started = process.hrtime.bigint();
  const value = await work();
  return { ms: Number(process.hrtime.bigint() - started) / 1e6, value };
}
