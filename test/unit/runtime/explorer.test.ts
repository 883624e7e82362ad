import { describe, expect, it } from 'vitest';
import { injectable } from 'inversify';
import { exploreHandlers, OnMessage, Service, type MessageContext } from '../../../src/runtime/index.js';

describe('handler explorer', () => {
  it('builds one consumer per group, routed by topic', () => {
    @Service('inventory')
    class Inventory {
      @OnMessage('orders.placed', { retry: { maxAttempts: 3 } })
      async reserve(_ctx: MessageContext): Promise<void> {}
      @OnMessage('orders.cancelled')
      async release(_ctx: MessageContext): Promise<void> {}
      @OnMessage('orders.placed', { group: 'inventory-audit', transactional: false })
      async audit(_ctx: MessageContext): Promise<void> {}
    }
    const table = exploreHandlers([Inventory]);
    expect(table.services).toEqual([{ serviceClass: Inventory, serviceName: 'inventory' }]);
    expect(table.consumers.map((c) => [c.group, [...c.handlers.keys()]])).toEqual([
      ['inventory', ['orders.placed', 'orders.cancelled']],
      ['inventory-audit', ['orders.placed']],
    ]);
    const reserve = table.consumers[0]!.handlers.get('orders.placed')!;
    expect(reserve.label).toBe('Inventory.reserve');
    expect(reserve.transactional).toBe(true);
    expect(reserve.retry.maxAttempts).toBe(3);
    expect(table.consumers[1]!.handlers.get('orders.placed')!.transactional).toBe(false);
  });

  it('reports every misuse at once, before any I/O', () => {
    @injectable()
    class NotAService {
      @OnMessage('a')
      async handle(): Promise<void> {}
    }
    @Service('payments')
    class PaymentsA {
      @OnMessage('orders.placed')
      async first(): Promise<void> {}
    }
    @Service('payments')
    class PaymentsB {
      @OnMessage('orders.placed')
      async second(): Promise<void> {}
      @OnMessage('bad topic!')
      async third(): Promise<void> {}
      @OnMessage('ok', { retry: { maxAttempts: 0 } })
      async fourth(): Promise<void> {}
    }
    expect(() => exploreHandlers([NotAService, PaymentsA, PaymentsB, PaymentsA])).toThrow(
      [
        'invalid handler definitions:',
        "- NotAService is not a Concordat service: decorate it with @Service('<name>')",
        "- PaymentsA.first and PaymentsB.second both handle topic 'orders.placed' in consumer group 'payments': merge them, or give one its own group with @OnMessage('orders.placed', { group: '...' })",
        `- PaymentsB.third: Topic name "bad topic!" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'`,
        '- invalid options: PaymentsB.fourth.retry.maxAttempts: Too small: expected number to be >=1 (got 0)',
        '- PaymentsA is listed twice in services',
      ].join('\n'),
    );
  });

  it("concurrency.perPartition: 1 by default, the handler's value otherwise, in 1..256, the same for the handlers of one topic in one group", () => {
    @Service('slow')
    class Slow {
      @OnMessage('calls.made', { concurrency: { perPartition: 16 } })
      async call(_ctx: MessageContext): Promise<void> {}
      @OnMessage('calls.logged')
      async log(_ctx: MessageContext): Promise<void> {}
    }
    const handlers = exploreHandlers([Slow]).consumers[0]!.handlers;
    expect(handlers.get('calls.made')!.perPartition).toBe(16);
    expect(handlers.get('calls.logged')!.perPartition).toBe(1);

    @Service('bad-concurrency')
    class BadConcurrency {
      @OnMessage('a', { concurrency: { perPartition: 0 } })
      async zero(): Promise<void> {}
      @OnMessage('b', { concurrency: { perPartition: 2.5 } })
      async fraction(): Promise<void> {}
      @OnMessage('c', { concurrency: { perPartition: 257 } })
      async tooMany(): Promise<void> {}
      @OnMessage('d', { filter: { type: 'x' }, concurrency: { perPartition: 4 } })
      async four(): Promise<void> {}
      @OnMessage('d', { filter: { type: 'y' }, concurrency: { perPartition: 8 } })
      async eight(): Promise<void> {}
    }
    expect(() => exploreHandlers([BadConcurrency])).toThrow(
      [
        'invalid handler definitions:',
        '- BadConcurrency.zero.concurrency.perPartition: must be an integer in 1..256, got 0',
        '- BadConcurrency.fraction.concurrency.perPartition: must be an integer in 1..256, got 2.5',
        '- BadConcurrency.tooMany.concurrency.perPartition: must be an integer in 1..256, got 257',
        "- BadConcurrency.four and BadConcurrency.eight both handle topic 'd' in consumer group 'bad-concurrency' with different concurrency.perPartition (4 and 8): a partition is consumed one way, give both the same value",
      ].join('\n'),
    );
  });

  it('refuses @Service on top of @injectable, as inversify does', () => {
    expect(() => {
      @Service('twice')
      @injectable()
      class Twice {}
      return Twice;
    }).toThrow('Cannot apply @injectable decorator multiple times at class "Twice"');
  });
});
