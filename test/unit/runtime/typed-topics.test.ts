import type { EntityManager } from 'typeorm';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { z } from 'zod';
import {
  ConcordatApp,
  ErrorCode,
  MessageContext,
  OnMessage,
  Service,
  TransactionContext,
  ValidationError,
  defineTopic,
  type Topic,
  type TopicContext,
  type TopicData,
  type TopicInput,
} from '../../../src/index.js';
import { exploreHandlers } from '../../../src/runtime/index.js';

/**
 * Typed topics (issue 14). The `@ts-expect-error` lines are the test of
 * what must NOT compile: `tsc --noEmit` (the first step of `npm test`)
 * fails if any of them compiles. The `expectTypeOf` lines are checked by the
 * same compilation; the `it` bodies check the same calls at run time.
 */

const orderPlaced = defineTopic(
  'orders.placed',
  z.object({
    orderId: z.string().min(1),
    lines: z.array(z.object({ sku: z.string(), quantity: z.number().int().positive() })).min(1),
    currency: z.enum(['EUR', 'USD']).default('EUR'),
  }),
);

function newContext(): TransactionContext {
  // publish only records the message; the manager is used when the outbox is written.
  return new TransactionContext(undefined as unknown as EntityManager, 'typed-test');
}

@Service('typed-shop')
class Shop {
  @OnMessage(orderPlaced)
  async placed(context: TopicContext<typeof orderPlaced>): Promise<void> {
    expectTypeOf(context.data).toEqualTypeOf<{ orderId: string; lines: Array<{ sku: string; quantity: number }>; currency: 'EUR' | 'USD' }>();
  }

  // The payload type written out instead of the topic is the same type.
  @OnMessage(defineTopic('orders.shipped', z.object({ orderId: z.string() })))
  async shipped(context: MessageContext<{ orderId: string }>): Promise<void> {
    expectTypeOf(context.data.orderId).toEqualTypeOf<string>();
  }

  // Plain string topics keep working, typed by the annotation alone.
  @OnMessage('orders.legacy')
  async legacy(context: MessageContext<{ anything: boolean }>): Promise<void> {
    void context;
  }
}

/** Never explored: it exists for the line that must not compile. */
@Service('typed-wrong')
export class WrongShop {
  // @ts-expect-error the handler's payload type is not the topic's
  @OnMessage(orderPlaced)
  async wrong(context: MessageContext<{ orderId: number }>): Promise<void> {
    void context;
  }
}

describe('defineTopic: one object names the topic and types its payload', () => {
  it('types the input and the output of the schema', () => {
    expectTypeOf<TopicInput<typeof orderPlaced>>().toEqualTypeOf<{
      orderId: string;
      lines: Array<{ sku: string; quantity: number }>;
      currency?: 'EUR' | 'USD' | undefined;
    }>();
    expectTypeOf<TopicData<typeof orderPlaced>>().toEqualTypeOf<{
      orderId: string;
      lines: Array<{ sku: string; quantity: number }>;
      currency: 'EUR' | 'USD';
    }>();
    // Any other type stands for itself.
    expectTypeOf<TopicData<{ n: number }>>().toEqualTypeOf<{ n: number }>();
    expectTypeOf(orderPlaced).toExtend<Topic>();
    expect(orderPlaced.name).toBe('orders.placed');
  });

  it('publish type-checks the payload and validates it before anything is recorded', () => {
    const context = newContext();
    const id = context.publish(orderPlaced, { orderId: 'o-1', lines: [{ sku: 'a', quantity: 2 }] });
    // What travels is the payload as given (the consumer applies the schema's defaults).
    expect(context.pending).toHaveLength(1);
    expect(context.pending[0]!).toMatchObject({
      topic: 'orders.placed',
      envelope: { id, type: 'orders.placed', data: { orderId: 'o-1', lines: [{ sku: 'a', quantity: 2 }] } },
    });

    const invalid = { orderId: '', lines: [{ sku: 'a', quantity: -1 }] };
    let thrown: unknown;
    try {
      context.publish(orderPlaced, invalid);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(ValidationError);
    const error = thrown as ValidationError;
    expect(error.code).toBe(ErrorCode.VALIDATION_FAILED);
    expect(error.retriable).toBe(false);
    expect(error.issues.map((issue) => issue.path)).toEqual(['orderId', 'lines.0.quantity']);
    expect(error.message).toMatch(/^the payload of topic 'orders.placed' is invalid: orderId: .+; lines\.0\.quantity: .+$/);
    expect(context.pending).toHaveLength(1); // nothing recorded for the invalid one
  });

  it('refuses wrong payloads at compile time', () => {
    const context = newContext();
    const refused = (publish: () => void): void => expect(publish).toThrow(ValidationError);
    // @ts-expect-error a field of the wrong type
    refused(() => context.publish(orderPlaced, { orderId: 1, lines: [{ sku: 'a', quantity: 1 }] }));
    // @ts-expect-error a missing field
    refused(() => context.publish(orderPlaced, { orderId: 'o' }));
    // @ts-expect-error a value outside the enum
    refused(() => context.publish(orderPlaced, { orderId: 'o', lines: [{ sku: 'a', quantity: 1 }], currency: 'GBP' }));
    // A schema whose input is not JSON cannot be published to: a Date would arrive as a string and fail the consumer's z.date().
    const dated = defineTopic('orders.dated', z.object({ at: z.date() }));
    // @ts-expect-error a Date is not JSON
    refused(() => context.publish(dated, { at: 'not a date' as unknown as Date }));
    const coerced = defineTopic('orders.coerced', z.object({ at: z.coerce.date() }));
    context.publish(coerced, { at: '2026-12-07T16:00:00Z' });
    expect(context.pending.map((message) => message.topic)).toEqual(['orders.coerced']);
    context.takeRecords(); // clears what was published so far
    // Plain string topics keep their untyped, JSON-checked signature.
    context.publish('orders.legacy', { anything: true });
    expect(context.pending.map((message) => message.topic)).toEqual(['orders.legacy']);
  });

  it('app.publish has the same two signatures', () => {
    expectTypeOf<ConcordatApp['publish']>().toBeCallableWith(orderPlaced, { orderId: 'o', lines: [{ sku: 'a', quantity: 1 }] });
    expectTypeOf<ConcordatApp['publish']>().toBeCallableWith('orders.legacy', { n: 1 });
  });

  it('the handler table carries the schema of a typed topic, not of a string topic', () => {
    const table = exploreHandlers([Shop]);
    const handlers = table.consumers[0]!.handlers;
    expect(handlers.get('orders.placed')?.schema).toBe(orderPlaced.schema);
    expect(handlers.get('orders.legacy')?.schema).toBeUndefined();
  });

  it('refuses a bad topic name, a schema that is not a Standard Schema, and an asynchronous schema in publish', () => {
    expect(() => defineTopic('orders placed', z.object({}))).toThrow(expect.objectContaining({ code: ErrorCode.INVALID_TOPIC_EXCEPTION }));
    // @ts-expect-error not a Standard Schema
    expect(() => defineTopic('orders.raw', { parse: (value: unknown) => value })).toThrow(
      expect.objectContaining({ code: ErrorCode.CONFIG_INVALID, message: expect.stringContaining('is not a Standard Schema v1') }),
    );
    const slow = defineTopic(
      'orders.slow',
      z.object({ id: z.string() }).refine(async () => true),
    );
    expect(() => newContext().publish(slow, { id: 'x' })).toThrow(
      expect.objectContaining({ code: ErrorCode.CONFIG_INVALID, message: expect.stringContaining('validates asynchronously') }),
    );
  });
});
