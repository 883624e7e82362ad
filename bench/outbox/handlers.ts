import { join } from 'node:path';
import type { DataSource } from 'typeorm';
import { runOutboxTransaction } from '../../src/outbox/index.js';
import { Dispatcher, exploreHandlers, OnMessage, runTransaction, Service, type MessageContext } from '../../src/runtime/index.js';
import { EmbeddedTransport, type Delivery, type Subscription } from '../../src/transport/index.js';
import { envelopeFromDelivery } from '../../src/messaging/index.js';
import { cpuPerOp, cpuText, median, n, sleep, type BenchEnv, type Row } from './support.js';

const TOPIC = 'bench.handlers';
/**
 * - exactly-once: Concordat's dispatcher as an app runs it: the records of a partition read together
 *   (up to 32) in one transaction, one inbox insert for all of them;
 * - at-least-once: the same handler in the same transactions, without the inbox row (BEGIN, the inserts, COMMIT);
 * - exactly-once-single / at-least-once-single: the same with one message per transaction (`batchRecordsMax: 1`),
 *   the comparison of the previous run;
 * - no-transaction: `transactional: false`, the insert alone, autocommitted.
 */
type Mode = 'exactly-once' | 'at-least-once' | 'exactly-once-single' | 'at-least-once-single' | 'no-transaction';
const MODES: Mode[] = ['exactly-once', 'at-least-once', 'exactly-once-single', 'at-least-once-single', 'no-transaction'];
const BATCH_RECORDS_MAX = 32;

const insertEffect = (manager: DataSource['manager'], id: string, i: number) =>
  manager.query(`INSERT INTO bench.effects (message_id, n) VALUES ($1, $2)`, [id, i]);

/** A handler service of its own consumer group, so that each round reads the topic from the start. */
function handlerService(group: string, mode: Mode, dataSource: DataSource): Function {
  @Service(group)
  class Handler {
    @OnMessage(TOPIC, { transactional: mode === 'exactly-once' || mode === 'exactly-once-single' })
    async handle(context: MessageContext<{ i: number }>): Promise<void> {
      if (mode === 'at-least-once-single') {
        // The same handler and transaction, without the inbox row: BEGIN, the insert, COMMIT.
        await runTransaction(dataSource, group, async ({ manager }) => void (await insertEffect(manager, context.message.id, context.data.i)));
        return;
      }
      await insertEffect(context.manager, context.message.id, context.data.i);
    }
  }
  return Handler;
}

/** The at-least-once batch: the batch's inserts in one transaction (BEGIN, the inserts, COMMIT), no inbox rows. */
async function atLeastOnceBatch(dataSource: DataSource, deliveries: readonly Delivery[]): Promise<void> {
  await runOutboxTransaction(dataSource, async ({ manager }) => {
    for (const delivery of deliveries) {
      const envelope = envelopeFromDelivery<{ i: number }>(delivery);
      await insertEffect(manager, envelope.id, envelope.data.i);
    }
    return { result: undefined, records: [] };
  });
}

/**
 * 4. The price of exactly-once on the consumer side: the same handler (one
 * insert, in its transaction) run exactly-once (`BEGIN; inbox insert`, the
 * insert, `COMMIT`) and at-least-once (the same transaction without the
 * inbox row), each draining the same `messages` records from 8 partitions
 * through the embedded transport. The dispatcher handles the records of a
 * partition that one read returned (up to 32) in one transaction with one
 * inbox insert for all; the at-least-once side batches the same way. The
 * rows with one message per transaction (both sides) are the comparison of
 * the previous run. Rounds alternate; medians are compared. Also shown:
 * Concordat's `transactional: false` mode (the insert alone, autocommitted).
 */
