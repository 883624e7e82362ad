/**
 * librdkafka's own regression suite against `concordat broker` (issue 13).
 *
 *   npm run test:librdkafka [-- --only 0001,0034] [--timeout-s 300] [--if-cached]
 *
 * 1. Source: Debian's source package of librdkafka 2.0.2 (`apt-get source
 *    librdkafka`), the librdkafka that Debian's kcat and python3-confluent-kafka
 *    link. A `deb-src` entry mirroring the machine's Debian `deb` entries is
 *    added in /etc/apt/sources.list.d/concordat-deb-src.sources when
 *    `apt-cache showsrc` does not know the package yet (needs root or sudo).
 * 2. Build: librdkafka and `tests/test-runner`, once, into the cache folder
 *    (`$LIBRDKAFKA_SUITE_CACHE`, default ~/.cache/concordat/librdkafka-2.0.2);
 *    a `.built` stamp marks a finished build.
 * 3. Run: two brokers of this checkout on free ports and temporary data
 *    directories (scenario `default`: topic auto-creation with 4 partitions,
 *    as the suite's scenarios/default.json; scenario `noautocreate`: without),
 *    then each broker test number of test.c's table in its own
 *    `TESTS=<number> ./test-runner -L` process (`-L`: not the local and mock
 *    ones), with `TEST_KAFKA_VERSION` (default 2.3.0: the broker advertises
 *    Kafka 2.3's Fetch v11 / JoinGroup v5) and an outer per-test timeout.
 * 4. Report: failures with the first error line of each, the tests on
 *    SINGLE_BROKER_LIMITS (reported apart: they cannot pass against this
 *    broker, each with its reason), and as the last line
 *    `N passed, M failed, K skipped, L listed`.
 *
 * Options: --only 0001,0045 (test-name prefixes), --timeout-s (outer kill per
 * test-runner process, default 300), --kafka-version, --cache DIR,
 * --build-only, --if-cached (do nothing unless the cache is built: CI),
 * --skip-listed (do not run SINGLE_BROKER_LIMITS), --quick (test-runner -Q),
 * --retries N (run a number that failed outside the list again; a pass on
 * a retry is reported as flaky).
 * TEST_DEBUG=cgrp,fetch and other test-runner variables pass through.
 *
 * Exit code: 0 when nothing failed outside SINGLE_BROKER_LIMITS, 1 otherwise,
 * 2 when the suite could not be fetched, built or started.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, createWriteStream } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const LIBRDKAFKA_VERSION = '2.0.2';
const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** Debian packages the build needs: debian/control's Build-Depends without debhelper, plus the compilers. */
const BUILD_PACKAGES = ['build-essential', 'pkg-config', 'dpkg-dev', 'liblz4-dev', 'libsasl2-dev', 'libssl-dev', 'libzstd-dev', 'rapidjson-dev', 'zlib1g-dev'];
const DEB_SRC_FILE = '/etc/apt/sources.list.d/concordat-deb-src.sources';
const BROKER_START_TIMEOUT_MS = 60_000;

/**
 * Tests that one `concordat broker` cannot pass, by full test name (test.c's
 * table), each with the reason. They still run; a failure of one of them is
 * reported apart from real failures, and a pass is reported so the entry can go.
 */
