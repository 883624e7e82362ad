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
import { createLogger } from '../../../src/observability/index.js';
import { ReplyAttribute, ReplyType, failedReplyRecords } from '../../../src/runtime/index.js';
import { Requester } from '../../../src/runtime/request-reply.js';

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

describe('requester bookkeeping without I/O', () => {
  /** A reply to `requestId` as the reply topic's handler gets it. */
  function replyContext(requestId: string, data: unknown): MessageContext {
    const message = createEnvelope({ type: ReplyType.OK, source: 'pricing', data, extensions: { [ReplyAttribute.IN_REPLY_TO]: requestId } });
    return new MessageContext(undefined as unknown as EntityManager, 'rr-test', message, {
      topic: 'app.replies.x',
      partition: 0,
      offset: 1,
      attempt: 1,
      maxAttempts: 5,
      consumer: 'app.replies.x',
    });
  }

  it('refuses an id held by a request whose transaction is still open, so that its rollback cannot drop the waiting one', async () => {
    const requester = new Requester('rr-dup', { instanceId: 'dup', timeoutMs: 60_000 }, createLogger('test'));
    requester.open();
    try {
      const first = requester.send(newContext(), 'prices.quote', { sku: 'a' }, { id: 'req-1' });
      // Before its transaction committed: not waiting yet, but the id is taken.
      expect(() => requester.send(newContext(), 'prices.quote', { sku: 'a' }, { id: 'req-1' })).toThrow(
        'a request with id req-1 is waiting for its reply already (or being sent)',
      );
      first.sent.committed();
      expect(requester.stats.pending).toBe(1);
      const handler = requester.consumer().handlers.get(requester.replyTopic)!;
      await handler.invoke({}, replyContext('req-1', { cents: 5 }));
      await expect(first.pending.reply()).resolves.toEqual({ cents: 5 });
      expect(requester.stats).toMatchObject({ answered: 1, pending: 0, unmatched: { late: 0, extra: 0, unknown: 0 } });
      // Ended: the id may be used again.
      const again = requester.send(newContext(), 'prices.quote', { sku: 'a' }, { id: 'req-1' });
      again.sent.rolledBack(new Error('rolled back'));
      await expect(again.pending.reply()).rejects.toMatchObject({ code: ErrorCode.REQUEST_NOT_SENT });
    } finally {
      requester.close();
    }
  });

  it('gives two apps of one name in one process, both with the default instanceId, reply topics of their own', () => {
    const logger = createLogger('test');
    const first = new Requester('rr-default-id', {}, logger);
    const second = new Requester('rr-default-id', {}, logger);
    expect(first.replyTopic).toBe(`rr-default-id.replies.${first.replyTopic.split('.replies.')[1]}`);
    expect(first.replyTopic.endsWith(`-${process.pid}`)).toBe(true);
    expect(second.replyTopic).toBe(`${first.replyTopic}-2`);
    expect(second.consumer().group).toBe(second.replyTopic);
    // An explicit instanceId is taken as given.
    expect(new Requester('rr-default-id', { instanceId: 'pod-0' }, logger).replyTopic).toBe('rr-default-id.replies.pod-0');
  });
});
