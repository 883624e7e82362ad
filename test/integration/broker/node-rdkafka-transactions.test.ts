import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { connect, disconnect, loadRdKafka, type RdConfig, type RdConsumer, type RdKafkaError, type RdMessage, type RdProducer } from '../../support/rdkafka.js';
import { fileNeedsTools, startTestBroker, uniqueName, type TestBroker } from './helpers/broker.js';
import { readCommittedValues } from './helpers/read-committed.js';

/**
 * Kafka transactions with librdkafka (node-rdkafka's bundled librdkafka):
 * init_transactions, begin_transaction, send_offsets_to_transaction and
 * commit_transaction in a consume-transform-produce loop, abort_transaction,
 * a read_committed librdkafka consumer, and fencing by a second producer
 * with the same transactional.id (a fatal error for the first).
 */
let t: TestBroker;
const toolsPresent = fileNeedsTools('node-rdkafka');

beforeAll(async () => {
  if (!toolsPresent) return;
  t = await startTestBroker();
});

afterAll(async () => {
  await t?.stop();
});

/** The transactional calls node-rdkafka adds to its Producer. */
interface RdTransactionalProducer extends RdProducer {
  initTransactions(timeoutMs: number, cb: (err: RdKafkaError | null) => void): void;
  beginTransaction(cb: (err: RdKafkaError | null) => void): void;
  commitTransaction(timeoutMs: number, cb: (err: RdKafkaError | null) => void): void;
  abortTransaction(timeoutMs: number, cb: (err: RdKafkaError | null) => void): void;
  sendOffsetsToTransaction(
    offsets: { topic: string; partition: number; offset: number }[],
    consumer: RdConsumer,
    timeoutMs: number,
    cb: (err: RdKafkaError | null) => void,
  ): void;
}

function call(fn: (cb: (err?: RdKafkaError | null) => void) => void): Promise<void> {
  return new Promise((resolve, reject) => fn((err) => (err ? reject(err) : resolve())));
}

async function transactionalProducer(transactionalId: string, config: RdConfig = {}): Promise<RdTransactionalProducer> {
  const { Producer } = loadRdKafka();
  const producer = new Producer({
    'bootstrap.servers': t.bootstrap,
    'transactional.id': transactionalId,
    'socket.timeout.ms': 10_000,
    ...config,
  }) as RdTransactionalProducer;
  await connect(producer);
  producer.setPollInterval(10);
  onTestFinished(() => disconnect(producer));
  await call((cb) => producer.initTransactions(20_000, cb));
  return producer;
}

async function consumer(groupId: string, config: RdConfig = {}): Promise<RdConsumer> {
  const { KafkaConsumer } = loadRdKafka();
  const c = new KafkaConsumer(
    { 'bootstrap.servers': t.bootstrap, 'group.id': groupId, 'enable.auto.commit': false, 'isolation.level': 'read_committed', ...config },
    { 'auto.offset.reset': 'earliest' },
  );
  await connect(c);
  onTestFinished(() => disconnect(c));
  c.setDefaultConsumeTimeout(200);
  return c;
}

/** Consumes until `count` messages arrived (or fails after `timeoutMs`). */
async function consumeCount(c: RdConsumer, count: number, timeoutMs = 30_000): Promise<RdMessage[]> {
  const messages: RdMessage[] = [];
  const deadline = Date.now() + timeoutMs;
  while (messages.length < count) {
    if (Date.now() > deadline) throw new Error(`${messages.length} of ${count} messages within ${timeoutMs} ms`);
    messages.push(...(await new Promise<RdMessage[]>((resolve, reject) => c.consume(count - messages.length, (err, m) => (err ? reject(err) : resolve(m))))));
  }
  return messages;
}

