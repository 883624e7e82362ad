import { join } from 'node:path';
import type { DataSource } from 'typeorm';
import { shardFor } from '../../src/outbox/index.js';
import { ConcordatApp, OnMessage, Service, type MessageContext } from '../../src/runtime/index.js';
import { EmbeddedTransport } from '../../src/transport/index.js';
import { cpuPerOp, cpuText, n, quantile, sleep, type BenchEnv, type Row } from './support.js';

const TOPIC = 'bench.scheduled';

/** Per message ID: when its handler started (ms since the epoch), and when it was due (0 for an immediate message: its commit time). */
const handled = new Map<string, number>();

@Service('scheduled-bench')
class ScheduledBench {
  @OnMessage(TOPIC)
  async handle(context: MessageContext<{ i: number }>): Promise<void> {
    if (!handled.has(context.message.id)) handled.set(context.message.id, Date.now());
    await context.manager.query(`INSERT INTO bench.effects (message_id, n) VALUES ($1, $2)`, [context.message.id, context.data.i]);
  }
}

interface Settings {
  /** Scheduled messages held pending (due in a day) during the run. */
  pendingRows: number;
  ratePerSecond: number;
  runMs: number;
  warmupMs: number;
  /** How far ahead each scheduled message is published. */
  delayMs: number;
}

/**
 * 5. Scheduled delivery (issue 14, docs/scheduling.md): with `pendingRows`
 * scheduled messages pending (due tomorrow) in `concordat.outbox_scheduled`,
 * producers publish 1,000 messages per second, each in its own transaction,
 * for `runMs`:
 *   - baseline: immediate messages;
 *   - measured: the same, each with `deliverAt` = now + `delayMs`, so that
 *     in the steady state 1,000 fall due per second.
 * Lateness = the handler's start minus the message's `deliverAt` (this
 * process's clock; PostgreSQL runs on the same machine). CPU per delivered
 * message = (this process + the PostgreSQL cluster) from the first publish
 * until the last message was handled, divided by the messages: publish,
 * (move), relay, log, consumer, handler transaction.
 */
export async function benchScheduled(env: BenchEnv, settings: Settings): Promise<Row[]> {
  const db = await env.freshDatabase('bench_scheduled', 24);
  const fillStarted = performance.now();
  await fillPending(db.dataSource, settings.pendingRows);
  const fillSeconds = (performance.now() - fillStarted) / 1000;
  const transport = new EmbeddedTransport({ dataDir: join(env.dir, 'scheduled-log') });
  const app = ConcordatApp.create({ name: 'bench', services: [ScheduledBench], database: db, transport, partitions: 8 });
  await app.start();
  try {
    const phase = async (ms: number, scheduled: boolean) => {
      handled.clear();
      const due = new Map<string, number>();
      const before = env.cpu();
      const perTick = settings.ratePerSecond / 100;
      const start = performance.now();
      const inFlight: Array<Promise<void>> = [];
      let sent = 0;
      for (let tick = 0; performance.now() - start < ms; tick++) {
        const at = start + tick * 10;
        if (at > performance.now()) await sleep(at - performance.now());
        for (let k = 0; k < perTick; k++) {
          const i = sent++;
          const deliverAt = scheduled ? new Date(Date.now() + settings.delayMs) : undefined;
          inFlight.push(
            app
              .transaction(async (context) => context.publish(TOPIC, { i }, { key: `k${i % 64}`, ...(deliverAt && { deliverAt }) }))
              .then((id) => void due.set(id, deliverAt?.getTime() ?? Date.now())),
          );
        }
        if (inFlight.length > 1000) await Promise.all(inFlight.splice(0, inFlight.length - 200));
      }
      await Promise.all(inFlight);
      const deadline = performance.now() + settings.delayMs + 60_000;
      while (handled.size < sent && performance.now() < deadline) await sleep(20);
      const after = env.cpu();
      const lateness = [...due].map(([id, dueAt]) => (handled.get(id) ?? NaN) - dueAt).filter((ms) => !Number.isNaN(ms));
      return { sent, handledCount: handled.size, cpu: cpuPerOp(before, after, sent), lateness, seconds: ms / 1000 };
    };
    await phase(settings.warmupMs, false);
    const immediate = await phase(settings.runMs, false);
    const scheduled = await phase(settings.runMs, true);
    const [{ n: stillPending }] = await db.dataSource.query(`SELECT count(*)::int AS n FROM concordat.outbox_scheduled`);
    const ratio = scheduled.cpu.totalUs / immediate.cpu.totalUs;
    const p99 = quantile(scheduled.lateness, 0.99);
    const early = scheduled.lateness.filter((ms) => ms < 0).length;
    const complete = scheduled.handledCount === scheduled.sent && immediate.handledCount === immediate.sent;
    const what = `${n(settings.pendingRows)} pending (filled in ${n(fillSeconds, 1)} s; ${n(stillPending)} at the end), ${n(settings.ratePerSecond)}/s for ${n(scheduled.seconds)} s`;
    return [
      {
        name: `scheduled delivery lateness, handler start − deliverAt, ${what}, published ${n(settings.delayMs)} ms ahead`,
        baseline: `immediate: producer COMMIT → handler start p50 ${n(quantile(immediate.lateness, 0.5), 1)} ms, p99 ${n(quantile(immediate.lateness, 0.99), 1)} ms`,
        measured: `p50 ${n(quantile(scheduled.lateness, 0.5), 1)} ms, p99 ${n(p99, 1)} ms, max ${n(Math.max(...scheduled.lateness), 1)} ms; ${early} early; ${scheduled.handledCount}/${scheduled.sent} handled`,
        ratio: null,
        target: 'p99 < 100 ms, none early',
        pass: p99 < 100 && early === 0 && complete,
      },
      {
        name: `CPU per delivered message (node + PostgreSQL), scheduled vs immediate, ${what}`,
        baseline: `immediate: ${cpuText(immediate.cpu)}`,
        measured: `scheduled: ${cpuText(scheduled.cpu)}`,
        ratio,
        target: '≤ 1.2× (ratio = scheduled / immediate CPU)',
        pass: immediate.cpu.pgUs === undefined ? null : ratio <= 1.2,
      },
    ];
  } finally {
    await app.stop();
    await transport.close();
  }
}

/**
 * `rows` scheduled messages due in a day (one ms apart), on the bench's 64
 * keys, inserted by PostgreSQL itself in batches of 100,000, then vacuumed
 * and analysed, as a table that filled over time would be.
 */
async function fillPending(dataSource: DataSource, rows: number): Promise<void> {
  const shards = Array.from({ length: 64 }, (_, k) => shardFor(`k${k}`));
  const headers = JSON.stringify({ ce_id: 'pending', ce_type: TOPIC, ce_source: 'bench', ce_specversion: '1.0', content_type: 'application/json' });
  for (let from = 0; from < rows; from += 100_000) {
    const to = Math.min(rows, from + 100_000);
    await dataSource.query(
      `INSERT INTO concordat.outbox_scheduled (message_id, topic, partition_key, shard, headers, payload, deliver_at)
       SELECT 'pending-' || i, $1, 'k' || (i % 64), ($2::smallint[])[i % 64 + 1], $3::jsonb, convert_to('{"i":' || i || '}', 'UTF8'),
              now() + interval '1 day' + i * interval '1 millisecond'
         FROM generate_series($4::int, $5::int) AS i`,
      [TOPIC, shards, headers, from, to - 1],
    );
  }
  await dataSource.query(`VACUUM ANALYZE concordat.outbox_scheduled`);
}
