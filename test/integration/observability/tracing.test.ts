import { trace } from '@opentelemetry/api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nonRetriable } from '../../../src/errors.js';
import { ConcordatApp, OnMessage, Service, type MessageContext } from '../../../src/runtime/index.js';
import { createTxFixture, waitFor, type TxFixture } from '../transactions/support/fixture.js';
import { parentOf, registerTestTracing, spanLike, traceTree, type SpanLike, type TestTracing } from '../../support/tracing.js';

let billingFailures = 0;

@Service('shop')
class Shop {
  @OnMessage('trace.placed')
  async placed(context: MessageContext<{ order: number }>): Promise<void> {
    context.publish('trace.billed', { order: context.data.order }, { key: String(context.data.order) });
  }
}

@Service('billing')
class Billing {
  // Fails twice (retriable), then succeeds: two retry events on one process span.
  @OnMessage('trace.billed', { retry: { maxAttempts: 5, strategy: 'fixed', initialDelayMs: 5 } })
  async billed(): Promise<void> {
    if (billingFailures++ < 2) throw new Error('card service busy');
  }

  @OnMessage('trace.poison')
  async poison(): Promise<void> {
    throw nonRetriable(new Error('malformed order'));
  }
}

/**
 * Publish and process spans with the real SDK in process: the W3C context
 * travels in each message's `traceparent`, so a chain of handlers is one
 * trace; a relay batch links to its records; retries are events and a dead
 * letter an error.
 */
describe('tracing of messages (real OpenTelemetry SDK, in-memory exporter)', () => {
  let tracing: TestTracing;
  let fx: TxFixture;
  let app: ConcordatApp;

  beforeAll(async () => {
    tracing = registerTestTracing();
    fx = await createTxFixture('tracing_messages');
    app = ConcordatApp.create({ name: 'tracing', services: [Shop, Billing], database: fx.db, transport: fx.transport, partitions: 2 });
    await app.start();
  });
  afterAll(async () => {
    await app?.stop();
    await fx?.close();
    await tracing?.close();
  });

  const spans = (): SpanLike[] => tracing.spans().map(spanLike);
  const named = (name: string, all = spans()): SpanLike[] => all.filter((span) => span.name === name);

  it('makes one trace from the caller through every handler, with the relay batch linked to each record', async () => {
    await trace.getTracer('test').startActiveSpan('POST /orders', async (root) => {
      await app.transaction(async (context) => {
        context.publish('trace.placed', { order: 1 }, { key: '1' });
      });
      root.end();
    });
    const done = await waitFor(async () => {
      const all = spans();
      const billed = named('process trace.billed', all).find((span) => span.attributes['concordat.outcome'] === 'processed');
      return billed === undefined ? undefined : all;
    }, 'the billing handler processed the order');
    const root = named('POST /orders', done)[0]!;
    expect(traceTree(done, root.traceId)).toEqual([
      'POST /orders',
      '  publish trace.placed',
      '    process trace.placed',
      '      publish trace.billed',
      '        process trace.billed',
    ]);
    const placed = named('process trace.placed', done)[0]!;
    expect(placed.attributes).toMatchObject({
      'messaging.system': 'kafka',
      'messaging.operation.name': 'process',
      'messaging.operation.type': 'process',
      'messaging.destination.name': 'trace.placed',
      'messaging.consumer.group.name': 'shop',
      'messaging.kafka.message.key': '1',
      'concordat.outcome': 'processed',
    });
    expect(typeof placed.attributes['messaging.message.id']).toBe('string');
    const billed = named('process trace.billed', done)[0]!;
    expect(billed.events).toEqual(['retry', 'retry']);
    expect(billed.attributes['concordat.attempts']).toBe(3);
    expect(billed.statusCode).not.toBe(2);
    // Each record's creation context is linked from the send span of the batch that carried it.
    for (const publish of [...named('publish trace.placed', done), ...named('publish trace.billed', done)]) {
      const sends = done.filter((span) => span.name.startsWith('send') && span.links.some((link) => link.spanId === publish.spanId));
      expect(sends.length, `send spans linking to ${publish.name}`).toBeGreaterThanOrEqual(1);
      expect(sends[0]!.parentSpanId).toBeUndefined();
      expect(sends[0]!.attributes['messaging.operation.type']).toBe('send');
    }
  });

  it('marks a dead-lettered message\'s process span as an error with a dead_letter event', async () => {
    await app.transaction(async (context) => {
      context.publish('trace.poison', { order: 2 });
    });
    const poisoned = await waitFor(async () => named('process trace.poison').find((span) => span.events.includes('dead_letter')), 'the poison message was dead-lettered');
    expect(poisoned.statusCode).toBe(2);
    expect(poisoned.attributes).toMatchObject({ 'concordat.outcome': 'dead_lettered', 'error.type': 'Error' });
    const publish = parentOf(poisoned, spans());
    expect(publish?.name).toBe('publish trace.poison');
  });
});
