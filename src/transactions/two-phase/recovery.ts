import { createLogger } from '../../observability/index.js';
import type { ConcordatApp } from '../../runtime/index.js';
import { BranchAction, type BranchCommand } from '../coordinator/messages.js';
import { reply } from '../participant/reply.js';
import { parseGid, preparedGids } from './gid.js';

/** Most prepared transactions one start-up recovery asks about (PostgreSQL's max_prepared_transactions bounds them anyway). */
const RECOVERY_BATCH_MAX = 10_000;

/**
 * Start-up recovery of a 2PC participant (XA's `xa_recover`): every prepared
 * transaction of `participant` in this database is in doubt — it voted, or
 * crashed before its vote went out — and only the coordinator knows the
 * decision. The participant votes yes again for each, in one transaction
 * through the outbox; the coordinator answers a repeated vote with its
 * decision (commit or rollback, to that branch), records a first vote as
 * usual, and presumes abort for a global transaction it does not know.
 * The usual commit and rollback handlers then resolve them.
 *
 * @returns how many prepared transactions were in doubt.
 */
export async function recoverPrepared(app: ConcordatApp, participant: string): Promise<number> {
  const gids = (await preparedGids(app.dataSource.manager, participant)).slice(0, RECOVERY_BATCH_MAX);
  if (gids.length === 0) return 0;
  await app.transaction(async (context) => {
    for (const gid of gids) {
      const parsed = parseGid(gid);
      if (parsed === undefined) continue;
      const command: BranchCommand = { ...parsed, action: BranchAction.PREPARE, payload: null };
      reply(context, command, true);
    }
  });
  createLogger('xa-recovery', { participant }).info({ inDoubt: gids.length, gids }, 'prepared transactions in doubt: asked the coordinator for its decision');
  return gids.length;
}