describe.skipIf(!toolsPresent)('node-rdkafka transactional producer', () => {
  it('consume-transform-produce: each input record is transformed once, with the consumer offsets committed in the same transaction; an aborted round leaves neither', async () => {
    const input = uniqueName('ctp-in');
    const output = uniqueName('ctp-out');
    const groupId = uniqueName('ctp');
    await t.broker.logManager.createTopic(input, { partitions: 1 });
    await t.broker.logManager.createTopic(output, { partitions: 1 });
    for (let i = 0; i < 6; i++) await t.broker.logManager.appendRecords(input, 0, [{ key: null, value: Buffer.from(`in-${i}`) }]);

    const source = await consumer(groupId);
    source.assign([{ topic: input, partition: 0, offset: 0 }]);
    const producer = await transactionalProducer(uniqueName('ctp-tid'));

    // Round 1 (aborted): transform the first three, then abort.
    let batch = await consumeCount(source, 3);
    await call((cb) => producer.beginTransaction(cb));
    for (const m of batch) producer.produce(output, 0, Buffer.from(`aborted-${m.value!.toString()}`));
    await call((cb) => producer.sendOffsetsToTransaction([{ topic: input, partition: 0, offset: batch[2]!.offset + 1 }], source, 10_000, cb));
    await call((cb) => producer.abortTransaction(10_000, cb));
    const fetchOffset = async () =>
      (await t.broker.logManager.groups.fetchOffsets({ groupId, topics: [{ topic: input, partitions: [0] }] })).topics[0]!.partitions[0]!.offset;
    expect(await fetchOffset()).toBe(-1);

    // Round 2 (committed): all six from the start.
    source.assign([{ topic: input, partition: 0, offset: 0 }]);
    batch = await consumeCount(source, 6);
    await call((cb) => producer.beginTransaction(cb));
    for (const m of batch) producer.produce(output, 0, Buffer.from(`out-${m.value!.toString()}`));
    await call((cb) => producer.sendOffsetsToTransaction([{ topic: input, partition: 0, offset: batch[5]!.offset + 1 }], source, 10_000, cb));
    await call((cb) => producer.commitTransaction(10_000, cb));

    expect(await fetchOffset()).toBe(6);
    expect(await readCommittedValues(t.broker.logManager, output)).toEqual(['out-in-0', 'out-in-1', 'out-in-2', 'out-in-3', 'out-in-4', 'out-in-5']);
    // A read_committed librdkafka consumer of the output gets the six committed records and none of the aborted ones.
    const reader = await consumer(uniqueName('reader'));
    reader.assign([{ topic: output, partition: 0, offset: 0 }]);
    const read = await consumeCount(reader, 6);
    expect(read.map((m) => m.value!.toString())).toEqual(['out-in-0', 'out-in-1', 'out-in-2', 'out-in-3', 'out-in-4', 'out-in-5']);
    // The group resumes where the transaction committed.
    const resumed = await consumer(groupId);
    resumed.subscribe([input]);
    await t.broker.logManager.appendRecords(input, 0, [{ key: null, value: Buffer.from('in-6') }]);
    expect((await consumeCount(resumed, 1)).map((m) => m.value!.toString())).toEqual(['in-6']);
  });

  it('a second producer with the same transactional.id fences the first: its transaction is aborted and it gets a fatal fencing error', async () => {
    const topic = uniqueName('fence');
    await t.broker.logManager.createTopic(topic, { partitions: 1 });
    const transactionalId = uniqueName('fence-tid');
    const first = await transactionalProducer(transactionalId);
    await call((cb) => first.beginTransaction(cb));
    first.produce(topic, 0, Buffer.from('zombie'));
    await call((cb) => first.flush(10_000, cb));

    const second = await transactionalProducer(transactionalId);
    const commit = call((cb) => first.commitTransaction(10_000, cb));
    await expect(commit).rejects.toMatchObject({ message: expect.stringMatching(/fenced|epoch/i) });

    await call((cb) => second.beginTransaction(cb));
    second.produce(topic, 0, Buffer.from('winner'));
    await call((cb) => second.commitTransaction(10_000, cb));
    expect(await readCommittedValues(t.broker.logManager, topic)).toEqual(['winner']);
  });
});