export const SINGLE_BROKER_LIMITS: Readonly<Record<string, string>> = {
  // Three brokers: the test creates its topics with replication factor 3.
  '0098_consumer_txn': 'three brokers (creates topics with replication factor 3)',
  '0103_transactions': 'three brokers (creates its topics with replication factor 3)',
  '0107_topic_recreate': 'three brokers (creates its topic with replication factor 3)',
  '0111_delay_create_topics': 'three brokers (creates its topic with replication factor 3)',
  // Kafka's CLI tools and ZooKeeper (test_kafka_topics / test_kafka_cmd need KAFKA_PATH and ZK_ADDRESS).
  '0045_subscribe_update_topic_remove': "Kafka's CLI tools / ZooKeeper (kafka-topics.sh --delete)",
  '0045_subscribe_update_non_exist_and_partchange': "Kafka's CLI tools / ZooKeeper (kafka-topics.sh --alter --partitions)",
  '0052_msg_timestamps': "Kafka's CLI tools / ZooKeeper (kafka-topics.sh --create with message.timestamp.type)",
  '0077_compaction': "Kafka's CLI tools / ZooKeeper (kafka-topics.sh --create with cleanup.policy=compact; the broker itself compacts: src/log/cleaner/)",
  '0109_auto_create_topics': "Kafka's CLI tools (kafka-acls.sh to deny a topic); then ACLs (CreateAcls)",
  '0115_producer_auth': "Kafka's CLI tools (kafka-acls.sh); then ACLs (CreateAcls)",
  '0119_consumer_auth': "Kafka's CLI tools (kafka-acls.sh); then ACLs (CreateAcls)",
  // APIs and behaviour the broker does not have yet (issue 13).
  '0081_admin':
    'AlterConfigs of a broker config (sasl.kerberos.min.time.before.relogin) is refused: no broker config is dynamic here; later steps need ACLs (CreateAcls)',
  '0055_producer_latency':
    'latency bounds per case (5 to 35 ms plus a margin) that an fdatasync per acknowledged append misses on a loaded machine: on 2026-12-07 (load average 26) its first case, standard settings, averaged 28 ms (allowed 5 + 16 ms); its transactions case is served now: check the bounds before removing',
};

type Scenario = 'default' | 'noautocreate';

/** One entry of test.c's `tests[]` table that needs a broker. */
interface SuiteTest {
  readonly name: string;
  readonly num: string;
  readonly scenario: Scenario;
}

type Outcome = 'PASSED' | 'FAILED' | 'SKIPPED';

interface Result {
  readonly test: SuiteTest;
  readonly outcome: Outcome;
  /** First error line for a failure, the runner's reason for a skip. */
  readonly detail: string;
  readonly seconds: number;
  /** Set when the test failed first and passed on a retry (--retries): the first failure's detail. */
  readonly flaky?: string;
}

const isRealFailure = (r: Result): boolean => r.outcome === 'FAILED' && !(r.test.name in SINGLE_BROKER_LIMITS);

interface Options {
  readonly cacheDir: string;
  readonly only: readonly string[] | undefined;
  readonly timeoutMs: number;
  readonly kafkaVersion: string;
  readonly ifCached: boolean;
  readonly buildOnly: boolean;
  /** Do not run the tests on SINGLE_BROKER_LIMITS (they are counted as listed). */
  readonly skipListed: boolean;
  /** test-runner's -Q: fewer iterations and messages. */
  readonly quick: boolean;
  /** How often a test number that failed outside the list is run again. */
  readonly retries: number;
}

function parseOptions(): Options {
  const { values } = parseArgs({
    options: {
      only: { type: 'string' },
      'timeout-s': { type: 'string', default: '300' },
      'kafka-version': { type: 'string', default: '2.3.0' },
      cache: { type: 'string' },
      'if-cached': { type: 'boolean', default: false },
      'build-only': { type: 'boolean', default: false },
      'skip-listed': { type: 'boolean', default: false },
      quick: { type: 'boolean', default: false },
      retries: { type: 'string', default: '0' },
    },
  });
  const timeoutS = Number(values['timeout-s']);
  if (!Number.isInteger(timeoutS) || timeoutS < 10) {
    throw new Error(`--timeout-s must be a whole number of seconds >= 10, got "${values['timeout-s']}"`);
  }
  const retries = Number(values.retries);
  if (!Number.isInteger(retries) || retries < 0 || retries > 3) throw new Error(`--retries must be 0, 1, 2 or 3, got "${values.retries}"`);
  const cacheDir = values.cache ?? process.env.LIBRDKAFKA_SUITE_CACHE ?? join(homedir(), '.cache', 'concordat', `librdkafka-${LIBRDKAFKA_VERSION}`);
  const only = values.only
    ?.split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  return {
    cacheDir: resolve(cacheDir),
    only,
    timeoutMs: timeoutS * 1000,
    kafkaVersion: values['kafka-version']!,
    ifCached: values['if-cached']!,
    buildOnly: values['build-only']!,
    skipListed: values['skip-listed']!,
    quick: values.quick!,
    retries,
  };
}

// ---------------------------------------------------------------- source and build

