import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Kafka, logLevel, type Producer } from 'kafkajs';
import { describe, expect, it, onTestFinished } from 'vitest';
import { decodeRecordBatches, TransactionState } from '../../../src/log/index.js';
import { connect, disconnect, loadRdKafka, type RdKafkaError, type RdProducer } from '../../support/rdkafka.js';
import { startTestBroker, testNeedsTools, uniqueName, type TestBroker } from './helpers/broker.js';
import { readCommittedValues } from './helpers/read-committed.js';

/**
 * Kafka transactions across broker restarts: an open transaction survives a
 * clean restart and its producer commits it afterwards; a broker SIGKILLed
 * between the two phases of EndTxn (PrepareCommit durable, no marker
 * written) completes the commit when it opens again, before it serves:
 * kafkajs's commit() fails (it does not retry EndTxn) and a new producer
 * with the same transactional ID goes on; librdkafka retries EndTxn, which
 * the reopened broker answers as done. In every case a read_committed
 * reader gets every committed record once and the offsets sent in the
 * transaction are the group's.
 */
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';
const CRASH_BROKER = fileURLToPath(new URL('./helpers/txn-crash-broker.ts', import.meta.url));

function kafka(bootstrap: string): Kafka {
  // Retries that outlast a restart: kafkajs reconnects to the same address.
  return new Kafka({
    brokers: [bootstrap],
    clientId: 'txn-restart',
    logLevel: logLevel.NOTHING,
    retry: { retries: 20, initialRetryTime: 100, maxRetryTime: 1000 },
  });
}

/** The transactional calls node-rdkafka adds to its Producer. */
interface RdTransactionalProducer extends RdProducer {
  initTransactions(timeoutMs: number, cb: (err: RdKafkaError | null) => void): void;
  beginTransaction(cb: (err: RdKafkaError | null) => void): void;
  commitTransaction(timeoutMs: number, cb: (err: RdKafkaError | null) => void): void;
}