export async function benchHandlers(env: BenchEnv, settings: { messages: number; rounds: number }): Promise<Row[]> {
  const db = await env.freshDatabase('bench_handlers', 24);
  const transport = new EmbeddedTransport({ dataDir: join(env.dir, 'handlers-log') });
  await transport.ensureTopics([{ name: TOPIC, partitions: 8 }]);
  const { createEnvelope, envelopeToRecord } = await import('../../src/messaging/index.js');
  for (let i = 0; i < settings.messages; i += 1000) {
    const records = Array.from({ length: Math.min(1000, settings.messages - i) }, (_, j) =>
      envelopeToRecord(createEnvelope({ type: TOPIC, source: 'bench', data: { i: i + j }, partitionkey: `k${(i + j) % 256}` }), TOPIC),
    );
    await transport.publish(records);
  }
  const rates = Object.fromEntries(MODES.map((m) => [m, [] as number[]])) as Record<Mode, number[]>;
  const cpu = Object.fromEntries(MODES.map((m) => [m, [] as Array<ReturnType<typeof cpuPerOp>>])) as Record<Mode, Array<ReturnType<typeof cpuPerOp>>>;
  let round = 0;
  const drain = async (mode: Mode): Promise<number> => {
    const group = `bench-${mode}-${round++}`;
    await db.dataSource.query(`TRUNCATE bench.effects`);
    const table = exploreHandlers([handlerService(group, mode, db.dataSource)]);
    const instance = new (table.services[0]!.serviceClass as new () => object)();
    const single = mode.endsWith('-single') || mode === 'no-transaction';
    const dispatcher = new Dispatcher(
      table.consumers[0]!,
      { dataSource: db.dataSource, resolve: () => instance, signal: new AbortController().signal },
      { batchRecordsMax: single ? 1 : BATCH_RECORDS_MAX },
    );
    let alo = 0;
    const handled = () => (mode === 'at-least-once' ? alo : dispatcher.stats.processed);
    const cpuBefore = env.cpu();
    const start = performance.now();
    const handlers =
      mode === 'at-least-once'
        ? {
            batchHandler: async (deliveries: readonly Delivery[]) => {
              await atLeastOnceBatch(db.dataSource, deliveries);
              alo += deliveries.length;
            },
            batchRecordsMax: BATCH_RECORDS_MAX,
          }
        : single
          ? { handler: (delivery: Delivery) => dispatcher.dispatch(delivery) }
          : { batchHandler: (deliveries: readonly Delivery[]) => dispatcher.dispatchBatch(deliveries), batchRecordsMax: BATCH_RECORDS_MAX };
    const subscription: Subscription = await transport.subscribe({ groupId: group, topics: [TOPIC], ...handlers });
    while (handled() < settings.messages) await sleep(5);
    const rate = settings.messages / ((performance.now() - start) / 1000);
    cpu[mode].push(cpuPerOp(cpuBefore, env.cpu(), settings.messages));
    await subscription.close();
    const [effects] = await db.dataSource.query(`SELECT count(*)::int AS n FROM bench.effects`);
    if (effects.n !== settings.messages) throw new Error(`${mode}: ${effects.n} effects for ${settings.messages} messages`);
    return rate;
  };
  try {
    await drain('exactly-once'); // warm-up
    for (let r = 0; r < settings.rounds; r++) for (const mode of MODES) rates[mode].push(await drain(mode));
  } finally {
    await transport.close();
  }
  const cpuOf = (mode: Mode) => {
    const samples = mode === 'exactly-once' ? cpu[mode].slice(1) : cpu[mode]; // the first exactly-once drain was the warm-up
    const nodeUs = median(samples.map((c) => c.nodeUs));
    const pgUs = samples.every((c) => c.pgUs !== undefined) ? median(samples.map((c) => c.pgUs!)) : undefined;
    return { nodeUs, pgUs, totalUs: nodeUs + (pgUs ?? 0) };
  };
  const rate = (mode: Mode) => median(rates[mode]);
  const [eo, alo, eo1, alo1, bare] = MODES.map(rate) as [number, number, number, number, number];
  const [cpuEo, cpuAlo, cpuEo1, cpuAlo1, cpuBare] = MODES.map(cpuOf);
  return [
    {
      name: `exactly-once handler (inbox row in its transaction) vs the same handler and transactions at-least-once (no inbox row), ${n(settings.messages)} messages, 8 partitions, up to ${BATCH_RECORDS_MAX} records a transaction`,
      baseline: `${n(alo)} msg/s at-least-once`,
      measured: `${n(eo)} msg/s exactly-once`,
      ratio: eo / alo,
      target: '≥ 0.85×',
      pass: eo / alo >= 0.85,
    },
    {
      name: '(same, by CPU per message: node + PostgreSQL, transport and offsets included)',
      baseline: cpuText(cpuAlo!),
      measured: cpuText(cpuEo!),
      ratio: cpuAlo!.totalUs / cpuEo!.totalUs,
      target: '(cross-check)',
      pass: null,
    },
    {
      name: 'exactly-once vs at-least-once, one message per transaction on both sides (`batchRecordsMax: 1`, the previous comparison)',
      baseline: `${n(alo1)} msg/s; ${cpuText(cpuAlo1!)}`,
      measured: `${n(eo1)} msg/s; ${cpuText(cpuEo1!)}`,
      ratio: eo1 / alo1,
      target: '(reference)',
      pass: null,
    },
    {
      name: 'exactly-once, batches vs one message per transaction (what batching gains)',
      baseline: `${n(eo1)} msg/s; ${cpuText(cpuEo1!)}`,
      measured: `${n(eo)} msg/s; ${cpuText(cpuEo!)}`,
      ratio: eo / eo1,
      target: '(reference)',
      pass: null,
    },
    {
      name: 'exactly-once (batches) vs `transactional: false` (no transaction: the insert alone, autocommitted)',
      baseline: `${n(bare)} msg/s; ${cpuText(cpuBare!)}`,
      measured: `${n(eo)} msg/s; ${cpuText(cpuEo!)}`,
      ratio: eo / bare,
      target: '(reference)',
      pass: null,
    },
  ];
}