function sh(cmd: string, args: readonly string[], cwd: string, logFile?: string): void {
  const out = logFile === undefined ? 'inherit' : 'pipe';
  const r = spawnSync(cmd, args, { cwd, stdio: ['ignore', out, out], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, maxBuffer: 256 << 20 });
  if (logFile !== undefined) writeFileSync(logFile, Buffer.concat([r.stdout ?? Buffer.alloc(0), r.stderr ?? Buffer.alloc(0)]), { flag: 'a' });
  if (r.status !== 0) {
    const where = logFile === undefined ? '' : ` (output in ${logFile})`;
    throw new Error(`${cmd} ${args.join(' ')} failed with ${r.status ?? r.signal}${where}`);
  }
}

function asRoot(cmd: string, args: readonly string[], cwd: string, logFile?: string): void {
  if (process.getuid?.() === 0) sh(cmd, args, cwd, logFile);
  else sh('sudo', ['env', 'DEBIAN_FRONTEND=noninteractive', cmd, ...args], cwd, logFile);
}

function debianKnowsSource(): boolean {
  const r = spawnSync('apt-cache', ['showsrc', 'librdkafka'], { encoding: 'utf8' });
  return r.status === 0 && new RegExp(`^Version: ${LIBRDKAFKA_VERSION.replaceAll('.', '\\.')}-`, 'm').test(r.stdout);
}

/** deb822 stanzas (`Types: deb-src`) for every Debian `deb` source of the machine, legacy one-line or deb822. */
function debSrcStanzas(): string[] {
  const stanzas: string[] = [];
  const isDebian = (uri: string): boolean => /debian\.org\//.test(uri);
  const listFiles = ['/etc/apt/sources.list', ...listDir('/etc/apt/sources.list.d', '.list')].filter((f) => existsSync(f));
  for (const file of listFiles) {
    for (const raw of readFileSync(file, 'utf8').split('\n')) {
      const m = /^deb\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)\s+(.+)$/.exec(raw.trim());
      if (m === null || !isDebian(m[2]!)) continue;
      const signedBy = /signed-by=(\S+)/.exec(m[1] ?? '')?.[1];
      stanzas.push(
        [`Types: deb-src`, `URIs: ${m[2]}`, `Suites: ${m[3]}`, `Components: ${m[4]!.trim()}`, ...(signedBy ? [`Signed-By: ${signedBy}`] : [])].join('\n'),
      );
    }
  }
  for (const file of listDir('/etc/apt/sources.list.d', '.sources')) {
    if (file === DEB_SRC_FILE) continue;
    for (const block of readFileSync(file, 'utf8').split(/\n\s*\n/)) {
      const fields = new Map<string, string>();
      for (const line of block.split('\n')) {
        const m = /^([A-Za-z-]+):\s*(.*)$/.exec(line);
        if (m !== null) fields.set(m[1]!.toLowerCase(), m[2]!.trim());
      }
      const types = (fields.get('types') ?? '').split(/\s+/);
      if (!types.includes('deb') || types.includes('deb-src') || fields.get('enabled') === 'no') continue;
      if (!isDebian(fields.get('uris') ?? '')) continue;
      const keep = ['URIs', 'Suites', 'Components', 'Signed-By'].filter((k) => fields.has(k.toLowerCase()));
      stanzas.push(['Types: deb-src', ...keep.map((k) => `${k}: ${fields.get(k.toLowerCase())}`)].join('\n'));
    }
  }
  return stanzas;
}

function listDir(dir: string, suffix: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith(suffix))
    .map((f) => join(dir, f));
}

function ensureDebSrc(log: string): void {
  if (debianKnowsSource()) return;
  const stanzas = debSrcStanzas();
  if (stanzas.length === 0) {
    throw new Error(
      'no Debian "deb" entry in /etc/apt/sources.list or /etc/apt/sources.list.d/ to mirror as deb-src; add a deb-src entry for your suite by hand',
    );
  }
  const tmp = join(mkdtempSync(join(tmpdir(), 'concordat-apt-')), 'concordat-deb-src.sources');
  writeFileSync(tmp, `# Added by concordat's scripts/librdkafka-suite.ts: Debian source packages (apt-get source librdkafka).\n${stanzas.join('\n\n')}\n`);
  console.log(`adding ${DEB_SRC_FILE} (${stanzas.length} deb-src entr${stanzas.length === 1 ? 'y' : 'ies'}) and running apt-get update`);
  asRoot('install', ['-m', '0644', tmp, DEB_SRC_FILE], tmpdir(), log);
  asRoot('apt-get', ['update', '-qq'], tmpdir(), log);
  if (!debianKnowsSource())
    throw new Error(
      `apt-cache showsrc librdkafka has no version ${LIBRDKAFKA_VERSION} even with ${DEB_SRC_FILE}; this suite's list is for Debian bookworm's librdkafka ${LIBRDKAFKA_VERSION}`,
    );
}

