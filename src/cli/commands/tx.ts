import { InvalidArgumentError, type Command } from 'commander';
import { ConcordatError, ErrorCode } from '../../errors.js';
import {
  GlobalTxState,
  TxMode,
  abortGlobalTx,
  describeTransition,
  endGlobalTx,
  listGlobalTxs,
  retryGlobalTx,
  showGlobalTx,
  type EndByHandState,
  type GlobalTxDetail,
  type GlobalTxSummary,
} from '../../transactions/index.js';
import { whereOptions, withDatabase, type WhereFlags as DatabaseFlags } from '../database.js';
import { operator } from '../operator.js';
import { moreRows, print, seconds, table, warn } from '../output.js';

/**
 * `concordat tx list|show|retry|abort|end`: global transactions for
 * operators, straight from the coordinator's tables.
 *
 * - `list` — by state and age, oldest first: `--state TRYING,FAILED`,
 *   `--mode 2PC`, `--older-than 30s`, `--limit 50`; flags the ones no
 *   coordinator acts on (see {@link OVERDUE_AFTER_MS});
 * - `show <id>` — the transaction, its branches and its timeline;
 * - `retry <id>` — sends a stuck phase again (phase one to branches that did
 *   not vote, a decision to branches that did not acknowledge), or reopens a
 *   FAILED transaction in its decision;
 * - `abort <id> [--reason text]` — decides CANCELLING for an undecided one;
 * - `end <id> --as cancelled|failed --reason text [--by who] [--force]` —
 *   ends any active or FAILED one by hand, sending nothing (refused while
 *   branches may still act, unless `--force`; see `endGlobalTx`).
 *
 * Where: `--url postgres://...` (default `DATABASE_URL`), or the embedded
 * PostgreSQL of `--data <dir>` (default `./.concordat`, reused if a service
 * is running on it) and `--database <name>` (default `concordat`; the demo
 * uses `order_saga`); no command creates a database (see `../database.ts`).
 * `--json` prints JSON instead of tables. Retry, abort and end write their
 * commands and outcomes to the outbox; a running app's relay sends them.
 */
export function registerTxCommand(program: Command): void {
  const tx = program.command('tx').description('inspect and operate global transactions (TCC, 2PC, sagas)');
  const where = (command: Command): Command => whereOptions(command).option('--json', 'print JSON', false);

  where(tx.command('list').description('global transactions by state and age, oldest first'))
    .option('--state <states>', `comma-separated states (${Object.values(GlobalTxState).join(', ')})`, states)
    .option('--mode <mode>', `${Object.values(TxMode).join(', ')}`, mode)
    .option('--older-than <duration>', 'only those begun at least this long ago (500ms, 30s, 5m, 2h)', duration, 0)
    .option('--limit <n>', 'most rows (1..10000); stderr says when more match', limit, 50)
    .option('--overdue-after <duration>', 'flag transactions a coordinator should have acted on this long ago', duration, OVERDUE_AFTER_MS)
    .action((flags: ListFlags) =>
      withDatabase(flags, async ({ db }) => {
        // One row past the limit, to tell "that is all" from "there is more".
        const found = await listGlobalTxs(db.dataSource.manager, {
          ...(flags.state !== undefined && { states: flags.state }),
          ...(flags.mode !== undefined && { mode: flags.mode }),
          olderThanMs: flags.olderThan,
          limit: flags.limit + 1,
        });
        const rows = found.slice(0, flags.limit);
        const overdue = rows.filter((r) => isOverdue(r.overdueSeconds, flags.overdueAfter));
        print(flags.json ? JSON.stringify(rows, null, 2) : formatList(rows, flags.overdueAfter));
        if (found.length > rows.length) warn(moreRows(rows.length, 'global transactions', '--state, --mode or --older-than'));
        if (overdue.length > 0) warn(overdueWarning(overdue.length, flags.overdueAfter));
      }),
    );

  where(tx.command('show').description("a global transaction's branches and timeline").argument('<id>', 'global transaction ID')).action(
    (id: string, flags: WhereFlags) =>
      withDatabase(flags, async ({ db }) => {
        const detail = await showGlobalTx(db.dataSource.manager, id);
        if (detail === undefined) throw notFound(id);
        print(flags.json ? JSON.stringify(detail, null, 2) : formatDetail(detail));
        if (isOverdue(detail.tx.overdueSeconds, OVERDUE_AFTER_MS)) warn(overdueWarning(1, OVERDUE_AFTER_MS));
      }),
  );

  where(tx.command('retry').description('send a stuck phase again, or reopen a FAILED transaction').argument('<id>', 'global transaction ID')).action(
    (id: string, flags: WhereFlags) =>
      withDatabase(flags, async ({ db }) => {
        const step = await retryGlobalTx(db.dataSource, id, {}, operator());
        print(flags.json ? JSON.stringify(step, null, 2) : `retried ${id}: ${describeTransition(step)}`);
      }),
  );

  where(tx.command('abort').description('roll back an undecided (TRYING) transaction').argument('<id>', 'global transaction ID'))
    .option('--reason <text>', 'why, for the record', 'no reason given')
    .action((id: string, flags: WhereFlags & { reason: string }) =>
      withDatabase(flags, async ({ db }) => {
        const step = await abortGlobalTx(db.dataSource, id, flags.reason, {}, operator());
        print(flags.json ? JSON.stringify(step, null, 2) : `aborted ${id}: ${describeTransition(step)}`);
      }),
    );

  where(
    tx
      .command('end')
      .description('end an active or FAILED transaction by hand as CANCELLED or FAILED, sending nothing to its branches')
      .argument('<id>', 'global transaction ID'),
  )
    .requiredOption('--as <state>', 'cancelled (every branch is settled) or failed (a person must look)', endState)
    .requiredOption('--reason <text>', 'why, for the timeline')
    .option('--by <who>', 'who, for the timeline (default: user@host)')
    .option('--force', 'end it although branches may still act (what they hold stays held)', false)
    .action((id: string, flags: WhereFlags & { as: EndByHandState; reason: string; by?: string; force: boolean }) =>
      withDatabase(flags, async ({ db }) => {
        const step = await endGlobalTx(db.dataSource, id, { as: flags.as, reason: flags.reason, by: flags.by ?? operator(), force: flags.force });
        print(flags.json ? JSON.stringify(step, null, 2) : `ended ${id}: ${describeTransition(step)}`);
      }),
    );
}

