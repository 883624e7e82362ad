import 'reflect-metadata';
import { benchDrain } from './drain.js';
import { benchHandlers } from './handlers.js';
import { benchLatency } from './latency.js';
import { registerBenchTracing } from './otel.js';
import { benchParallelKeys } from './parallel-keys.js';
import { benchScheduled } from './scheduled.js';
import { benchEnv, table, type Row } from './support.js';
import { benchWriter } from './writer.js';

/**
 * `npm run bench:outbox [-- --quick] [-- --otel] [-- --only=writer,drain,latency,handlers,scheduled,parallel-keys]`:
 * the outbox and inbox against baselines measured in the same run
 * (docs/benchmarks.md, "Outbox and inbox"):
 *   1. business transaction + 1 outbox row vs the transaction alone (target ≥ 0.8×)
 *   2. relay drain rate vs outbox insert rate, and a flat backlog over 60 s (target ≥ 1.0×)
 *   3. end-to-end latency commit → handler commit at 1,000 msg/s (target p99 < 50 ms)
 *   4. exactly-once handler vs the same handler at-least-once (target ≥ 0.85×)
 *   5. scheduled delivery with 1,000,000 pending, 1,000 due per second: lateness
 *      (target p99 < 100 ms) and CPU per message vs immediate (target ≤ 1.2×)
 *   6. parallel keys: a handler with 5 ms of I/O on 1 partition, `concurrency: { perPartition: 16 }`
 *      vs 1 (target ≥ 8×)
 * PostgreSQL: DATABASE_URL, or an embedded one in a temporary directory.
 * The log: the embedded log (fdatasync) under BENCH_DIR (default the OS temp dir).
 * --quick: shorter runs (about 1 minute in all), for CI.
 * --otel: with the OpenTelemetry SDK registered (see otel.ts), to compare with a run without:
 *   the library's spans cost nothing but the API's no-op calls until an SDK is registered.
 * --scheduled-rate=N: messages per second in 5. (default 1,000; a multiple of 100).
 */
process.env.CONCORDAT_LOG_LEVEL ??= 'warn';
const quick = process.argv.includes('--quick');
const onlyArg = process.argv.find((arg) => arg.startsWith('--only='))?.slice('--only='.length);
const only = onlyArg === undefined ? undefined : new Set(onlyArg.split(','));
const settings = quick
  ? {
      clients: 16,
      sliceMs: 1000,
      rounds: 3,
      drainMs: 10_000,
      backlogRows: 20_000,
      latencyMs: 6000,
      warmupMs: 3000,
      messages: 4000,
      handlerRounds: 2,
      pendingRows: 50_000,
      scheduledMs: 6000,
      slowMessages: 400,
      fastMessages: 4000,
      parallelRounds: 2,
    }
  : {
      clients: 16,
      sliceMs: 2000,
      rounds: 7,
      drainMs: 60_000,
      backlogRows: 100_000,
      latencyMs: 30_000,
      warmupMs: 5000,
      messages: 20_000,
      handlerRounds: 3,
      pendingRows: 1_000_000,
      scheduledMs: 20_000,
      slowMessages: 1000,
      fastMessages: 12_000,
      parallelRounds: 3,
    };

// The rate of 5. (default the 1,000/s); a lower one shows lateness where a loaded machine cannot carry 1,000/s even immediately.
const scheduledRate = Number(process.argv.find((arg) => arg.startsWith('--scheduled-rate='))?.slice('--scheduled-rate='.length) ?? 1000);
const tracing = process.argv.includes('--otel') ? registerBenchTracing() : undefined;
const env = await benchEnv();
console.log(
  `outbox and inbox benchmarks${quick ? ' (quick)' : ''}${tracing === undefined ? '' : ' with the OpenTelemetry SDK registered'}: ${new Date().toISOString()}, node ${process.version}, PostgreSQL at ${new URL(env.serverUrl).host}`,
);
const rows: Row[] = [];
const run = async (key: string, title: string, bench: () => Promise<Row[]>): Promise<void> => {
  if (only !== undefined && !only.has(key)) return;
  process.stdout.write(`  ${title}…\n`);
  rows.push(...(await bench()));
};
try {
  await run('writer', '1. writer', () => benchWriter(env, { clients: settings.clients, sliceMs: settings.sliceMs, rounds: settings.rounds }));
  await run('drain', '2. relay drain', () => benchDrain(env, { clients: settings.clients, runMs: settings.drainMs, backlogRows: settings.backlogRows }));
  await run('latency', '3. end-to-end latency', () => benchLatency(env, { ratePerSecond: 1000, runMs: settings.latencyMs, warmupMs: settings.warmupMs }));
  await run('handlers', '4. exactly-once vs at-least-once handler', () => benchHandlers(env, { messages: settings.messages, rounds: settings.handlerRounds }));
  await run('scheduled', '5. scheduled delivery', () =>
    benchScheduled(env, {
      pendingRows: settings.pendingRows,
      ratePerSecond: scheduledRate,
      runMs: settings.scheduledMs,
      warmupMs: settings.warmupMs,
      delayMs: 2000,
    }),
  );
  await run('parallel-keys', '6. parallel keys within a partition', () =>
    benchParallelKeys(env, { slowMessages: settings.slowMessages, fastMessages: settings.fastMessages, rounds: settings.parallelRounds }),
  );
} finally {
  await env.close();
  await tracing?.close();
}
if (tracing !== undefined) console.log(`spans exported: ${tracing.exported().toLocaleString('en-US')}`);
console.log(`\n${table(rows)}\n`);
const missed = rows.filter((r) => r.pass === false);
if (missed.length > 0) console.log(`targets missed: ${missed.map((r) => r.name).join('; ')}`);
process.exit(0);
