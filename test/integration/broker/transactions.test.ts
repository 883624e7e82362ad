import { Kafka, logLevel, type Consumer, type Producer } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { Reader } from '../../../src/broker/codec/reader.js';
import { Writer } from '../../../src/broker/codec/writer.js';
import { decodeRecordBatches, encodeRecordBatch, IsolationLevel, TransactionState } from '../../../src/log/index.js';
import { startTestBroker, uniqueName, type TestBroker } from './helpers/broker.js';
import { RawClient } from './helpers/raw-client.js';

/**
 * Kafka transactions (KIP-98) with kafkajs 2.2.4 against `concordat broker`:
 * a transactional producer's commits and aborts as read_committed and
 * read_uncommitted consumers see them, the last stable offset, offsets
 * committed in a transaction (sendOffsets), fencing by a second producer
 * with the same transactional ID, and transaction timeouts.
 */
let t: TestBroker;

beforeAll(async () => {
  t = await startTestBroker({ log: { transactions: { abortTimedOutTransactionsIntervalMs: 50 } } });
});

afterAll(async () => {
  await t?.stop();
});

process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';

function kafka(): Kafka {
  return new Kafka({ brokers: [t.bootstrap], clientId: 'txn-test', logLevel: logLevel.NOTHING, retry: { retries: 3, initialRetryTime: 100 } });
}

async function createTopic(partitions = 1): Promise<string> {
  const topic = uniqueName('txn');
  await t.broker.logManager.createTopic(topic, { partitions });
  return topic;
}

async function transactionalProducer(transactionalId = uniqueName('tid'), options: { transactionTimeout?: number } = {}): Promise<Producer> {
  const producer = kafka().producer({ transactionalId, idempotent: true, maxInFlightRequests: 1, ...options });
  await producer.connect();
  onTestFinished(() => producer.disconnect());
  return producer;
}

/**
 * Consumes `topic` from the beginning until `sentinel` (a value produced
 * last, outside any transaction, on every partition) arrived from each
 * partition, and returns the other values.
 * The sentinel makes "nothing else arrives" checkable without waiting for
 * time: with read_committed it arrives only after every transaction before
 * it ended.
 */
async function consumeUntil(topic: string, sentinel: string, readUncommitted = false): Promise<string[]> {
  const partitions = t.broker.logManager.partitionCount(topic)!;
  const sentinelsSeen = new Set<number>();
  const consumer: Consumer = kafka().consumer({ groupId: uniqueName('reader'), maxWaitTimeInMs: 100, readUncommitted });
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    const values: string[] = [];
    await new Promise<void>((resolve) => {
      void consumer.run({
        eachMessage: async ({ partition, message }) => {
          const value = message.value!.toString();
          if (value !== sentinel) values.push(value);
          else if (sentinelsSeen.add(partition).size === partitions) resolve();
        },
      });
    });
    return values;
  } finally {
    await consumer.disconnect();
  }
}

/** Appends the same sentinel value to every partition of `topic` (see {@link consumeUntil}). */
async function produceSentinel(topic: string): Promise<string> {
  const sentinel = uniqueName('sentinel');
  for (let partition = 0; partition < t.broker.logManager.partitionCount(topic)!; partition++) {
    await t.broker.logManager.appendRecords(topic, partition, [{ key: null, value: Buffer.from(sentinel) }]);
  }
  return sentinel;
}

/** Control batches (transaction markers) of a partition: [type, producer ID]. */
async function markers(topic: string, partition = 0): Promise<string[]> {
  const { records } = await t.broker.logManager.read(topic, partition, 0, { maxBytes: 10 * 1024 * 1024 });
  return decodeRecordBatches(records)
    .filter((b) => b.isControl)
    .map((b) => `${b.records[0]!.key!.readInt16BE(2) === 1 ? 'COMMIT' : 'ABORT'}:${b.producerId}`);
}

