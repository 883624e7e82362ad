import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { startBroker, type Broker } from '../../../../src/broker/index.js';
import { LogManager } from '../../../../src/log/index.js';
import { openDatabase, type Database } from '../../../../src/persistence/index.js';
import { TransactionContext } from '../../../../src/runtime/index.js';
import { BranchAction, REPLY_TOPIC, beginSaga, beginTcc, beginTwoPhase, commandTopic, TxMode } from '../../../../src/transactions/index.js';
import { createTestDatabase, type TestDatabase } from '../../../support/database.js';
import type { CrashMode, CrashPayload } from './participants.js';

const SERVICE = fileURLToPath(new URL('./service.ts', import.meta.url));
/** Under the repository's node_modules, so that the bundle's bare imports resolve there. */
const BUNDLE_DIR = fileURLToPath(new URL('../../../../node_modules/.cache/concordat/', import.meta.url));
const PARTITIONS = 4;

export const PARTICIPANTS = ['alpha', 'beta'] as const;
export type Role = 'coordinator' | (typeof PARTICIPANTS)[number];

const MODES: Record<CrashMode, TxMode> = { tcc: TxMode.TCC, '2pc': TxMode.TWO_PHASE, saga: TxMode.SAGA };

interface Running {
  child: ChildProcess;
  exited: Promise<NodeJS.Signals | number | null>;
  output: string[];
}

/**
 * The crash tests' world: a database of its own, the log served by
 * `concordat broker` in this process (real TCP), and each service — the
 * coordinator and two participants — in a process of its own that a test
 * starts with a fault point armed (`CONCORDAT_FAULTS=<point>=kill@<n>`),
 * waits to see die by SIGKILL, and starts again.
 */
export class CrashCluster {
  private readonly running = new Map<Role, Running>();
  readonly begun: Array<{ id: string; refuse: number | undefined; deadlineRound: boolean }> = [];

  private constructor(
    readonly mode: CrashMode,
    /** alpha runs in the coordinator's process (its replies applied in its own transactions), not in one of its own. */
    readonly colocated: boolean,
    readonly db: Database,
    private readonly testDb: TestDatabase,
    private readonly logManager: LogManager,
    private readonly broker: Broker,
    private readonly dir: string,
    private readonly bundle: string,
  ) {}

  static async start(mode: CrashMode, options: { colocated?: boolean } = {}): Promise<CrashCluster> {
    const testDb = await createTestDatabase(`crash_${mode}${options.colocated === true ? '_colocated' : ''}`);
    const db = await openDatabase({ url: testDb.url, poolSize: 6 });
    await db.dataSource.query(`CREATE TABLE effects (seq bigserial, global_tx_id uuid, branch_id int, participant text, action text)`);
    const dir = await mkdtemp(join(tmpdir(), `concordat-crash-${mode}-`));
    // Short sessions, so a killed member leaves its group in about a second.
    const logManager = await LogManager.open({ dataDir: dir, groups: { minSessionTimeoutMs: 500 } });
    const topics = [REPLY_TOPIC, ...PARTICIPANTS.flatMap((p) => [commandTopic(MODES[mode], p), commandTopic(MODES[mode], p, BranchAction.ROLLBACK)])];
    for (const name of [...topics, ...topics.map((t) => `${t}.dlq`)]) {
      if (!logManager.hasTopic(name)) await logManager.createTopic(name, { partitions: PARTITIONS });
    }
    const broker = await startBroker({ host: '127.0.0.1', port: 0, dataDir: dir }, { logManager });
    return new CrashCluster(mode, options.colocated === true, db, testDb, logManager, broker, dir, await bundleService(mode));
  }

