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
  createEnvelope,
  defineTopic,
  type PendingRequest,
  type TopicContext,
  type TopicReply,
} from '../../../src/index.js';
import { ReplyAttribute, ReplyType, failedReplyRecords } from '../../../src/runtime/index.js';

/**
 * Request-reply's types and its refusals that need no I/O (issue 14). The
 * `@ts-expect-error` lines are the test of what must NOT compile (`tsc
 * --noEmit` fails if one of them compiles); the end-to-end behaviour is in
 * test/integration/runtime/request-reply.test.ts.
 */

const quote = defineTopic('prices.quote', z.object({ sku: z.string() }), {
  reply: z.object({ cents: z.number().int(), currency: z.enum(['EUR', 'USD']).default('EUR') }),
});
const untypedReply = defineTopic('prices.hint', z.object({ sku: z.string() }));

@Service('typed-pricing')
export class Pricing {
  @OnMessage(quote)
  async quote(context: TopicContext<typeof quote>) {
    return { cents: context.data.sku.length };
  }

  // Without a reply schema the handler may return anything (undefined: no reply).
  @OnMessage(untypedReply)
  async hint(_context: TopicContext<typeof untypedReply>): Promise<void> {}
}

/** Never explored: it exists for the line that must not compile. */
@Service('typed-wrong-pricing')
export class WrongPricing {
  // @ts-expect-error the handler's return value is not the topic's reply type
  @OnMessage(quote)
  async quote(_context: TopicContext<typeof quote>) {
    return { cents: 'ten' };
  }
}

function newContext(): TransactionContext {
  return new TransactionContext(undefined as unknown as EntityManager, 'rr-test');
}

function messageContext(): MessageContext {
  const message = createEnvelope({ type: 'orders.placed', source: 'shop', data: {} });
  return new MessageContext(undefined as unknown as EntityManager, 'rr-test', message, {
    topic: 'orders.placed',
    partition: 0,
    offset: 7,
    attempt: 1,
    maxAttempts: 5,
    consumer: 'shop',
  });
}

describe('request-reply types', () => {
  it('types the reply from the topic, or from the type argument of a plain topic', () => {
    expectTypeOf<TopicReply<typeof quote>>().toEqualTypeOf<{ cents: number; currency: 'EUR' | 'USD' }>();
    expectTypeOf<TopicReply<typeof untypedReply>>().toEqualTypeOf<unknown>();
    const app = ConcordatApp.create({ name: 'types', services: [Pricing] });
    // Never called (the app is not started): only their types are checked.
    const typedCall = () => app.request(quote, { sku: 'a' });
    const plainCall = () => app.request<{ n: number }>('plain.topic', { any: 'thing' });
    const untypedCall = () => app.request(untypedReply, { sku: 'a' });
    expectTypeOf(typedCall).returns.resolves.toEqualTypeOf<{ cents: number; currency: 'EUR' | 'USD' }>();
    expectTypeOf(plainCall).returns.resolves.toEqualTypeOf<{ n: number }>();
    expectTypeOf(untypedCall).returns.resolves.toEqualTypeOf<unknown>();
    // @ts-expect-error the request payload is the topic's input type
    void (() => app.request(quote, { sku: 1 }));
    const typed = (context: TransactionContext) => context.request(quote, { sku: 'a' }, { timeoutMs: 500 });
    expectTypeOf(typed).returns.toEqualTypeOf<PendingRequest<{ cents: number; currency: 'EUR' | 'USD' }>>();
    // @ts-expect-error the request payload is the topic's input type
    void ((context: TransactionContext) => context.request(quote, { sku: 1 }));
    // @ts-expect-error a request cannot be published for later
    void ((context: TransactionContext) => context.request(quote, { sku: 'a' }, { delayMs: 10 }));
  });
});

describe('request-reply refusals without I/O', () => {
  it('ctx.request without the requests option says how to enable it', () => {
    expect(() => newContext().request(quote, { sku: 'a' })).toThrow(
      "cannot send a request to topic 'prices.quote': request-reply is not enabled in this app. Create it with the 'requests' option",
    );
    try {
      newContext().request('plain.topic', {});
    } catch (error) {
      expect(error).toMatchObject({ code: ErrorCode.REQUEST_INVALID });
    }
  });

  it('ctx.request in a message handler is refused: nothing could wait for the reply', () => {
    expect(() => messageContext().request(quote, { sku: 'a' })).toThrow(
      /from the handler of message .* on topic 'orders\.placed': a handler's request is sent only when/,
    );
  });

  it('a reply schema that is not a Standard Schema is refused by defineTopic', () => {
    expect(() => defineTopic('prices.bad', z.object({}), { reply: { parse: () => 1 } as never })).toThrow(
      "the reply schema of topic 'prices.bad' is not a Standard Schema v1",
    );
  });

  it('a failed reply goes to the reply topic the request names, and only to a valid one', () => {
    const failure = { code: 'Error', message: 'Error: boom', handler: 'A.b', consumer: 'a', attempts: 3, deadLetterId: '42' };
    const request = createEnvelope({ type: 't', source: 's', data: {}, correlationid: 'c-1', extensions: { [ReplyAttribute.REPLY_TO]: 'app.replies.x' } });
    const [record, ...rest] = failedReplyRecords(request, 'svc', failure);
    expect(rest).toEqual([]);
    expect(record).toMatchObject({ topic: 'app.replies.x', key: null });
    expect(record!.headers).toMatchObject({
      ce_type: ReplyType.FAILED,
      ce_source: 'svc',
      ce_inreplyto: request.id,
      ce_causationid: request.id,
      ce_correlationid: 'c-1',
    });
    expect(JSON.parse(record!.payload!.toString('utf8'))).toEqual(failure);
    expect(failedReplyRecords({ ...request, extensions: { [ReplyAttribute.REPLY_TO]: 'bad topic!' } }, 'svc', failure)).toEqual([]);
    expect(failedReplyRecords(createEnvelope({ type: 't', source: 's', data: {} }), 'svc', failure)).toEqual([]);
    expect(failedReplyRecords(undefined, 'svc', failure)).toEqual([]);
  });
});
