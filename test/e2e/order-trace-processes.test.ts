import { createServer, type Server } from 'node:http';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { dataFile } from '../../examples/order-saga/demo.js';
import { Mode } from '../../examples/order-saga/deployment.js';
import { runDistributedDemo } from '../../examples/order-saga/distributed.js';
import { registerTracingFromEnv } from '../../examples/order-saga/tracing.js';
import { REPLY_TOPIC } from '../../src/transactions/index.js';
import { parentOf, type SpanLike } from '../support/tracing.js';

/** An OTLP/HTTP receiver (JSON encoding, what `@opentelemetry/exporter-trace-otlp-http` sends) that keeps every span. */
async function startReceiver(): Promise<{ server: Server; endpoint: string; spans: SpanLike[] }> {
  const spans: SpanLike[] = [];
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      try {
        const raw = Buffer.concat(chunks);
        const body = request.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw;
        if (request.method !== 'POST' || request.url !== '/v1/traces') throw new Error(`unexpected ${request.method} ${request.url}`);
        spans.push(...parseOtlpJson(JSON.parse(body.toString('utf8')) as OtlpExport));
        response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      } catch (error) {
        response.writeHead(400).end(String(error));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as { port: number };
  return { server, endpoint: `http://127.0.0.1:${address.port}/v1/traces`, spans };
}

interface OtlpValue {
  stringValue?: string;
  intValue?: string | number;
  boolValue?: boolean;
  doubleValue?: number;
}
interface OtlpExport {
  resourceSpans: Array<{
    resource?: { attributes?: Array<{ key: string; value: OtlpValue }> };
    scopeSpans: Array<{
      spans: Array<{
        traceId: string;
        spanId: string;
        parentSpanId?: string;
        name: string;
        attributes?: Array<{ key: string; value: OtlpValue }>;
        events?: Array<{ name: string }>;
        status?: { code?: number };
        links?: Array<{ traceId: string; spanId: string }>;
      }>;
    }>;
  }>;
}

function parseOtlpJson(body: OtlpExport): SpanLike[] {
  const value = (v: OtlpValue): unknown => v.stringValue ?? (v.intValue !== undefined ? Number(v.intValue) : (v.boolValue ?? v.doubleValue));
  const attributes = (list: Array<{ key: string; value: OtlpValue }> = []): Record<string, unknown> =>
    Object.fromEntries(list.map((a) => [a.key, value(a.value)]));
  return body.resourceSpans.flatMap((resourceSpans) => {
    const service = attributes(resourceSpans.resource?.attributes)['service.name'] as string | undefined;
    return resourceSpans.scopeSpans.flatMap((scope) =>
      scope.spans.map((span) => ({
        name: span.name,
        traceId: span.traceId,
        spanId: span.spanId,
        parentSpanId: span.parentSpanId === undefined || span.parentSpanId === '' ? undefined : span.parentSpanId,
        attributes: attributes(span.attributes),
        events: (span.events ?? []).map((event) => event.name),
        statusCode: span.status?.code ?? 0,
        links: span.links ?? [],
        ...(service !== undefined && { service }),
      })),
    );
  });
}

/**
 * The done-when of issue 12: one TCC order of the distributed demo
 * (`npm start -- --processes`: the broker and the orders, inventory and
 * payment units each an OS process, the feeder in this one) is one trace.
 * Every process registers the SDK from `OTEL_TRACES_EXPORTER=otlp` and
 * exports over OTLP/HTTP to a receiver this test runs; the test asserts the
 * parent/child structure across the four processes.
 */
describe('one trace per TCC order across processes (OTLP/HTTP from every process)', () => {
  let dir: string;
  let ordersFile: string;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  const saved: Record<string, string | undefined> = {};

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'concordat-e2e-trace-'));
    const lines = (await readFile(dataFile('orders.csv'), 'utf8')).trim().split('\n').slice(0, 9);
    // An order that must be cancelled: not enough stock (inventory votes no).
    lines.push('E2E-STOCK,ACC-0043,SKU-WHISK,300');
    ordersFile = join(dir, 'orders.csv');
    await writeFile(ordersFile, lines.join('\n') + '\n');
    receiver = await startReceiver();
  });
  afterAll(async () => {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
    await new Promise((resolve) => receiver?.server.close(resolve));
    await rm(dir, { recursive: true, force: true });
  });

  it('shows a whole global transaction in one trace: feeder, orders with its coordinator, inventory and payment', async () => {
    // The children inherit this environment (distributed.ts passes process.env on).
    const env = { OTEL_TRACES_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: receiver.endpoint };
    for (const [name, value] of Object.entries(env)) {
      saved[name] = process.env[name];
      process.env[name] = value;
    }
    const stopTracing = registerTracingFromEnv('order-saga-feeder')!;
    let result: Awaited<ReturnType<typeof runDistributedDemo>>;
    try {
      result = await runDistributedDemo({
        mode: Mode.TCC,
        ordersFile,
        productsFile: dataFile('products.csv'),
        accountsFile: dataFile('accounts.csv'),
        dataDir: dir,
        databaseUrl: inject('databaseUrl'),
        databaseName: `order_trace_e2e_${process.pid}`,
        partitions: 2,
        timeoutMs: 120_000,
      });
    } finally {
      // The units flushed their spans when they stopped (the demo stops them gracefully); now this process's.
      await stopTracing();
    }
    expect(result.ok).toBe(true);
    expect(result.summary.cancelledForStock).toBe(1);
    expect(result.summary.confirmed).toBeGreaterThan(0);

    const spans = receiver.spans;
    const label = (span: SpanLike): string => `${span.name} @${span.service}`.replace(/inventory\.reserve|payment\.hold|inventory|payment/g, '*');
    const ancestry = (span: SpanLike): string[] => {
      const labels: string[] = [];
      for (let parent = parentOf(span, spans); parent !== undefined; parent = parentOf(parent, spans)) labels.push(label(parent));
      return labels;
    };
    const begins = spans.filter((span) => span.name === 'TCC begin place-order');
    expect(begins.length).toBeGreaterThanOrEqual(result.summary.orders);
    const inTrace = (begin: SpanLike): SpanLike[] => spans.filter((span) => span.traceId === begin.traceId);
    const confirmed = begins.find((begin) => inTrace(begin).some((span) => span.name === 'TCC CONFIRMING → CONFIRMED'))!;
    const cancelled = begins.find((begin) => inTrace(begin).some((span) => span.name === 'TCC TRYING → CANCELLING'))!;
    expect(confirmed).toBeDefined();
    expect(cancelled).toBeDefined();

    for (const begin of [confirmed, cancelled]) {
      const trace = inTrace(begin);
      const id = begin.attributes['concordat.global_tx.id'];
      // Every span of the global transaction, in whichever process, is in this one trace.
      const ofTx = spans.filter((span) => span.attributes['concordat.global_tx.id'] === id);
      expect(new Set(ofTx.map((span) => span.traceId))).toEqual(new Set([begin.traceId]));
      expect(new Set(trace.map((span) => span.service))).toEqual(
        new Set(['order-saga-feeder', 'order-saga-orders', 'order-saga-inventory', 'order-saga-payment']),
      );
      const beginChain = ['process orders.submitted @order-saga-orders', 'publish orders.submitted @order-saga-feeder'];
      expect(ancestry(begin)).toEqual(beginChain);
      const tryChain = [
        'process concordat.tcc.* @order-saga-*',
        'publish concordat.tcc.* @order-saga-orders',
        'TCC begin place-order @order-saga-orders',
        ...beginChain,
      ];
      // A command the coordinator sent again (its resend step, under the begin span) would add spans of its own: not these.
      const tries = trace.filter((span) => span.name.startsWith('TCC Try ') && ancestry(span)[2] === 'TCC begin place-order @order-saga-orders');
      expect(tries.map((span) => `${span.name} @${span.service}`).sort()).toEqual([
        'TCC Try inventory.reserve @order-saga-inventory',
        'TCC Try payment.hold @order-saga-payment',
      ]);
      for (const tried of tries) expect(ancestry(tried)).toEqual(tryChain);
      // The decision: a step of the coordinator (in the orders process) on the reply of the second vote.
      const decision = trace.filter((span) => /^TCC TRYING → (CONFIRMING|CANCELLING)$/.test(span.name));
      expect(decision).toHaveLength(1);
      const decisionChain = [`process ${REPLY_TOPIC} @order-saga-orders`, `publish ${REPLY_TOPIC} @order-saga-*`, 'TCC Try * @order-saga-*', ...tryChain];
      expect(ancestry(decision[0]!)).toEqual(decisionChain);
      expect(decision[0]!.service).toBe('order-saga-orders');
      // Phase two: each Confirm (or Cancel) in its participant's process, a child of the decision's command.
      const second = begin === confirmed ? 'Confirm' : 'Cancel';
      const phaseTwo = trace.filter((span) => span.name.startsWith(`TCC ${second} `) && ancestry(span)[2] === label(decision[0]!));
      // Confirm: both branches. Cancel: the branches that did not vote no (which ones depends on the order of the votes).
      if (begin === confirmed) expect(phaseTwo.map((span) => span.service).sort()).toEqual(['order-saga-inventory', 'order-saga-payment']);
      else expect(phaseTwo.length).toBeGreaterThanOrEqual(1);
      for (const span of phaseTwo) {
        expect(ancestry(span)).toEqual([
          'process concordat.tcc.* @order-saga-*',
          'publish concordat.tcc.* @order-saga-orders',
          `${label(decision[0]!)}`,
          ...decisionChain,
        ]);
      }
      // The end: the coordinator's last step publishes the outcome, which the order service handles.
      // Whatever the scan did for this global transaction (a resend when an answer was slow) is in this trace too, under the begin.
      for (const step of trace.filter((span) => span.attributes['concordat.global_tx.input'] === 'resend')) {
        expect(ancestry(step)).toEqual(['TCC begin place-order @order-saga-orders', ...beginChain]);
      }
      const end = trace.find((span) => span.name === (begin === confirmed ? 'TCC CONFIRMING → CONFIRMED' : 'TCC CANCELLING → CANCELLED'))!;
      expect(ancestry(end).slice(0, 3)).toEqual([
        `process ${REPLY_TOPIC} @order-saga-orders`,
        `publish ${REPLY_TOPIC} @order-saga-*`,
        `TCC ${second} * @order-saga-*`,
      ]);
      const outcome = trace.find((span) => span.name === 'process orders.tx-outcome')!;
      expect(ancestry(outcome).slice(0, 2)).toEqual(['publish orders.tx-outcome @order-saga-orders', label(end)]);
    }
  }, 200_000);
});
