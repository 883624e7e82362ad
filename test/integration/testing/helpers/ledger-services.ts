import { newMessageId } from '../../../../src/messaging/index.js';
import { OnMessage, Service, runTransaction, type MessageContext } from '../../../../src/runtime/index.js';
import { EffectLedger } from '../../../../src/testing/index.js';
import type { DataSource } from 'typeorm';

/**
 * The handlers under test in the exactly-once suite: `ledger` records each
 * entry and publishes `ledger.recorded` (so outgoing messages from a handler
 * are covered too); `audit` records each of those. Both record their effect
 * in their own transaction through an EffectLedger.
 */
export const LEDGER_TABLE = 'effects';
export const ENTRIES = 'ledger.entries';
export const RECORDED = 'ledger.recorded';

export interface Entry {
  key: string;
  seq: number;
}

@Service('ledger')
export class LedgerService {
  @OnMessage(ENTRIES, { retry: { maxAttempts: 5, strategy: 'fixed', initialDelayMs: 10 } })
  async record(context: MessageContext<Entry>): Promise<void> {
    const { key, seq } = context.data;
    await new EffectLedger(context.manager.dataSource, LEDGER_TABLE).record(context.manager, { consumer: 'ledger', key, seq });
    context.publish(RECORDED, { key, seq }, { key });
  }
}

@Service('audit')
export class AuditService {
  @OnMessage(RECORDED, { retry: { maxAttempts: 5, strategy: 'fixed', initialDelayMs: 10 } })
  async audit(context: MessageContext<Entry>): Promise<void> {
    const { key, seq } = context.data;
    await new EffectLedger(context.manager.dataSource, LEDGER_TABLE).record(context.manager, { consumer: 'audit', key, seq });
  }
}

/**
 * Publishes `perKey` entries for each of `keys` keys through the outbox,
 * `batch` messages per transaction, round-robin over keys so that keys
 * interleave. Message IDs are deterministic (`<run>-<key>-<seq>`), so a
 * transaction retried after an unknown outcome cannot create a second
 * message. Returns what each consumer should see.
 */
export async function produce(
  dataSource: DataSource,
  run: string,
  keys: number,
  perKey: number,
  options: { batch?: number; retryUntilMs?: number; firstSeq?: number } = {},
): Promise<Record<string, Record<string, number>>> {
  const entries: Entry[] = [];
  const firstSeq = options.firstSeq ?? 1;
  const lastSeq = firstSeq + perKey - 1;
  for (let seq = firstSeq; seq <= lastSeq; seq++) for (let k = 0; k < keys; k++) entries.push({ key: `${run}-k${k}`, seq });
  const batch = options.batch ?? 10;
  for (let i = 0; i < entries.length; i += batch) {
    const slice = entries.slice(i, i + batch);
    for (const deadline = Date.now() + (options.retryUntilMs ?? 0); ;) {
      try {
        await runTransaction(dataSource, 'producer', async (context) => {
          for (const entry of slice) context.publish(ENTRIES, entry, { key: entry.key, id: `${run}-${entry.key}-${entry.seq}` });
        });
        break;
      } catch (error) {
        if (Date.now() > deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  }
  const perConsumer: Record<string, number> = {};
  for (let k = 0; k < keys; k++) perConsumer[`${run}-k${k}`] = lastSeq;
  return { ledger: { ...perConsumer }, audit: { ...perConsumer } };
}

/** Keeps `newMessageId` reachable for tests that want random IDs. */
export { newMessageId };