  /** Starts a service, with `fault` armed (`<point>=kill@<n>`) if given; resolves once it consumes. */
  async startService(role: Role, fault?: string): Promise<void> {
    if (this.running.has(role)) throw new Error(`${role} is already running`);
    const child = spawn(process.execPath, [this.bundle, role, this.mode], {
      env: {
        ...process.env,
        DATABASE_URL: this.testDb.url,
        BOOTSTRAP: `127.0.0.1:${this.broker.port}`,
        CONCORDAT_FAULTS: fault ?? '',
        CRASH_COLOCATED: this.colocated ? '1' : '',
        CONCORDAT_LOG_LEVEL: process.env.CRASH_LOG_LEVEL ?? 'warn',
        KAFKAJS_NO_PARTITIONER_WARNING: '1',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const output: string[] = [];
    createInterface({ input: child.stderr! }).on('line', (line) => {
      output.push(line);
      if (output.length > 200) output.shift();
    });
    const exited = new Promise<NodeJS.Signals | number | null>((resolve) => child.on('exit', (code, signal) => resolve(signal ?? code)));
    this.running.set(role, { child, exited, output });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${role} did not start within 30 s:\n${output.join('\n')}`)), 30_000);
      createInterface({ input: child.stdout! }).on('line', (line) => {
        if (line === 'ready') {
          clearTimeout(timer);
          resolve();
        }
      });
      void exited.then((how) => {
        clearTimeout(timer);
        // Armed, it may reach its point on work left from before while still starting: that is the kill the test waits for.
        if (fault !== undefined && how === 'SIGKILL') resolve();
        else reject(new Error(`${role} exited (${String(how)}) before it was ready:\n${output.join('\n')}`));
      });
    });
  }

  /** Waits until the service dies by SIGKILL at its armed fault point. */
  async expectKilled(role: Role, point: string, timeoutMs = 30_000): Promise<void> {
    const running = this.running.get(role);
    if (running === undefined) throw new Error(`${role} is not running`);
    let timer: NodeJS.Timeout | undefined;
    const how = await Promise.race([running.exited, new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)))]);
    clearTimeout(timer);
    if (how !== 'SIGKILL') throw new Error(`${role} was not killed at ${point} (${String(how)}):\n${running.output.slice(-30).join('\n')}`);
    this.running.delete(role);
  }

  /** Stops a service cleanly (SIGTERM), or kills it. */
  async stopService(role: Role, signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<void> {
    const running = this.running.get(role);
    if (running === undefined) return;
    running.child.kill(signal);
    await running.exited;
    this.running.delete(role);
  }

  /**
   * Begins `count` global transactions of the cluster's mode, each in its own
   * database transaction. TCC and 2PC have branches alpha, beta; a saga has
   * steps alpha, beta, alpha. `refuse(i)` picks the branch that votes no.
   */
  async begin(count: number, refuse: (i: number) => number | undefined, timeoutMs = 60_000, deadlineRound = false): Promise<string[]> {
    const ids: string[] = [];
    for (let i = 0; i < count; i++) {
      const payload: CrashPayload = refuse(i) === undefined ? {} : { refuse: refuse(i)! };
      const id = await this.db.transaction(async (manager) => {
        const context = new TransactionContext(manager, 'crash-test');
        const common = { name: `crash-${this.mode}`, timeoutMs };
        const txId =
          this.mode === 'tcc'
            ? await beginTcc(context, { ...common, branches: PARTICIPANTS.map((participant) => ({ participant, payload })) })
            : this.mode === '2pc'
              ? await beginTwoPhase(context, { ...common, branches: PARTICIPANTS.map((participant) => ({ participant, payload })) })
              : await beginSaga(context, {
                  ...common,
                  steps: ['alpha', 'beta', 'alpha'].map((participant) => ({
                    participant,
                    payload,
                    retry: { maxAttempts: 2, initialDelayMs: 50, maxDelayMs: 50 },
                  })),
                });
        await context.flush();
        return txId;
      });
      ids.push(id);
      this.begun.push({ id, refuse: payload.refuse, deadlineRound });
    }
    return ids;
  }

  /** Waits until every global transaction begun has ended. */
  async allEnded(timeoutMs = 90_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const [row] = await this.db.dataSource.query(
        `SELECT count(*)::int AS open FROM concordat.global_transaction WHERE id = ANY($1::uuid[]) AND ended_at IS NULL`,
        [this.begun.map((b) => b.id)],
      );
      if (row.open === 0) return;
      if (Date.now() > deadline) {
        const open = await this.db.dataSource.query(
          `SELECT id, state, reason FROM concordat.global_transaction WHERE id = ANY($1::uuid[]) AND ended_at IS NULL LIMIT 5`,
          [this.begun.map((b) => b.id)],
        );
        throw new Error(`${row.open} global transaction(s) did not end, such as ${JSON.stringify(open)}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Output of a running service, for failure messages. */
  output(role: Role): string[] {
    return this.running.get(role)?.output ?? [];
  }

  async close(): Promise<void> {
    for (const role of [...this.running.keys()]) await this.stopService(role, 'SIGKILL');
    const left: Array<{ gid: string }> = await this.db.dataSource.query(`SELECT gid FROM pg_prepared_xacts WHERE database = current_database()`);
    for (const { gid } of left) await this.db.dataSource.query(`ROLLBACK PREPARED '${gid}'`);
    await this.broker.close();
    await this.logManager.close();
    await this.db.close();
    await this.testDb.drop();
    await rm(this.dir, { recursive: true, force: true });
    await rm(this.bundle, { force: true });
  }
}

/**
 * The service, bundled once per cluster into one ES module (tsx's esbuild,
 * the same transform tsx applies): a service process then starts in about
 * half a second instead of two, which is most of a crash round. Packages
 * stay external and resolve from the repository's node_modules.
 */
async function bundleService(mode: CrashMode): Promise<string> {
  await mkdir(BUNDLE_DIR, { recursive: true });
  const outfile = join(BUNDLE_DIR, `crash-service-${process.pid}-${mode}.mjs`);
  await build({ entryPoints: [SERVICE], outfile, bundle: true, platform: 'node', format: 'esm', target: 'node20', packages: 'external', logLevel: 'error' });
  return outfile;
}
