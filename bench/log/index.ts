import { mkdir, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { benchBatchAppend, benchGroupCommit } from './append.js';
import { benchCatchUp } from './catch-up.js';
import { benchMemory } from './memory.js';
import { benchOffsetCommits } from './offsets.js';
import { freeBytes, GiB, MiB, table, type Row } from './support.js';

/**
 * `npm run bench:log [-- --quick]`: the log engine against baselines
 * measured in the same run, on the same disk (docs/benchmarks.md, "Log engine"):
 *   1. durable append of 100 × 1 KiB batches vs write + fdatasync per batch (target ≥ 0.8×)
 *   2. 64 concurrent single-record appenders vs one fdatasync per record (target ≥ 20×)
 *   3. a consumer catching up on 1 GiB vs a raw sequential read of the files (target ≥ 0.7×)
 *   4. RSS while 5 GiB are appended durably and read back (target < 300 MiB)
 *   and, without a target, offset commits (offsets log vs atomic checkpoint rewrite).
 * --quick: shorter runs and 128 MiB / 512 MiB instead of 1 GiB / 5 GiB (CI, under a minute).
 * The data go to BENCH_DIR (default .tmp/bench-log in the repository, i.e. the
 * disk under test), which is checked for free space first and removed after.
 */
process.env.CONCORDAT_LOG_LEVEL ??= 'warn';
const quick = process.argv.includes('--quick');
const dir = resolve(process.env.BENCH_DIR ?? join(process.cwd(), '.tmp', 'bench-log'));
const settings = quick
  ? { runMs: 3000, sliceMs: 250, rounds: 3, catchUpBytes: 128 * MiB, memoryBytes: 512 * MiB }
  : { runMs: 15_000, sliceMs: 250, rounds: 5, catchUpBytes: GiB, memoryBytes: 5 * GiB };

await mkdir(dir, { recursive: true });
const needed = settings.catchUpBytes + settings.memoryBytes + GiB;
const free = freeBytes(dir);
if (free < needed) {
  console.error(`bench:log needs ${(needed / GiB).toFixed(1)} GiB free in ${dir}; ${(free / GiB).toFixed(1)} GiB are (set BENCH_DIR elsewhere)`);
  process.exit(1);
}
console.log(
  `log engine benchmarks${quick ? ' (quick)' : ''}: ${new Date().toISOString()}, node ${process.version}, data in ${dir} (${(free / GiB).toFixed(0)} GiB free)`,
);
const rows: Row[] = [];
const run = async (title: string, bench: () => Promise<Row | Row[]>): Promise<void> => {
  process.stdout.write(`  ${title}…\n`);
  const result = await bench();
  rows.push(...(Array.isArray(result) ? result : [result]));
};
try {
  await run('1. batch append', () => benchBatchAppend({ dir, runMs: settings.runMs, sliceMs: settings.sliceMs }));
  await run('2. group commit', () => benchGroupCommit({ dir, runMs: settings.runMs, sliceMs: settings.sliceMs }));
  await run('3. catch-up', () => benchCatchUp({ dir, bytes: settings.catchUpBytes, rounds: settings.rounds }));
  await rm(join(dir, 'catchup-log'), { recursive: true, force: true });
  await run('4. memory', () => benchMemory({ dir, bytes: settings.memoryBytes }));
  await rm(join(dir, 'memory-log'), { recursive: true, force: true });
  await run('offset commits', () => benchOffsetCommits({ dir, runMs: settings.runMs / 3 }));
} finally {
  await rm(dir, { recursive: true, force: true });
}
console.log(`\n${table(rows)}\n`);
const missed = rows.filter((r) => r.pass === false);
if (missed.length > 0) console.log(`targets missed: ${missed.map((r) => r.name).join('; ')}`);
