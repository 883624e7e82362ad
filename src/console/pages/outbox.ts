import type { FastifyInstance } from 'fastify';
import { outboxStatus } from '../../admin/index.js';
import { seconds, time } from '../format.js';
import type { PageContext } from '../server.js';

/** Rows counted per shard at most on each refresh (the count walks the `(shard, seq)` index). */
const BACKLOG_COUNT_MAX = 1000;

/**
 * `/outbox`: backlog and oldest age per shard, the shards' leases and the
 * relays, from `outboxStatus` (as `concordat outbox status` shows them).
 * Only shards with rows waiting are listed (the relays' table says which
 * shards each leases); the rest are counted, leased and unleased.
 */
export function registerOutboxPage(app: FastifyInstance, context: PageContext): void {
  const view = async (): Promise<Record<string, unknown>> => {
    const status = await outboxStatus(context.sources.dataSource, { backlogCountMax: BACKLOG_COUNT_MAX });
    const shown = status.shards.filter((s) => s.backlogRows > 0);
    const idle = status.shards.filter((s) => s.backlogRows === 0);
    return {
      at: time(status.at),
      backlog: `${status.backlogRows}${status.backlogCapped ? '+' : ''}`,
      oldest: status.oldestAgeMs === 0 ? '-' : seconds(status.oldestAgeMs / 1000),
      failedRows: status.failedRows,
      shards: shown.map((s) => ({
        ...s,
        backlog: `${s.backlogRows}${s.backlogCapped ? '+' : ''}`,
        oldest: s.backlogRows === 0 ? '-' : seconds(s.oldestAgeMs / 1000),
        lease: s.leaseRemainingMs === null ? '-' : seconds(s.leaseRemainingMs / 1000),
      })),
      idleLeased: idle.filter((s) => s.owner !== null).length,
      idleUnleased: idle.filter((s) => s.owner === null).length,
      relays: status.relays.map((r) => ({ ...r, started: time(r.startedAt), expires: time(r.expiresAt), shardList: compactRanges(r.shards) })),
      countMax: BACKLOG_COUNT_MAX,
    };
  };
  context.live.add('outbox', async () => context.fragment('outbox-live', await view()));
  app.get('/outbox', async (request, reply) => {
    await context.page(request, reply, 'outbox', { ...(await view()), liveSrc: '/live/outbox' });
  });
}

/** `0-63, 128, 130-131` for a sorted list of shard numbers. */
function compactRanges(values: readonly number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < values.length;) {
    let j = i;
    while (j + 1 < values.length && values[j + 1] === values[j]! + 1) j += 1;
    parts.push(i === j ? String(values[i]) : `${values[i]}-${values[j]}`);
    i = j + 1;
  }
  return parts.length === 0 ? '-' : parts.join(', ');
}