/**
 * Default of `tx list --overdue-after`: 60 s. A running coordinator claims
 * what is due every `scanIntervalMs` (default 250 ms, at most 60 s), so a
 * transaction due longer ago than the longest scan interval has no
 * coordinator acting on it. Why flag it here rather than warn at begin: the
 * process that begins a global transaction cannot know whether a
 * coordinator runs in another process on the same database, and nothing is
 * wrong until the deadline passes; `tx list` is where an operator looks, and
 * it reads the database clock the coordinator uses.
 */
const OVERDUE_AFTER_MS = 60_000;

function isOverdue(overdueSeconds: number | null, afterMs: number): boolean {
  return overdueSeconds !== null && overdueSeconds * 1000 >= afterMs;
}

function overdueWarning(count: number, afterMs: number): string {
  return (
    `${count} global transaction(s) overdue by more than ${seconds(afterMs / 1000)} (undecided past the deadline, or a resend not sent): ` +
    'no coordinator is acting on them. Is an app with TransactionCoordinator among its services running on this database?'
  );
}

function endState(value: string): EndByHandState {
  const upper = value.toUpperCase();
  if (upper !== GlobalTxState.CANCELLED && upper !== GlobalTxState.FAILED) throw new InvalidArgumentError(`ends by hand as cancelled or failed, not ${value}`);
  return upper;
}

interface WhereFlags extends DatabaseFlags {
  json: boolean;
}

interface ListFlags extends WhereFlags {
  state?: GlobalTxState[];
  mode?: TxMode;
  olderThan: number;
  limit: number;
  overdueAfter: number;
}

function notFound(id: string): ConcordatError {
  return new ConcordatError(`global transaction ${id} does not exist`, { code: ErrorCode.GLOBAL_TX_NOT_FOUND, context: { id } });
}

function formatList(rows: GlobalTxSummary[], overdueAfterMs: number): string {
  if (rows.length === 0) return 'no global transactions match';
  return table(
    ['ID', 'MODE', 'NAME', 'STATE', 'AGE', 'DEADLINE IN', 'OVERDUE', 'BRANCHES', 'REASON'],
    rows.map((r) => [
      r.id,
      r.mode,
      r.name,
      r.state,
      seconds(r.ageSeconds),
      r.endedAt === null ? seconds(r.deadlineInSeconds) : '-',
      isOverdue(r.overdueSeconds, overdueAfterMs) ? seconds(r.overdueSeconds!) : '',
      r.branches ?? '',
      r.reason ?? '',
    ]),
  );
}

function formatDetail({ tx, branches, events }: GlobalTxDetail): string {
  const iso = (d: Date | null): string => (d === null ? '-' : new Date(d).toISOString());
  const head = [
    `${tx.id}  ${tx.mode} '${tx.name}'  ${tx.state}${tx.decision !== null && tx.decision !== tx.state ? ` (decision ${tx.decision})` : ''}`,
    `created ${iso(tx.createdAt)}  deadline ${iso(tx.deadline)}  decided ${iso(tx.decidedAt)}  ended ${iso(tx.endedAt)}`,
    ...(tx.reason === null ? [] : [`reason: ${tx.reason}`]),
    ...(tx.endedAt === null && tx.resendAt !== null ? [`next resend ${iso(tx.resendAt)} (resent ${tx.resendCount} time(s))`] : []),
    ...(isOverdue(tx.overdueSeconds, OVERDUE_AFTER_MS) ? [`overdue: a coordinator should have acted ${seconds(tx.overdueSeconds!)} ago`] : []),
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
