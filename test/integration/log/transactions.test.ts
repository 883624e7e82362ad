import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConcordatError } from '../../../src/errors.js';
import { encodeRecordBatch, IsolationLevel, TransactionState, type LogManager } from '../../../src/log/index.js';
import { openLog, tempDir } from './helpers.js';

/**
 * The log's side of Kafka transactions (KIP-98), without the wire: the
 * coordinator's markers in the partition, the last stable offset, the
 * aborted-transaction list of read_committed reads, fencing by a marker's
 * epoch, and all of it rebuilt on open, from the producer snapshot or, when
 * the snapshots are gone, from the log itself.
 */

/** A transactional batch of `values`. */
function txBatch(producerId: number, epoch: number, sequence: number, values: string[]): Buffer {
  return encodeRecordBatch(
    values.map((v) => ({ key: null, value: Buffer.from(v) })),
    { producerId, producerEpoch: epoch, baseSequence: sequence, transactional: true },
  );
}

async function begin(logManager: LogManager, transactionalId: string, topic: string) {
  const { producerId, producerEpoch } = await logManager.transactions.initProducerId(transactionalId, 60_000);
  await logManager.transactions.addPartitions(transactionalId, producerId, producerEpoch, [{ topic, partition: 0 }]);
  return { producerId, producerEpoch };
}

async function committedRead(logManager: LogManager, topic: string, from = 0) {
  return logManager.read(topic, 0, from, { maxBytes: 1 << 20, isolationLevel: IsolationLevel.READ_COMMITTED });
}

/** What a log with one aborted, one committed and one open transaction looks like (see the first test). */
async function threeTransactions(logManager: LogManager) {
  await logManager.createTopic('t', { partitions: 1 });
  const a = await begin(logManager, 'aborts', 't');
  const c = await begin(logManager, 'commits', 't');
  const o = await begin(logManager, 'stays-open', 't');
  await logManager.append('t', 0, txBatch(a.producerId, a.producerEpoch, 0, ['a0'])); // 0
  await logManager.append('t', 0, txBatch(c.producerId, c.producerEpoch, 0, ['c0'])); // 1
  await logManager.append('t', 0, txBatch(a.producerId, a.producerEpoch, 1, ['a1'])); // 2
  await logManager.transactions.endTransaction('aborts', a.producerId, a.producerEpoch, false); // ABORT marker at 3
  await logManager.transactions.endTransaction('commits', c.producerId, c.producerEpoch, true); // COMMIT marker at 4
  await logManager.append('t', 0, txBatch(o.producerId, o.producerEpoch, 0, ['o0'])); // 5
  return { a, c, o };
}

describe('log transactions', () => {
  it('markers close transactions; the LSO stops at the open one; read_committed reads list the aborted one', async () => {
    const logManager = await openLog(await tempDir());
    const { a } = await threeTransactions(logManager);
    expect(logManager.describePartition('t', 0)).toMatchObject({ highWatermark: 6, lastStableOffset: 5 });
    const read = await committedRead(logManager, 't');
    expect(read).toMatchObject({ highWatermark: 6, lastStableOffset: 5, abortedTransactions: [{ producerId: a.producerId, firstOffset: 0 }] });
    // Everything below the LSO, markers included; nothing of the open transaction.
    expect(read.records.readBigInt64BE(0)).toBe(0n);
    expect((await committedRead(logManager, 't', 5)).records.length).toBe(0);
    // read_uncommitted reads go to the high watermark and list nothing.
    const uncommitted = await logManager.read('t', 0, 5, { maxBytes: 1 << 20 });
    expect(uncommitted.records.length).toBeGreaterThan(0);
    expect(uncommitted.abortedTransactions).toBeUndefined();
    await logManager.close();
  });

  it("an ABORT marker fences the producer's older epoch in the partition", async () => {
    const logManager = await openLog(await tempDir());
    await logManager.createTopic('f', { partitions: 1 });
    const first = await begin(logManager, 'fenced', 'f');
    await logManager.append('f', 0, txBatch(first.producerId, first.producerEpoch, 0, ['x']));
    // A new producer with the same transactional ID: the open transaction is aborted at epoch + 1.
    const second = await logManager.transactions.initProducerId('fenced', 60_000);
    expect(second).toEqual({ producerId: first.producerId, producerEpoch: first.producerEpoch + 2 });
    const error = await logManager.append('f', 0, txBatch(first.producerId, first.producerEpoch, 1, ['zombie'])).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConcordatError);
    expect(error).toMatchObject({ code: 'INVALID_PRODUCER_EPOCH' });
    await expect(logManager.transactions.addPartitions('fenced', first.producerId, first.producerEpoch, [{ topic: 'f', partition: 0 }])).rejects.toMatchObject({
      code: 'PRODUCER_FENCED',
    });
    await logManager.close();
  });

  for (const how of ['after a clean close (from the producer snapshot)', 'without snapshots or recovery points (replayed from the log)']) {
    it(`state survives reopening ${how}`, async () => {
      const dir = await tempDir();
      let logManager = await openLog(dir);
      const { a, o } = await threeTransactions(logManager);
      await logManager.close();
      if (how.startsWith('without')) {
        for (const name of await readdir(join(dir, 't-0'))) if (name.endsWith('.snapshot')) await rm(join(dir, 't-0', name));
        await rm(join(dir, 'recovery-point-offset-checkpoint'));
      }
      logManager = await openLog(dir);
      expect(logManager.describePartition('t', 0)).toMatchObject({ highWatermark: 6, lastStableOffset: 5 });
      expect((await committedRead(logManager, 't')).abortedTransactions).toEqual([{ producerId: a.producerId, firstOffset: 0 }]);
      expect(logManager.transactions.describe('stays-open')).toMatchObject({ state: TransactionState.ONGOING, partitions: [{ topic: 't', partition: 0 }] });
      // The open transaction goes on and commits after the restart.
      await logManager.append('t', 0, txBatch(o.producerId, o.producerEpoch, 1, ['o1']));
      await logManager.transactions.endTransaction('stays-open', o.producerId, o.producerEpoch, true);
      expect(logManager.describePartition('t', 0)).toMatchObject({ highWatermark: 8, lastStableOffset: 8 });
      await logManager.close();
    });
  }
});
