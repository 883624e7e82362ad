import { join } from 'node:path';
import type { TransactionCommitEvent } from 'typeorm';
import { ConcordatApp, OnMessage, Service, type MessageContext } from '../../src/runtime/index.js';
import { EmbeddedTransport } from '../../src/transport/index.js';
import { n, quantile, sleep, type BenchEnv, type Row } from './support.js';

const TOPIC = 'bench.latency';
const handlerStarted = new Map<string, number>();

@Service('latency')
class LatencyService {
  @OnMessage(TOPIC)
  async handle(context: MessageContext<{ i: number }>): Promise<void> {
    handlerStarted.set(context.message.id, performance.now());
    await context.manager.query(`INSERT INTO bench.effects (message_id, n) VALUES ($1, $2)`, [context.message.id, context.data.i]);
    // Several messages share a transaction when they arrive together (batches): the commit ends them all.
    const data = context.manager.queryRunner!.data as { benchMessageIds?: string[] };
    (data.benchMessageIds ??= []).push(context.message.id);
  }
}

/**
 * 3. End-to-end latency at a steady rate: from the producer's COMMIT to the
 * COMMIT of the handler's transaction (exactly-once handler, one insert),
 * through the outbox, the relay, the embedded log (fdatasync) and the
 * consumer, all in one process. Each message is its own producer
 * transaction, sent in ticks of 10 ms. The first `warmupMs` at the same
 * rate are not measured: they open the pool's connections (a PostgreSQL
 * backend each) and warm the JIT, and their backlog drains before the
 * measured part begins. The baseline is the handler's own transaction (from
 * the handler's start to its commit), the floor the pipeline adds to; when
 * several messages share a transaction (delivered together), each counts
 * from its own handler's start to the shared commit.
 */
export async function benchLatency(env: BenchEnv, settings: { ratePerSecond: number; runMs: number; warmupMs: number }): Promise<Row[]> {
  const db = await env.freshDatabase('bench_latency', 40);
  const transport = new EmbeddedTransport({ dataDir: join(env.dir, 'latency-log') });
  const app = ConcordatApp.create({ name: 'bench', services: [LatencyService], database: db, transport, partitions: 8 });
  const committed = new Map<string, number>();
  let measuring = false;
  const latencies: number[] = [];
  const handlerMs: number[] = [];
  db.dataSource.subscribers.push({
    afterTransactionCommit(event: TransactionCommitEvent) {
      const data = event.queryRunner.data as { benchMessageIds?: string[] };
      const ids = data.benchMessageIds;
      data.benchMessageIds = undefined;
      if (ids === undefined || !measuring) return;
      const now = performance.now();
      for (const id of ids) {
        const sentAt = committed.get(id);
        const startedAt = handlerStarted.get(id);
        if (sentAt !== undefined) latencies.push(now - sentAt);
        if (startedAt !== undefined) handlerMs.push(now - startedAt);
      }
    },
  });
  await app.start();
  try {
    const produce = async (ms: number): Promise<{ sent: number; seconds: number }> => {
      const perTick = settings.ratePerSecond / 100;
      const start = performance.now();
      let sent = 0;
      const inFlight: Array<Promise<void>> = [];
      for (let tick = 0; performance.now() - start < ms; tick++) {
        const due = start + tick * 10;
        if (due > performance.now()) await sleep(due - performance.now());
        for (let k = 0; k < perTick; k++) {
          const i = sent++;
          inFlight.push(
            app.transaction(async (context) => context.publish(TOPIC, { i }, { key: `k${i % 64}` })).then((id) => void committed.set(id, performance.now())),
          );
        }
        if (inFlight.length > 1000) await Promise.all(inFlight.splice(0, inFlight.length - 200));
      }
      await Promise.all(inFlight);
      return { sent, seconds: (performance.now() - start) / 1000 };
    };
    const warm = await produce(settings.warmupMs);
    while (app.stats().latency!.processed < warm.sent) await sleep(20);
    measuring = true;
    handlerMs.length = 0;
    const { sent, seconds } = await produce(settings.runMs);
    const deadline = performance.now() + 30_000;
    while (latencies.length < sent && performance.now() < deadline) await sleep(50);
    const steady = latencies;
    const p50 = quantile(steady, 0.5);
    const p99 = quantile(steady, 0.99);
    return [
      {
        name: `end-to-end latency, producer COMMIT → handler COMMIT, at ${n(sent / seconds)} msg/s for ${n(seconds)} s after ${n(settings.warmupMs / 1000)} s of warm-up (${n(sent)} messages, ${latencies.length} handled)`,
        baseline: `handler transaction alone: p50 ${n(quantile(handlerMs, 0.5), 1)} ms, p99 ${n(quantile(handlerMs, 0.99), 1)} ms`,
        measured: `p50 ${n(p50, 1)} ms, p90 ${n(quantile(steady, 0.9), 1)} ms, p99 ${n(p99, 1)} ms, max ${n(
          steady.reduce((a, b) => Math.max(a, b), 0),
          1,
        )} ms`,
        ratio: null,
        target: 'p99 < 50 ms',
        pass: p99 < 50 && latencies.length === sent,
      },
    ];
  } finally {
    await app.stop();
    await transport.close();
  }
}
