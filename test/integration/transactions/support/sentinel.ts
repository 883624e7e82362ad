import { randomUUID } from 'node:crypto';
import type { ConcordatApp } from '../../../../src/runtime/index.js';
import { until } from '../../../../src/testing/index.js';
import { BranchAction, TxMessageType, commandTopic, type BranchCommand } from '../../../../src/transactions/index.js';
import { decisionMessageId } from '../../../../src/transactions/coordinator/messages.js';

/**
 * Sends the TCC participant `participant`, on `key` (hence on the partition
 * of whatever the coordinator sent for the global transaction `key`), the
 * Cancel of another global transaction that nobody began, and waits until
 * the participant handled it (its fence row CANCELLED: an empty rollback).
 * Every command for `key` published before it has been handled by then, so
 * a test can assert that those commands did no more than they should.
 *
 * The Cancel is written through `app`'s outbox, as the coordinator's commands
 * are, so the relay publishes it behind them.
 * @returns the sentinel's global transaction ID
 */
export async function tccSentinelBehind(app: ConcordatApp, participant: string, key: string, timeoutMs = 20_000): Promise<string> {
  const sentinel = randomUUID();
  await app.transaction(async (context) => {
    const command: BranchCommand = { globalTxId: sentinel, branchId: 1, participant, action: BranchAction.CANCEL, payload: {} };
    context.publish(commandTopic('TCC', participant, BranchAction.CANCEL), command, {
      key,
      type: TxMessageType.COMMAND('TCC', BranchAction.CANCEL),
      globalTxId: sentinel,
      id: decisionMessageId(sentinel, 1, BranchAction.CANCEL),
    });
  });
  await until(
    async () => {
      const rows: Array<{ state: string }> = await app.dataSource.query(`SELECT state FROM concordat.fence WHERE global_tx_id = $1`, [sentinel]);
      return rows[0]?.state === 'CANCELLED';
    },
    { timeoutMs, message: `the sentinel Cancel ${sentinel} handled by ${participant}` },
  );
  return sentinel;
}
