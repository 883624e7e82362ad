import { trace } from '@opentelemetry/api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nonRetriable } from '../../../src/errors.js';
import { ConcordatApp, OnMessage, Service, type MessageContext } from '../../../src/runtime/index.js';
import { Cancel, Confirm, TccParticipant, TransactionCoordinator, Try, beginTcc, type TccContext } from '../../../src/transactions/index.js';
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

function participant(name: string) {
  @Service(`tcc-${name}`)
  @TccParticipant(name)
  class Participant {
    @Try()
    async try(context: TccContext<{ refuse?: string }>): Promise<void> {
      if (context.payload.refuse === name) throw nonRetriable(new Error(`${name} refuses`));
    }
    @Confirm()
    async confirm(): Promise<void> {}
    @Cancel()
    async cancel(): Promise<void> {}
  }
  return Participant;
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
    app = ConcordatApp.create({
      name: 'tracing',
      services: [Shop, Billing, TransactionCoordinator, participant('left'), participant('right')],
      database: fx.db,
      transport: fx.transport,
      partitions: 2,
    });
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

  it("marks a dead-lettered message's process span as an error with a dead_letter event", async () => {
    await app.transaction(async (context) => {
      context.publish('trace.poison', { order: 2 });
    });
    const poisoned = await waitFor(
      async () => named('process trace.poison').find((span) => span.events.includes('dead_letter')),
      'the poison message was dead-lettered',
    );
    expect(poisoned.statusCode).toBe(2);
    expect(poisoned.attributes).toMatchObject({ 'concordat.outcome': 'dead_lettered', 'error.type': 'Error' });
    const publish = parentOf(poisoned, spans());
    expect(publish?.name).toBe('publish trace.poison');
  });

  /** Whether every span of the trace has its parent exported (a process span ends after its children, with its commit). */
  const treeComplete = (all: readonly SpanLike[], traceId: string): boolean =>
    all.filter((span) => span.traceId === traceId).every((span) => span.parentSpanId === undefined || parentOf(span, all) !== undefined);

  /** Names from `span`'s parent up to its root, participant names as `*`. */
  const ancestry = (span: SpanLike, all: readonly SpanLike[]): string[] => {
    const names: string[] = [];
    for (let parent = parentOf(span, all); parent !== undefined; parent = parentOf(parent, all)) names.push(parent.name.replace(/left|right/, '*'));
    return names;
  };

  it.each([
    { outcome: 'CONFIRMED', refuse: undefined, decision: 'TRYING → CONFIRMING', second: 'Confirm' },
    { outcome: 'CANCELLED', refuse: 'right', decision: 'TRYING → CANCELLING', second: 'Cancel' },
  ])(
    'traces a TCC global transaction ($outcome) from its begin through every Try, the decision and every $second',
    async ({ outcome, refuse, decision, second }) => {
      const name = `order-${outcome.toLowerCase()}`;
      const id = await trace.getTracer('test').startActiveSpan('POST /orders', async (root) => {
        try {
          return await app.transaction((context) =>
            beginTcc(context, {
              name,
              branches: [
                { participant: 'left', payload: { refuse } },
                { participant: 'right', payload: { refuse } },
              ],
            }),
          );
        } finally {
          root.end();
        }
      });
      expect((await fx.ended(id)).state).toBe(outcome);
      const ending = `TCC ${second === 'Confirm' ? 'CONFIRMING → CONFIRMED' : 'CANCELLING → CANCELLED'}`;
      const all = await waitFor(async () => {
        const all = spans();
        const last = all.find((span) => span.name === ending && span.attributes['concordat.global_tx.id'] === id);
        return last !== undefined && treeComplete(all, last.traceId) ? all : undefined;
      }, 'the span of the last step');
      const begin = all.find((span) => span.name === `TCC begin ${name}` && span.attributes['concordat.global_tx.id'] === id)!;
      expect(begin.attributes).toMatchObject({ 'concordat.global_tx.mode': 'TCC', 'concordat.global_tx.name': name, 'concordat.global_tx.branches': 2 });
      expect(parentOf(begin, all)?.name).toBe('POST /orders');
      const ofTx = all.filter((span) => span.attributes['concordat.global_tx.id'] === id);
      // Everything of this global transaction is in the trace of the request that began it.
      expect(new Set(ofTx.map((span) => span.traceId))).toEqual(new Set([begin.traceId]));
      const spansNamed = (pattern: RegExp): SpanLike[] => ofTx.filter((span) => pattern.test(span.name));
      expect(
        spansNamed(/^TCC Try /)
          .map((span) => span.name)
          .sort(),
      ).toEqual(['TCC Try left', 'TCC Try right']);
      for (const tried of spansNamed(/^TCC Try /)) {
        expect(ancestry(tried, all)).toEqual(['process concordat.tcc.*', 'publish concordat.tcc.*', `TCC begin ${name}`, 'POST /orders']);
      }
      const decided = spansNamed(new RegExp(`^TCC ${decision}$`));
      expect(decided).toHaveLength(1);
      // The decision is taken in the transaction of the second vote (its participant's, co-located with the coordinator).
      expect(ancestry(decided[0]!, all)).toEqual(['process concordat.tcc.*', 'publish concordat.tcc.*', `TCC begin ${name}`, 'POST /orders']);
      const seconds = spansNamed(new RegExp(`^TCC ${second} `));
      expect(seconds.map((span) => span.name).sort()).toEqual(refuse === 'right' ? [`TCC ${second} left`] : [`TCC ${second} left`, `TCC ${second} right`]);
      for (const span of seconds) {
        expect(ancestry(span, all)).toEqual([
          'process concordat.tcc.*',
          'publish concordat.tcc.*',
          `TCC ${decision}`,
          'process concordat.tcc.*',
          'publish concordat.tcc.*',
          `TCC begin ${name}`,
          'POST /orders',
        ]);
        expect(span.attributes).toMatchObject({ 'concordat.participant': span.name.split(' ')[2], 'concordat.branch.action': second.toLowerCase() });
      }
      expect(spansNamed(new RegExp(`^${ending}$`))).toHaveLength(1);
    },
  );

  it("continues the begin's trace in a step the coordinator's scan takes (the deadline), from the context kept in the global transaction's row", async () => {
    const id = await trace.getTracer('test').startActiveSpan('POST /orders', async (root) => {
      try {
        // 'ghost' is declared by no service: its Try is never answered, so the deadline cancels.
        return await app.transaction((context) =>
          beginTcc(context, {
            name: 'order-deadline',
            timeoutMs: 200,
            branches: [
              { participant: 'left', payload: {} },
              { participant: 'ghost', payload: {} },
            ],
          }),
        );
      } finally {
        root.end();
      }
    });
    const all = await waitFor(async () => {
      const all = spans();
      const cancel = all.find((span) => span.name === 'TCC Cancel left' && span.attributes['concordat.global_tx.id'] === id);
      return cancel !== undefined && treeComplete(all, cancel.traceId) ? all : undefined;
    }, 'the Cancel the deadline sent, and its process span');
    const expired = all.filter((span) => span.attributes['concordat.global_tx.id'] === id && span.attributes['concordat.global_tx.input'] === 'deadline');
    expect(expired.map((span) => span.name)).toEqual(['TCC TRYING → CANCELLING']);
    expect(ancestry(expired[0]!, all)).toEqual(['TCC begin order-deadline', 'POST /orders']);
    const cancel = all.find((span) => span.name === 'TCC Cancel left' && span.attributes['concordat.global_tx.id'] === id)!;
    expect(ancestry(cancel, all)).toEqual([
      'process concordat.tcc.*',
      'publish concordat.tcc.*',
      'TCC TRYING → CANCELLING',
      'TCC begin order-deadline',
      'POST /orders',
    ]);
    const row: Array<{ trace: { traceparent: string } }> = await fx.query(
      `SELECT options -> 'trace' AS trace FROM concordat.global_transaction WHERE id = $1`,
      [id],
    );
    expect(row[0]!.trace.traceparent).toMatch(new RegExp(`^00-${expired[0]!.traceId}-[0-9a-f]{16}-01$`));
  });
});
