import { InvalidArgumentError, type Command } from 'commander';
import { listDeadLetters, replayDeadLetters, type DeadLetter, type DeadLetterFilter } from '../../inbox/index.js';
import { whereOptions, withDatabase, type WhereFlags as DatabaseFlags } from '../database.js';
import { operator } from '../operator.js';
import { fail, moreRows, print, table, warn } from '../output.js';

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
 * is running on it) and `--database <name>` (default `concordat`); neither
 * command creates a database (see `../database.ts`). `--json` prints JSON
 * instead of tables.
 */
export function registerDlqCommand(program: Command): void {
  const dlq = program.command('dlq').description('list and replay dead-lettered messages');
  const where = (command: Command): Command =>
    whereOptions(command)
      .option('--consumer <group>', 'only dead letters of this consumer group')
      .option('--topic <topic>', 'only dead letters from this topic (the original, not .dlq)')
      .option('--json', 'print JSON', false);

  where(dlq.command('list').description('dead letters, oldest first'))
    .option('--all', 'include dead letters already replayed', false)
    .option('--limit <n>', 'most rows (1..100000); stderr says when more match', limit, 100)
    .action((flags: ListFlags) =>
      withDatabase(flags, async ({ db }) => {
        // One row past the limit, to tell "that is all" from "there is more".
        const found = await listDeadLetters(db.dataSource, { ...filterOf(flags), includeReplayed: flags.all, limit: flags.limit + 1 });
        const letters = found.slice(0, flags.limit);
        print(flags.json ? JSON.stringify(letters.map(toJson), null, 2) : formatList(letters));
        if (found.length > letters.length) warn(moreRows(letters.length, 'dead letters', '--consumer or --topic'));
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
      return withDatabase(flags, async ({ db }) => {
        const replayed = await replayDeadLetters(
          db.dataSource,
          { ...filterOf(flags), ...(ids.length > 0 && { ids }), limit: 100_000 },
          { force: flags.force, by: operator() },
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

interface WhereFlags extends DatabaseFlags {
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

function toJson(letter: DeadLetter): Record<string, unknown> {
  const { payload, ...rest } = letter;
  return { ...rest, payload: payload?.toString('utf8') ?? null, payloadBase64: payload?.toString('base64') ?? null };
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
