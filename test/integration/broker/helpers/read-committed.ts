import { decodeRecordBatches, IsolationLevel, type LogManager } from '../../../../src/log/index.js';

/**
 * The record values of one partition as a read_committed client sees them,
 * reading the log directly: batches below the last stable offset, minus the
 * aborted transactions' batches the read lists (each producer's
 * transactional batches from the listed first offset until its ABORT
 * marker), minus control batches. The clients' own rule (KIP-98), so a test
 * can check what the broker serves without a consumer group.
 */
export async function readCommittedValues(logManager: LogManager, topic: string, partition = 0): Promise<string[]> {
  const result = await logManager.read(topic, partition, 0, { maxBytes: 16 * 1024 * 1024, isolationLevel: IsolationLevel.READ_COMMITTED });
  const pending = [...(result.abortedTransactions ?? [])];
  const aborting = new Set<number>();
  const values: string[] = [];
  for (const batch of decodeRecordBatches(result.records)) {
    while (pending.length > 0 && pending[0]!.firstOffset <= batch.baseOffset) aborting.add(pending.shift()!.producerId);
    if (batch.isControl) {
      if (batch.records[0]!.key!.readInt16BE(2) === 0) aborting.delete(batch.producerId);
      continue;
    }
    if (batch.isTransactional && aborting.has(batch.producerId)) continue;
    values.push(...batch.records.map((r) => r.value!.toString()));
  }
  return values;
}