function call(fn: (cb: (err?: RdKafkaError | null) => void) => void): Promise<void> {
  return new Promise((resolve, reject) => fn((err) => (err ? reject(err) : resolve())));
}

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'concordat-txn-restart-'));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function connectedProducer(client: Kafka, transactionalId = uniqueName('tid')): Promise<Producer> {
  const producer = client.producer({ transactionalId, idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  onTestFinished(() => producer.disconnect());
  return producer;
}

/** The broker of helpers/txn-crash-broker.ts on `dataDir`, killed with the test at the latest. */
async function startCrashBroker(dataDir: string): Promise<{ port: number; prepared: Promise<void>; exited: Promise<NodeJS.Signals | null> }> {
  const child = spawn(process.execPath, ['--import', 'tsx', CRASH_BROKER, dataDir], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
  onTestFinished(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const lines = createInterface({ input: child.stdout! });
  const stderr: string[] = [];
  child.stderr!.on('data', (chunk: Buffer) => stderr.push(chunk.toString()));
  const prepared = new Promise<void>((resolve) => lines.on('line', (line) => line === 'prepared' && resolve()));
  const port = await new Promise<number>((resolve, reject) => {
    lines.on('line', (line) => {
      const match = /^ready (\d+)$/.exec(line);
      if (match !== null) resolve(Number(match[1]));
    });
    child.on('exit', () => reject(new Error(`the crash broker exited before it was ready: ${stderr.join('')}`)));
  });
  return { port, prepared, exited };
}

async function createTopics(bootstrap: string, topics: string[]): Promise<void> {
  const admin = kafka(bootstrap).admin();
  await admin.connect();
  try {
    await admin.createTopics({ topics: topics.map((topic) => ({ topic })) });
  } finally {
    await admin.disconnect();
  }
}

async function committedOffset(t: TestBroker, groupId: string, topic: string): Promise<number> {
  return (await t.broker.logManager.groups.fetchOffsets({ groupId, topics: [{ topic, partitions: [0] }] })).topics[0]!.partitions[0]!.offset;
}

async function markerCount(t: TestBroker, topic: string): Promise<number> {
  const { records } = await t.broker.logManager.read(topic, 0, 0, { maxBytes: 1 << 20 });
  return decodeRecordBatches(records).filter((b) => b.isControl).length;
}

describe('Kafka transactions across broker restarts', () => {
  it('an open transaction survives a clean restart: the last stable offset stays at its first record, and the producer commits it afterwards', async () => {
    const dataDir = await tempDir();
    let t = await startTestBroker({ dataDir });
    const port = t.port;
    const topic = uniqueName('restart');
    await t.broker.logManager.createTopic(topic, { partitions: 1 });
    const producer = await connectedProducer(kafka(t.bootstrap));
    const tx = await producer.transaction();
    await tx.send({ topic, messages: [{ value: 'before-restart' }] });
    await tx.sendOffsets({ consumerGroupId: 'restart-group', topics: [{ topic, partitions: [{ partition: 0, offset: '1' }] }] });
    await t.broker.close();

    t = await startTestBroker({ dataDir, port });
    onTestFinished(() => t.stop());
    expect(t.broker.logManager.describePartition(topic, 0)).toMatchObject({ highWatermark: 1, lastStableOffset: 0 });
    const [txn] = t.broker.logManager.transactions.list();
    expect(txn).toMatchObject({ state: TransactionState.ONGOING, partitions: [{ topic, partition: 0 }], groups: ['restart-group'] });

    await tx.send({ topic, messages: [{ value: 'after-restart' }] });
    await tx.commit();
    expect(await readCommittedValues(t.broker.logManager, topic)).toEqual(['before-restart', 'after-restart']);
    expect(t.broker.logManager.describePartition(topic, 0)).toMatchObject({ highWatermark: 3, lastStableOffset: 3 });
    expect(await committedOffset(t, 'restart-group', topic)).toBe(1);
  });

  it('kill -9 between PrepareCommit and the markers: the reopened broker completes the commit; a new producer with the same transactional ID goes on', async () => {
    const dataDir = await tempDir();
    const { port, prepared, exited } = await startCrashBroker(dataDir);
    const bootstrap = `127.0.0.1:${port}`;
    const client = kafka(bootstrap);
    const input = uniqueName('crash-in');
    const output = uniqueName('crash-out');
    const groupId = uniqueName('crash-group');
    await createTopics(bootstrap, [input, output]);

    const transactionalId = uniqueName('crash-tid');
    const producer = await connectedProducer(client, transactionalId);
    const tx = await producer.transaction();
    await tx.send({ topic: output, messages: [{ value: 'out-0' }, { value: 'out-1' }] });
    await tx.send({ topic: output, messages: [{ value: 'out-2' }] });
    await tx.sendOffsets({ consumerGroupId: groupId, topics: [{ topic: input, partitions: [{ partition: 0, offset: '7' }] }] });
    const commit = tx.commit().then(
      () => null,
      (error: unknown) => error,
    );
    await prepared;
    expect(await exited).toBe('SIGKILL');

    const t = await startTestBroker({ dataDir, port });
    onTestFinished(() => t.stop());
    // Opening finished the prepared commit before serving: one COMMIT marker, the offsets committed.
    expect(t.broker.logManager.transactions.list()).toMatchObject([{ state: TransactionState.COMPLETE_COMMIT, partitions: [] }]);
    expect(await markerCount(t, output)).toBe(1);
    expect(await committedOffset(t, groupId, input)).toBe(7);
    // kafkajs does not retry EndTxn on a lost connection: commit() fails, retriable, and its producer is stuck in
    // COMMITTING. An application makes a new producer with the same transactional ID.
    expect(await commit).toMatchObject({ name: 'KafkaJSConnectionClosedError', retriable: true });
    expect(await readCommittedValues(t.broker.logManager, output)).toEqual(['out-0', 'out-1', 'out-2']);

    const successor = await connectedProducer(client, transactionalId);
    const next = await successor.transaction();
    await next.send({ topic: output, messages: [{ value: 'out-3' }] });
    await next.commit();
    expect(await readCommittedValues(t.broker.logManager, output)).toEqual(['out-0', 'out-1', 'out-2', 'out-3']);
  });

  it('kill -9 between PrepareCommit and the markers: librdkafka retries commit_transaction against the reopened broker, which answers it as done', async (context) => {
    testNeedsTools(context, 'node-rdkafka');
    const dataDir = await tempDir();
    const { port, prepared, exited } = await startCrashBroker(dataDir);
    const bootstrap = `127.0.0.1:${port}`;
    const output = uniqueName('rd-crash-out');
    await createTopics(bootstrap, [output]);
    const { Producer } = loadRdKafka();
    const producer = new Producer({
      'bootstrap.servers': bootstrap,
      'transactional.id': uniqueName('rd-crash-tid'),
      'reconnect.backoff.max.ms': 200,
    }) as RdTransactionalProducer;
    await connect(producer);
    producer.setPollInterval(10);
    onTestFinished(() => disconnect(producer));
    await call((cb) => producer.initTransactions(20_000, cb));
    await call((cb) => producer.beginTransaction(cb));
    for (const value of ['rd-0', 'rd-1', 'rd-2']) producer.produce(output, 0, Buffer.from(value));
    const firstCommit = call((cb) => producer.commitTransaction(30_000, cb)).then(
      () => null,
      (error: RdKafkaError & { isRetriable?: boolean }) => error,
    );
    await prepared;
    expect(await exited).toBe('SIGKILL');
    const t = await startTestBroker({ dataDir, port });
    onTestFinished(() => t.stop());

    // librdkafka either resends EndTxn itself or fails commit_transaction as retriable, to be called again.
    let outcome = await firstCommit;
    for (let attempt = 0; outcome !== null && attempt < 10; attempt++) {
      expect(outcome).toMatchObject({ isRetriable: true });
      outcome = await call((cb) => producer.commitTransaction(30_000, cb)).then(
        () => null,
        (error: RdKafkaError & { isRetriable?: boolean }) => error,
      );
    }
    expect(outcome).toBeNull();
    expect(await readCommittedValues(t.broker.logManager, output)).toEqual(['rd-0', 'rd-1', 'rd-2']);
    expect(await markerCount(t, output)).toBe(1);
  });
});