/** Gets and builds the suite once; returns librdkafka's source directory. */
function ensureBuilt(cacheDir: string): string {
  const srcDir = join(cacheDir, `librdkafka-${LIBRDKAFKA_VERSION}`);
  const stamp = join(cacheDir, '.built');
  if (existsSync(stamp) && existsSync(join(srcDir, 'tests', 'test-runner'))) return srcDir;
  mkdirSync(cacheDir, { recursive: true });
  const log = join(cacheDir, 'build.log');
  writeFileSync(log, '');
  const started = Date.now();
  console.log(`building librdkafka ${LIBRDKAFKA_VERSION}'s test-runner into ${cacheDir} (log: ${log})`);
  ensureDebSrc(log);
  asRoot('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...BUILD_PACKAGES], tmpdir(), log);
  rmSync(srcDir, { recursive: true, force: true });
  sh('apt-get', ['source', '-qq', 'librdkafka'], cacheDir, log);
  if (!existsSync(srcDir)) throw new Error(`apt-get source librdkafka did not unpack ${srcDir}; Debian's librdkafka is not ${LIBRDKAFKA_VERSION}`);
  const jobs = `-j${Math.max(1, Math.min(4, (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator?.hardwareConcurrency ?? 2))}`;
  sh('./configure', [], srcDir, log);
  sh('make', [jobs, 'libs'], srcDir, log);
  sh('make', [jobs, '-C', 'tests', 'build'], srcDir, log);
  writeFileSync(stamp, `built ${new Date().toISOString()} in ${Math.round((Date.now() - started) / 1000)} s\n`);
  console.log(`built in ${Math.round((Date.now() - started) / 1000)} s`);
  return srcDir;
}

// ---------------------------------------------------------------- the test table

/** Broker tests of test.c's `tests[]` table: not local (mock), not manual, numbered 0000–0999. */
function brokerTests(testsDir: string): SuiteTest[] {
  const source = readFileSync(join(testsDir, 'test.c'), 'utf8');
  const start = source.indexOf('struct test tests[] = {');
  if (start < 0) throw new Error(`${testsDir}/test.c has no "struct test tests[]" table; is this librdkafka ${LIBRDKAFKA_VERSION}?`);
  const table = source.slice(start, source.indexOf('\n};', start));
  const tests: SuiteTest[] = [];
  for (const entry of table.split('_TEST(').slice(1)) {
    const name = /^\s*(\w+)/.exec(entry)?.[1];
    if (name === undefined || !/^0\d{3}_/.test(name)) continue;
    if (/TEST_F_LOCAL|TEST_F_MANUAL/.test(entry)) continue;
    const scenarios = /\.scenario\s*=\s*"([^"]*)"/.exec(entry)?.[1]?.split(',') ?? ['default'];
    const scenario: Scenario = scenarios.includes('default') ? 'default' : 'noautocreate';
    if (!scenarios.includes(scenario)) throw new Error(`test ${name} needs scenario "${scenarios.join(',')}", which this script does not set up`);
    tests.push({ name, num: name.slice(0, 4), scenario });
  }
  return tests;
}

// ---------------------------------------------------------------- brokers

interface Broker {
  readonly scenario: Scenario;
  readonly dataDir: string;
  readonly logFile: string;
  child: ChildProcess;
  port: number;
}

