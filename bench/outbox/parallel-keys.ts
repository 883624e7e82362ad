import { join } from 'node:path';
import { setTimeout as ioWait } from 'node:timers/promises';
import { Dispatcher, exploreHandlers, OnMessage, Service, type MessageContext } from '../../src/runtime/index.js';
import { EmbeddedTransport, type Delivery, type Subscription } from '../../src/transport/index.js';
import { cpuPerOp, cpuText, median, n, sleep, type BenchEnv, type Row } from './support.js';

const TOPIC = 'bench.parallel-keys';
/** The handler's I/O per message, in ms: `await setTimeout(5)`, standing for a call to another system (not the database). */
const IO_MS = 5;
const PER_PARTITION = 16;
const KEYS = 1024;
const BATCH_RECORDS_MAX = 32;

/** A handler service of its own consumer group (each drain reads the topic from the start): 5 ms of I/O, then one insert in its transaction. */
function slowService(group: string, perPartition: number): Function {
  @Service(group)
  class Slow {
    @OnMessage(TOPIC, { concurrency: { perPartition } })
    async handle(context: MessageContext<{ i: number }>): Promise<void> {
      await ioWait(IO_MS);
      await context.manager.query(`INSERT INTO bench.effects (message_id, n) VALUES ($1, $2)`, [context.message.id, context.data.i]);
    }
  }
  return Slow;
}

/**
 * 6. Parallel keys within a partition: an exactly-once handler with 5 ms of
 * I/O (`await setTimeout(5)`, then one insert in its transaction) draining
 * a backlog of one partition with 1,024 keys, `concurrency: { perPartition: 1 }`
 * (one transaction at a time: the partition's records one after another,
 * up to 32 in a transaction) vs `perPartition: 16` (16 transactions of
 * different keys at once). Both through the dispatcher over the embedded
 * transport, as an app runs them. N = 1 drains `slowMessages` of the
 * backlog, N = 16 `fastMessages` (a run of a few seconds each); rounds
 * alternate, medians are compared. Target ≥ 8×.
 */
export async function benchParallelKeys(env: BenchEnv, settings: { slowMessages: number; fastMessages: number; rounds: number }): Promise<Row[]> {
  const db = await env.freshDatabase('bench_parallel_keys', PER_PARTITION + 8);
  const transport = new EmbeddedTransport({ dataDir: join(env.dir, 'parallel-keys-log') });
  await transport.ensureTopics([{ name: TOPIC, partitions: 1 }]);
  const { createEnvelope, envelopeToRecord } = await import('../../src/messaging/index.js');
  const total = Math.max(settings.slowMessages, settings.fastMessages);
  for (let i = 0; i < total; i += 1000) {
    const records = Array.from({ length: Math.min(1000, total - i) }, (_, j) =>
      envelopeToRecord(createEnvelope({ type: TOPIC, source: 'bench', data: { i: i + j }, partitionkey: `k${(i + j) % KEYS}` }), TOPIC),
    );
    await transport.publish(records);
  }
  const rates: Record<number, number[]> = { 1: [], [PER_PARTITION]: [] };
  const cpu: Record<number, Array<ReturnType<typeof cpuPerOp>>> = { 1: [], [PER_PARTITION]: [] };
  let round = 0;
  const drain = async (perPartition: number): Promise<void> => {
    const messages = perPartition === 1 ? settings.slowMessages : settings.fastMessages;
    const group = `bench-parallel-${perPartition}-${round++}`;
    await db.dataSource.query(`TRUNCATE bench.effects`);
    const table = exploreHandlers([slowService(group, perPartition)]);
    const instance = new (table.services[0]!.serviceClass as new () => object)();
    const dispatcher = new Dispatcher(
      table.consumers[0]!,
      { dataSource: db.dataSource, resolve: () => instance, signal: new AbortController().signal },
      { batchRecordsMax: BATCH_RECORDS_MAX },
    );
    const cpuBefore = env.cpu();
    const start = performance.now();
    const subscription: Subscription = await transport.subscribe({
      groupId: group,
      topics: [TOPIC],
      batchHandler: (deliveries: readonly Delivery[]) => dispatcher.dispatchBatch(deliveries),
      batchRecordsMax: BATCH_RECORDS_MAX,
      concurrency: { perPartition },
    });
    while (dispatcher.stats.processed < messages) await sleep(5);
    const seconds = (performance.now() - start) / 1000;
    const done = dispatcher.stats.processed;
    rates[perPartition]!.push(done / seconds);
    cpu[perPartition]!.push(cpuPerOp(cpuBefore, env.cpu(), done));
    await subscription.close();
    const [effects] = await db.dataSource.query(`SELECT count(*)::int AS n FROM bench.effects`);
    if (effects.n !== dispatcher.stats.processed)
      throw new Error(`perPartition ${perPartition}: ${effects.n} effects for ${dispatcher.stats.processed} messages`);
  };
  try {
    for (let r = 0; r < settings.rounds; r++) for (const perPartition of [1, PER_PARTITION]) await drain(perPartition);
  } finally {
    await transport.close();
  }
  const slow = median(rates[1]!);
  const fast = median(rates[PER_PARTITION]!);
  const cpuOf = (perPartition: number) => {
    const samples = cpu[perPartition]!;
    const nodeUs = median(samples.map((c) => c.nodeUs));
    const pgUs = samples.every((c) => c.pgUs !== undefined) ? median(samples.map((c) => c.pgUs!)) : undefined;
    return { nodeUs, pgUs, totalUs: nodeUs + (pgUs ?? 0) };
  };
  return [
    {
      name: `parallel keys: exactly-once handler with ${IO_MS} ms of I/O (\`await setTimeout(${IO_MS})\`, then one insert), 1 partition, ${n(KEYS)} keys, \`concurrency: { perPartition: ${PER_PARTITION} }\` vs 1 (up to ${BATCH_RECORDS_MAX} records a transaction)`,
      baseline: `${n(slow)} msg/s with perPartition 1`,
      measured: `${n(fast)} msg/s with perPartition ${PER_PARTITION}`,
      ratio: fast / slow,
      target: '≥ 8×',
      pass: fast / slow >= 8,
    },
    {
      name: '(same, by CPU per message: node + PostgreSQL)',
      baseline: cpuText(cpuOf(1)),
      measured: cpuText(cpuOf(PER_PARTITION)),
      ratio: cpuOf(1).totalUs / cpuOf(PER_PARTITION).totalUs,
      target: '(cross-check)',
      pass: null,
    },
  ];
}