describe('kafkajs transactional producer', () => {
  it('commit and abort: read_committed consumers get every committed record once and no aborted one; read_uncommitted ones get both', async () => {
    const topic = await createTopic(2);
    const producer = await transactionalProducer();
    let tx = await producer.transaction();
    await tx.send({
      topic,
      messages: [
        { key: 'a', value: 'aborted-1', partition: 0 },
        { key: 'b', value: 'aborted-2', partition: 1 },
      ],
    });
    await tx.abort();
    tx = await producer.transaction();
    await tx.send({
      topic,
      messages: [
        { key: 'a', value: 'committed-1', partition: 0 },
        { key: 'b', value: 'committed-2', partition: 1 },
      ],
    });
    await tx.send({ topic, messages: [{ key: 'c', value: 'committed-3', partition: 0 }] });
    await tx.commit();
    const sentinel = await produceSentinel(topic);

    expect((await consumeUntil(topic, sentinel)).sort()).toEqual(['committed-1', 'committed-2', 'committed-3']);
    expect((await consumeUntil(topic, sentinel, true)).sort()).toEqual(['aborted-1', 'aborted-2', 'committed-1', 'committed-2', 'committed-3']);
    // One marker per partition and transaction, in the partition's log.
    const { producerId } = t.broker.logManager.transactions.list().find((d) => d.state === TransactionState.COMPLETE_COMMIT && d.producerId >= 0)!;
    expect(await markers(topic, 0)).toEqual([`ABORT:${producerId}`, `COMMIT:${producerId}`]);
    expect(await markers(topic, 1)).toEqual([`ABORT:${producerId}`, `COMMIT:${producerId}`]);
  });

  it('an open transaction holds the last stable offset: read_committed reads stop at its first record until it ends', async () => {
    const topic = await createTopic();
    await t.broker.logManager.appendRecords(topic, 0, [{ key: null, value: Buffer.from('before') }]);
    const producer = await transactionalProducer();
    const tx = await producer.transaction();
    await tx.send({ topic, messages: [{ value: 'in-transaction' }] });
    await t.broker.logManager.appendRecords(topic, 0, [{ key: null, value: Buffer.from('after') }]);

    expect(t.broker.logManager.describePartition(topic, 0)).toMatchObject({ highWatermark: 3, lastStableOffset: 1 });
    const committedRead = await t.broker.logManager.read(topic, 0, 0, { maxBytes: 1 << 20, isolationLevel: IsolationLevel.READ_COMMITTED });
    expect(decodeRecordBatches(committedRead.records).flatMap((b) => b.records.map((r) => r.value!.toString()))).toEqual(['before']);
    expect((await t.broker.logManager.read(topic, 0, 1, { maxBytes: 1 << 20, isolationLevel: IsolationLevel.READ_COMMITTED })).records.length).toBe(0);
    const admin = kafka().admin();
    await admin.connect();
    onTestFinished(() => admin.disconnect());
    // ListOffsets with isolation_level 1 (kafkajs's default) answers the last stable offset as the latest.
    expect(await admin.fetchTopicOffsets(topic)).toMatchObject([{ partition: 0, offset: '1', high: '1' }]);

    await tx.commit();
    expect(t.broker.logManager.describePartition(topic, 0)).toMatchObject({ highWatermark: 4, lastStableOffset: 4 });
    const sentinel = await produceSentinel(topic);
    expect(await consumeUntil(topic, sentinel)).toEqual(['before', 'in-transaction', 'after']);
  });

  it('an aborted transaction is listed to read_committed fetches that overlap it, and its records are dropped between committed ones', async () => {
    const topic = await createTopic();
    const producer = await transactionalProducer();
    const other = await transactionalProducer();
    const keep = await producer.transaction();
    const drop = await other.transaction();
    // Interleaved in the partition: keep-1, drop-1, keep-2, drop-2, then the markers.
    await keep.send({ topic, messages: [{ value: 'keep-1' }] });
    await drop.send({ topic, messages: [{ value: 'drop-1' }] });
    await keep.send({ topic, messages: [{ value: 'keep-2' }] });
    await drop.send({ topic, messages: [{ value: 'drop-2' }] });
    await drop.abort();
    await keep.commit();
    const read = await t.broker.logManager.read(topic, 0, 0, { maxBytes: 1 << 20, isolationLevel: IsolationLevel.READ_COMMITTED });
    const dropId = t.broker.logManager.transactions.list().find((d) => d.state === TransactionState.COMPLETE_ABORT)!.producerId;
    expect(read.abortedTransactions).toEqual([{ producerId: dropId, firstOffset: 1 }]);
    // A read that starts after the aborted transaction's marker is not told about it.
    expect((await t.broker.logManager.read(topic, 0, 5, { maxBytes: 1 << 20, isolationLevel: IsolationLevel.READ_COMMITTED })).abortedTransactions).toEqual([]);
    const sentinel = await produceSentinel(topic);
    expect(await consumeUntil(topic, sentinel)).toEqual(['keep-1', 'keep-2']);
  });

  it("sendOffsets: the offsets become the group's committed offsets when the transaction commits, never when it aborts", async () => {
    const input = await createTopic();
    const output = await createTopic();
    const groupId = uniqueName('ctp');
    for (const value of ['in-0', 'in-1', 'in-2']) await t.broker.logManager.appendRecords(input, 0, [{ key: null, value: Buffer.from(value) }]);
    const producer = await transactionalProducer();
    const committed = async () =>
      (await t.broker.logManager.groups.fetchOffsets({ groupId, topics: [{ topic: input, partitions: [0] }] })).topics[0]!.partitions[0]!.offset;

    const aborted = await producer.transaction();
    await aborted.send({ topic: output, messages: [{ value: 'out-aborted' }] });
    await aborted.sendOffsets({ consumerGroupId: groupId, topics: [{ topic: input, partitions: [{ partition: 0, offset: '2' }] }] });
    await aborted.abort();
    expect(await committed()).toBe(-1);

    const tx = await producer.transaction();
    await tx.send({ topic: output, messages: [{ value: 'out-0' }, { value: 'out-1' }, { value: 'out-2' }] });
    await tx.sendOffsets({ consumerGroupId: groupId, topics: [{ topic: input, partitions: [{ partition: 0, offset: '3' }] }] });
    // Held by the coordinator until the commit.
    expect(await committed()).toBe(-1);
    await tx.commit();
    expect(await committed()).toBe(3);
    const admin = kafka().admin();
    await admin.connect();
    onTestFinished(() => admin.disconnect());
    expect(await admin.fetchOffsets({ groupId, topics: [input] })).toEqual([{ topic: input, partitions: [{ partition: 0, offset: '3', metadata: null }] }]);
    const sentinel = await produceSentinel(output);
    expect(await consumeUntil(output, sentinel)).toEqual(['out-0', 'out-1', 'out-2']);
  });

  it('a second producer with the same transactional ID fences the first: its open transaction is aborted, its writes and commit refused', async () => {
    const topic = await createTopic();
    const transactionalId = uniqueName('tid');
    const first = await transactionalProducer(transactionalId);
    const zombie = await first.transaction();
    await zombie.send({ topic, messages: [{ value: 'zombie-1' }] });
    const before = t.broker.logManager.transactions.describe(transactionalId)!;
    expect(before).toMatchObject({ state: TransactionState.ONGOING, producerEpoch: 0 });

    const second = await transactionalProducer(transactionalId);
    // kafkajs sends InitProducerId with its first transaction.
    const tx = await second.transaction();
    // The open transaction was aborted with the epoch bumped (its markers fence epoch 0), then bumped again for the new producer.
    expect(t.broker.logManager.transactions.describe(transactionalId)).toMatchObject({
      state: TransactionState.EMPTY,
      producerId: before.producerId,
      producerEpoch: 2,
    });
    expect(await markers(topic)).toEqual([`ABORT:${before.producerId}`]);

    await expect(zombie.send({ topic, messages: [{ value: 'zombie-2' }] })).rejects.toMatchObject({ type: 'INVALID_PRODUCER_EPOCH' });
    await expect(zombie.commit()).rejects.toMatchObject({ type: 'INVALID_PRODUCER_EPOCH' });

    await tx.send({ topic, messages: [{ value: 'second-1' }] });
    await tx.commit();
    const sentinel = await produceSentinel(topic);
    expect(await consumeUntil(topic, sentinel)).toEqual(['second-1']);
  });

  it('a transaction open longer than transaction.timeout.ms is aborted by the broker, and its producer fenced', async () => {
    const topic = await createTopic();
    const transactionalId = uniqueName('tid');
    const producer = await transactionalProducer(transactionalId, { transactionTimeout: 1000 });
    const tx = await producer.transaction();
    await tx.send({ topic, messages: [{ value: 'timed-out' }] });
    expect(t.broker.logManager.describePartition(topic, 0).lastStableOffset).toBe(0);
    await expect
      .poll(() => t.broker.logManager.transactions.describe(transactionalId)?.state, { timeout: 10_000, interval: 50 })
      .toBe(TransactionState.COMPLETE_ABORT);
    expect(t.broker.logManager.describePartition(topic, 0)).toMatchObject({ highWatermark: 2, lastStableOffset: 2 });
    await expect(tx.commit()).rejects.toMatchObject({ type: 'INVALID_PRODUCER_EPOCH' });
    const sentinel = await produceSentinel(topic);
    expect(await consumeUntil(topic, sentinel)).toEqual([]);
  });

  it('InitProducerId refuses a transaction timeout above transactionMaxTimeoutMs', async () => {
    const producer = kafka().producer({ transactionalId: uniqueName('tid'), idempotent: true, maxInFlightRequests: 1, transactionTimeout: 3_600_000 });
    await producer.connect();
    onTestFinished(() => producer.disconnect());
    await expect(producer.transaction()).rejects.toMatchObject({ type: 'INVALID_TRANSACTION_TIMEOUT' });
  });

  it("Produce refuses a transactional batch outside the producer's transaction (INVALID_TXN_STATE): it would hold the last stable offset for good", async () => {
    const topic = await createTopic();
    const transactionalId = uniqueName('tid');
    const { producerId, producerEpoch } = await t.broker.logManager.transactions.initProducerId(transactionalId, 60_000);
    const client = await RawClient.connect(t.port);
    onTestFinished(() => client.close());
    const produce = async (id: string | null, correlation: number) => {
      const batch = encodeRecordBatch([{ key: null, value: Buffer.from('stray') }], { producerId, producerEpoch, baseSequence: 0, transactional: true });
      const body = new Writer().nullableString(id).int16(-1).int32(5000);
      body.array([topic], (tw, name) => tw.string(name).array([0], (pw, index) => pw.int32(index).bytes(batch)));
      const r = new Reader(await client.request(0, 7, body.toBuffer(), correlation));
      r.int32(); // topics
      r.string();
      r.int32(); // partitions
      return [r.int32(), r.int16()];
    };
    // The partition was never added with AddPartitionsToTxn; and no transactional_id at all.
    expect(await produce(transactionalId, 1)).toEqual([0, 48]);
    expect(await produce(null, 2)).toEqual([0, 48]);
    expect(t.broker.logManager.describePartition(topic, 0)).toMatchObject({ highWatermark: 0, lastStableOffset: 0 });
  });
});