async function startBroker(scenario: Scenario, runDir: string, restarts = 0): Promise<Broker> {
  const dataDir = join(runDir, `data-${scenario}`);
  const logFile = join(runDir, `broker-${scenario}${restarts === 0 ? '' : `-${restarts}`}.log`);
  const args = ['--import', 'tsx', join(REPO_ROOT, 'src', 'cli', 'main.ts'), 'broker', '--data', dataDir, '--port', '0'];
  if (scenario === 'default') args.push('--auto-create-topics', '--default-partitions', '4');
  const child = spawn(process.execPath, args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const log = createWriteStream(logFile);
  child.stderr!.pipe(log);
  const port = await new Promise<number>((resolvePort, reject) => {
    let seen = '';
    const timer = setTimeout(
      () => reject(new Error(`broker (${scenario}) did not report "listening" within ${BROKER_START_TIMEOUT_MS} ms; see ${logFile}`)),
      BROKER_START_TIMEOUT_MS,
    );
    child.stdout!.on('data', (chunk: Buffer) => {
      log.write(chunk);
      seen += chunk.toString('utf8');
      const m = /listening on [^\s:]+:(\d+)/.exec(seen);
      if (m !== null) {
        clearTimeout(timer);
        seen = '';
        resolvePort(Number(m[1]));
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`broker (${scenario}) exited with ${code ?? signal} before listening; see ${logFile}`));
    });
  });
  return { scenario, dataDir, logFile, child, port };
}

function alive(broker: Broker): boolean {
  return broker.child.exitCode === null && broker.child.signalCode === null;
}

