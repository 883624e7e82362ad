import { InvalidArgumentError, type Command } from 'commander';
import { outboxStatus, type OutboxStatus } from '../../admin/index.js';
import { whereOptions, withDatabase, type WhereFlags } from '../database.js';
import { print, seconds, table } from '../output.js';

/**
 * `concordat outbox status`: the outbox's backlog and oldest age per shard,
 * the shards' leases and the relays with the shards they hold (from
 * `src/admin/outbox.ts`; each shard's count stops at `--count-max`, so a
 * huge backlog is never scanned). The table shows the shards with a backlog;
 * `--all-shards` shows all 256. Where the database is: as `tx` and `dlq`
 * (`--url`, `DATABASE_URL`, or the embedded PostgreSQL of `--data`).
 * `--json` prints OutboxStatus (every shard; dates as ISO strings).
 */
export function registerOutboxCommand(program: Command): void {
  const outbox = program.command('outbox').description('see the transactional outbox');
  whereOptions(outbox.command('status').description('backlog and oldest age per shard, relays and their leases'))
    .option('--all-shards', 'list every shard, not only those with a backlog', false)
    .option('--count-max <n>', 'rows counted per shard at most (1..10000000)', countMax, 10_000)
    .option('--json', 'print JSON', false)
    .action((flags: StatusFlags) =>
      withDatabase(flags, async ({ db }) => {
        const status = await outboxStatus(db.dataSource, { backlogCountMax: flags.countMax });
        print(flags.json ? JSON.stringify(status, null, 2) : formatStatus(status, flags.allShards));
      }),
    );
}

interface StatusFlags extends WhereFlags {
  allShards: boolean;
  countMax: number;
  json: boolean;
}

function formatStatus(status: OutboxStatus, allShards: boolean): string {
  const atLeast = status.backlogCapped ? 'at least ' : '';
  const alive = status.relays.filter((r) => r.alive).length;
  const head =
    `outbox: ${atLeast}${status.backlogRows} row(s) waiting, oldest ${seconds(status.oldestAgeMs / 1000)}; ` +
    `${status.failedRows} failed row(s); ${alive} live relay(s)`;
  const shown = status.shards.filter((s) => allShards || s.backlogRows > 0);
  const shards =
    shown.length === 0
      ? 'no shard has a backlog'
      : table(
          ['SHARD', 'BACKLOG', 'OLDEST-AGE', 'OWNER', 'LEASE-LEFT', 'EPOCH'],
          shown.map((s) => [
            String(s.shard),
            `${s.backlogCapped ? '>=' : ''}${s.backlogRows}`,
            s.backlogRows === 0 ? '-' : seconds(s.oldestAgeMs / 1000),
            s.owner ?? '-',
            s.leaseRemainingMs === null ? '-' : seconds(s.leaseRemainingMs / 1000),
            String(s.epoch),
          ]),
        );
  const relays =
    status.relays.length === 0
      ? 'no relays'
      : table(
          ['RELAY', 'ALIVE', 'STARTED-AT', 'EXPIRES-AT', 'SHARDS'],
          status.relays.map((r) => [r.relayId, r.alive ? 'yes' : 'no', r.startedAt.toISOString(), r.expiresAt.toISOString(), ranges(r.shards)]),
        );
  return [head, '', shards, '', relays].join('\n');
}

/** `0-127,200` for ascending shard numbers; `-` for none. */
function ranges(shards: number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < shards.length;) {
    let j = i;
    while (j + 1 < shards.length && shards[j + 1] === shards[j]! + 1) j++;
    parts.push(i === j ? String(shards[i]) : `${shards[i]}-${shards[j]}`);
    i = j + 1;
  }
  return parts.join(',') || '-';
}

function countMax(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > 10_000_000) throw new InvalidArgumentError(`not a count in 1..10000000: ${value}`);
  return n;
}
