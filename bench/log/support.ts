import { execFileSync } from 'node:child_process';
import { open, rm, rename, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { LogManager, type LogManagerOptions } from '../../src/log/index.js';

/** One line of the results table. */
export interface Row {
  name: string;
  baseline: string;
  measured: string;
  /** measured / baseline, as a throughput ratio (higher is better), or null for a bound. */
  ratio: number | null;
  target: string;
  pass: boolean | null;
}

export async function openBenchLog(dataDir: string, options: Omit<LogManagerOptions, 'dataDir'> = {}): Promise<LogManager> {
  await rm(dataDir, { recursive: true, force: true });
  return LogManager.open({ ...options, dataDir });
}

/** Bytes free on the filesystem holding `path` (df). */
export function freeBytes(path: string): number {
  const out = execFileSync('df', ['-B1', '--output=avail', path], { encoding: 'utf8' });
  return Number(out.trim().split('\n').pop());
}

/** The median of some numbers. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Runs `work` repeatedly for `ms`; returns operations per second, `work` returning how many operations it did. */
export async function ratePerSecond(ms: number, work: () => Promise<number>): Promise<number> {
  const start = performance.now();
  let done = 0;
  while (performance.now() - start < ms) done += await work();
  return done / ((performance.now() - start) / 1000);
}

/** A file written at the end with positional writes and synced with fdatasync: the raw baseline. */
export class RawFile {
  private position = 0;

  private constructor(private readonly file: FileHandle) {}

  static async create(path: string): Promise<RawFile> {
    return new RawFile(await open(path, 'w+'));
  }

  async append(bytes: Buffer): Promise<void> {
    let done = 0;
    while (done < bytes.length) done += (await this.file.write(bytes, done, bytes.length - done, this.position + done)).bytesWritten;
    this.position += bytes.length;
  }

  async datasync(): Promise<void> {
    await this.file.datasync();
  }

  async close(): Promise<void> {
    await this.file.close();
  }
}

/** Phase A's way of storing a group's offsets: write a temp file, fsync, rename over, fsync the directory. */
export async function atomicRewrite(path: string, body: Buffer): Promise<void> {
  const temp = `${path}.tmp`;
  const file = await open(temp, 'w');
  await file.writeFile(body);
  await file.datasync();
  await file.close();
  await rename(temp, path);
  const dir = await open(dirname(path), 'r');
  await dir.sync();
  await dir.close();
}

/** Samples the process's resident set size every `everyMs`; `stop()` returns the largest seen, in bytes. */
export function sampleRss(everyMs = 50): { stop(): number } {
  let max = process.memoryUsage.rss();
  const timer = setInterval(() => {
    max = Math.max(max, process.memoryUsage.rss());
  }, everyMs);
  return {
    stop() {
      clearInterval(timer);
      return Math.max(max, process.memoryUsage.rss());
    },
  };
}

export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

export function mib(bytes: number): string {
  return `${(bytes / MiB).toFixed(0)} MiB`;
}

export function perSecond(value: number, unit: string): string {
  return `${Math.round(value).toLocaleString('en-US')} ${unit}/s`;
}

/** The results as a Markdown table. */
export function table(rows: readonly Row[]): string {
  const lines = [
    '| benchmark | baseline (same run) | measured | ratio | target | met |',
    '|---|---|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.name} | ${r.baseline} | ${r.measured} | ${r.ratio === null ? '—' : `${r.ratio.toFixed(2)}×`} | ${r.target} | ${r.pass === null ? '—' : r.pass ? 'yes' : '**no**'} |`,
    ),
  ];
  return lines.join('\n');
}