async function stopBroker(broker: Broker): Promise<void> {
  if (!alive(broker)) return;
  const exited = new Promise<void>((r) => broker.child.once('exit', () => r()));
  broker.child.kill('SIGTERM');
  const timer = setTimeout(() => broker.child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

// ---------------------------------------------------------------- running one test number

// eslint-disable-next-line no-control-regex
const stripAnsi = (s: string): string => s.replace(/\x1b\[[0-9;]*m/g, '');

/** Runs every test of one number and scenario in one test-runner process; returns their results. */
async function runNumber(tests: readonly SuiteTest[], broker: Broker, srcDir: string, runDir: string, opts: Options, attempt: number): Promise<Result[]> {
  const { num, scenario } = tests[0]!;
  const testsDir = join(srcDir, 'tests');
  const conf = join(runDir, `test-${scenario}.conf`);
  writeFileSync(conf, `metadata.broker.list=127.0.0.1:${broker.port}\n`);
  const outFile = join(runDir, `${num}-${scenario}${attempt === 0 ? '' : `-retry${attempt}`}.out`);
  const env = {
    ...process.env,
    TESTS: num,
    TEST_SCENARIO: scenario,
    TEST_KAFKA_VERSION: opts.kafkaVersion,
    RDKAFKA_TEST_CONF: conf,
    LD_LIBRARY_PATH: [join(srcDir, 'src'), join(srcDir, 'src-cpp'), process.env.LD_LIBRARY_PATH].filter(Boolean).join(':'),
  };
  const started = Date.now();
  const child = spawn('./test-runner', opts.quick ? ['-L', '-Q'] : ['-L'], { cwd: testsDir, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const chunks: Buffer[] = [];
  child.stdout!.on('data', (c: Buffer) => chunks.push(c));
  child.stderr!.on('data', (c: Buffer) => chunks.push(c));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  }, opts.timeoutMs);
  const status = await new Promise<string>((r) => child.once('close', (code, signal) => r(signal ?? String(code))));
  clearTimeout(timer);
  const seconds = (Date.now() - started) / 1000;
  const output = stripAnsi(Buffer.concat(chunks).toString('utf8'));
  writeFileSync(outFile, output);
  removeStatsFiles(testsDir, tests);
  return tests.map((test) => resultOf(test, output, status, timedOut, seconds, opts));
}

/** test-runner writes stats_<test>_<random>.json into its working directory; they are not needed. */
function removeStatsFiles(testsDir: string, tests: readonly SuiteTest[]): void {
  for (const f of readdirSync(testsDir)) {
    if (f.startsWith('stats_') && tests.some((t) => f.startsWith(`stats_${t.name}_`))) rmSync(join(testsDir, f), { force: true });
  }
}

/** Reads one test's state from the runner's summary table and its first error from the log. */
function resultOf(test: SuiteTest, output: string, status: string, timedOut: boolean, seconds: number, opts: Options): Result {
  const row = new RegExp(`^\\|\\s*${test.name}\\s*\\|\\s*(\\w+)\\s*\\|\\s*([\\d.]+)s\\s*\\|\\s*(.*)$`, 'm').exec(output);
  const firstError = firstErrorOf(output, test.name);
  if (timedOut) return { test, outcome: 'FAILED', detail: `killed after ${opts.timeoutMs / 1000} s${firstError ? `; ${firstError}` : ''}`, seconds };
  if (row === null) return { test, outcome: 'FAILED', detail: firstError ?? `test-runner ended with ${status} before its summary`, seconds };
  const state = row[1]!;
  const own = Number(row[2]);
  if (state === 'SKIPPED') return { test, outcome: 'SKIPPED', detail: row[3]!.trim(), seconds: own };
  if (state === 'PASSED' && status === '0') return { test, outcome: 'PASSED', detail: '', seconds: own };
  if (state === 'PASSED') {
    // The test passed, the process did not: the runner's own <MAIN> checks (e.g. librdkafka threads still running at exit).
    return { test, outcome: 'FAILED', detail: firstErrorOf(output, '<MAIN>') ?? `test passed, test-runner exited with ${status}`, seconds: own };
  }
  return { test, outcome: 'FAILED', detail: firstError ?? (row[3]!.trim() || `state ${state}`), seconds: own };
}

/** The line after the first `### Test "<name>" failed at ...: ###` banner, or its banner. */
function firstErrorOf(output: string, name: string): string | undefined {
  const lines = output.split('\n');
  const i = lines.findIndex((l) => l.startsWith(`### Test "${name}`) && l.includes('failed at'));
  if (i < 0) return undefined;
  const where = /failed at (\S+)/.exec(lines[i]!)?.[1] ?? '';
  const what = (lines[i + 1] ?? '').trim();
  return `${where} ${what}`.trim().slice(0, 300);
}

// ---------------------------------------------------------------- report

/** Prints the tables and the last line; `notRun` counts listed tests left out by --skip-listed. Returns the exit code. */
function report(results: readonly Result[], notRun: number): number {
  const listed = results.filter((r) => r.outcome === 'FAILED' && r.test.name in SINGLE_BROKER_LIMITS);
  const failed = results.filter(isRealFailure);
  const flaky = results.filter((r) => r.flaky !== undefined);
  const passed = results.filter((r) => r.outcome === 'PASSED');
  const skipped = results.filter((r) => r.outcome === 'SKIPPED');
  const stale = passed.filter((r) => r.test.name in SINGLE_BROKER_LIMITS);
  if (skipped.length > 0) {
    console.log('\nSkipped by test-runner:');
    for (const r of skipped) console.log(`  ${r.test.name.padEnd(47)} ${r.detail}`);
  }
  if (listed.length > 0) {
    console.log('\nFailed as expected (SINGLE_BROKER_LIMITS):');
    for (const r of listed) console.log(`  ${r.test.name.padEnd(47)} ${SINGLE_BROKER_LIMITS[r.test.name]}`);
  }
  if (stale.length > 0) {
    console.log('\nPassed although listed in SINGLE_BROKER_LIMITS (remove them from the list):');
    for (const r of stale) console.log(`  ${r.test.name}`);
  }
  if (flaky.length > 0) {
    console.log('\nPassed on a retry (flaky; counted as passed):');
    for (const r of flaky) console.log(`  ${r.test.name.padEnd(47)} first run: ${r.flaky}`);
  }
  if (failed.length > 0) {
    console.log('\nFailures:');
    console.log(`  ${'test'.padEnd(47)} ${'time'.padStart(7)}  first error`);
    for (const r of failed) console.log(`  ${r.test.name.padEnd(47)} ${`${r.seconds.toFixed(1)}s`.padStart(7)}  ${r.detail}`);
  }
  console.log(
    `\n${passed.length} passed, ${failed.length} failed, ${skipped.length} skipped, ${listed.length + notRun} listed${notRun > 0 ? ` (${notRun} not run)` : ''}`,
  );
  return failed.length === 0 ? 0 : 1;
}

// ---------------------------------------------------------------- main

async function main(): Promise<number> {
  const opts = parseOptions();
  const srcDir = join(opts.cacheDir, `librdkafka-${LIBRDKAFKA_VERSION}`);
  if (opts.ifCached && !existsSync(join(opts.cacheDir, '.built'))) {
    console.log(`librdkafka suite: no build in ${opts.cacheDir}; skipped (run npm run test:librdkafka once to build it)`);
    return 0;
  }
  try {
    ensureBuilt(opts.cacheDir);
  } catch (err) {
    console.error(`librdkafka suite: cannot get or build librdkafka ${LIBRDKAFKA_VERSION}: ${(err as Error).message}`);
    return 2;
  }
  if (opts.buildOnly) return 0;
  const all = brokerTests(join(srcDir, 'tests'));
  for (const name of Object.keys(SINGLE_BROKER_LIMITS)) {
    if (!all.some((t) => t.name === name))
      throw new Error(`SINGLE_BROKER_LIMITS names ${name}, which is not a broker test of librdkafka ${LIBRDKAFKA_VERSION}`);
  }
  let tests = opts.only === undefined ? all : all.filter((t) => opts.only!.some((o) => t.name.startsWith(o)));
  const notRun = opts.skipListed ? tests.filter((t) => t.name in SINGLE_BROKER_LIMITS).length : 0;
  if (opts.skipListed) tests = tests.filter((t) => !(t.name in SINGLE_BROKER_LIMITS));
  const runDir = mkdtempSync(join(tmpdir(), 'concordat-librdkafka-'));
  console.log(`librdkafka ${LIBRDKAFKA_VERSION} suite: ${tests.length} broker tests, TEST_KAFKA_VERSION=${opts.kafkaVersion}, outputs in ${runDir}`);
  const brokers = new Map<Scenario, Broker>();
  const started = Date.now();
  const results: Result[] = [];
  try {
    for (const scenario of ['default', 'noautocreate'] as const) {
      if (tests.some((t) => t.scenario === scenario)) brokers.set(scenario, await startBroker(scenario, runDir));
    }
    const groups = new Map<string, SuiteTest[]>();
    for (const t of tests) groups.set(`${t.num}-${t.scenario}`, [...(groups.get(`${t.num}-${t.scenario}`) ?? []), t]);
    let restarts = 0;
    const liveBroker = async (scenario: Scenario): Promise<Broker> => {
      const broker = brokers.get(scenario)!;
      if (alive(broker)) return broker;
      // A broker that died during the previous test: say so, and give the next test a live one on the same data.
      restarts += 1;
      console.log(`  broker (${scenario}) exited with ${broker.child.exitCode ?? broker.child.signalCode}; restarting (see ${broker.logFile})`);
      const restarted = await startBroker(scenario, runDir, restarts);
      brokers.set(scenario, restarted);
      return restarted;
    };
    for (const group of groups.values()) {
      const scenario = group[0]!.scenario;
      let groupResults = await runNumber(group, await liveBroker(scenario), srcDir, runDir, opts, 0);
      for (let attempt = 1; attempt <= opts.retries && groupResults.some(isRealFailure); attempt++) {
        const first = groupResults;
        console.log(`  ${group.map((t) => t.name).join(', ')}: failed (${first.find(isRealFailure)!.detail}); retry ${attempt} of ${opts.retries}`);
        const again = await runNumber(group, await liveBroker(scenario), srcDir, runDir, opts, attempt);
        groupResults = again.map((r, i) => (r.outcome === 'PASSED' && isRealFailure(first[i]!) ? { ...r, flaky: first[i]!.flaky ?? first[i]!.detail } : r));
      }
      for (const r of groupResults) {
        results.push(r);
        const detail = r.outcome === 'PASSED' ? '' : `  ${r.test.name in SINGLE_BROKER_LIMITS && r.outcome === 'FAILED' ? '(listed) ' : ''}${r.detail}`;
        console.log(`  ${r.test.name.padEnd(47)} ${r.outcome.padEnd(7)} ${`${r.seconds.toFixed(1)}s`.padStart(7)}${detail}`);
      }
    }
  } finally {
    await Promise.all([...brokers.values()].map(stopBroker));
    for (const b of brokers.values()) rmSync(b.dataDir, { recursive: true, force: true });
  }
  console.log(`\nran in ${Math.round((Date.now() - started) / 1000)} s; per-test output and broker logs in ${runDir}`);
  return report(results, notRun);
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`librdkafka suite: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(2);
  },
);
