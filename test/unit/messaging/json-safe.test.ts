import { describe, expect, expectTypeOf, it } from 'vitest';
import type { EntityManager } from 'typeorm';
import {
  beginSaga,
  beginTcc,
  beginTwoPhase,
  ConcordatApp,
  TransactionContext,
  type BranchContext,
  type DedupWindow,
  type DeliveryInfo,
  type GlobalTxEndState,
  type GlobalTxOutcome,
  type JsonSafe,
  type SagaParticipantOptions,
  type SagaStep,
  type ServiceOptions,
  type TccBranch,
  type TccParticipantOptions,
} from '../../../src/index.js';

/**
 * Payloads are JSON at compile time. The `@ts-expect-error` lines are the
 * test of what must NOT compile: `tsc --noEmit` (the first step of
 * `npm test`) fails if any of them compiles. The `expectTypeOf` lines are
 * checked by the same compilation.
 */

interface Order {
  orderId: string;
  lines: Array<{ sku: string; quantity: number }>;
  note?: string;
  shipped: boolean | null;
}

type Plain = { total: number; tags: readonly string[] };

class WithMethod {
  cents = 5;
  format(): string {
    return `${this.cents}`;
  }
}

const order: Order = { orderId: 'o-1', lines: [{ sku: 'a', quantity: 2 }], shipped: null };

function newContext(): TransactionContext {
  // publish only records the message; the manager is used when the outbox is written.
  return new TransactionContext(undefined as unknown as EntityManager, 'json-test');
}

describe('JSON-safe payloads', () => {
  it('publish accepts plain interfaces, type aliases, primitives and arrays, and keeps them as given', () => {
    const context = newContext();
    context.publish('orders.placed', order);
    context.publish('orders.totals', { total: 3, tags: ['x'] } satisfies Plain);
    context.publish('orders.count', 3);
    context.publish('orders.ids', ['a', 'b']);
    context.publish('orders.unknown', JSON.parse('{"any":1}') as unknown);
    expect(context.pending.map((message) => message.envelope.data)).toEqual([order, { total: 3, tags: ['x'] }, 3, ['a', 'b'], { any: 1 }]);
  });

  it('publish refuses at compile time what JSON would change or lose', () => {
    const context = newContext();
    // @ts-expect-error a Map becomes {}
    context.publish('bad', { byId: new Map<string, number>() });
    // @ts-expect-error a Set becomes {}
    context.publish('bad', { ids: new Set<string>() });
    // @ts-expect-error a Date becomes a string
    context.publish('bad', { at: new Date(0) });
    // @ts-expect-error a function is dropped
    context.publish('bad', { callback: () => 1 });
    // @ts-expect-error a bigint throws
    context.publish('bad', { cents: 10n });
    // @ts-expect-error undefined in an array becomes null
    context.publish('bad', { values: [1, undefined] });
    // @ts-expect-error a class instance's methods are dropped
    context.publish('bad', new WithMethod());
    // @ts-expect-error nested deep inside an interface's array
    context.publish('bad', { lines: [{ at: new Date(0) }] });
    // What the compile-time check spares: JSON.stringify would have turned these into {} and a string.
    expect(JSON.parse(JSON.stringify({ byId: new Map([['a', 1]]), at: new Date(0) }))).toEqual({ byId: {}, at: '1970-01-01T00:00:00.000Z' });
  });

  it('the JsonSafe type maps what is not JSON to never and leaves JSON as it is', () => {
    expectTypeOf<JsonSafe<Order>>().toEqualTypeOf<{
      orderId: string;
      lines: Array<{ sku: string; quantity: number }>;
      note?: string;
      shipped: boolean | null;
    }>();
    expectTypeOf<JsonSafe<{ at: Date }>>().toEqualTypeOf<{ at: never }>();
    expectTypeOf<JsonSafe<Map<string, number>>>().toBeNever();
    expectTypeOf<JsonSafe<Array<number | undefined>>>().toBeNever();
    expectTypeOf<JsonSafe<unknown>>().toBeUnknown();
  });
});

// Compiled, not run (begin* needs a database): the calls below type-check or, marked, must not.
export async function beginCallsTypeCheck(context: TransactionContext): Promise<void> {
  await beginTcc(context, { name: 'book', branches: [{ participant: 'rooms.reserve', payload: order }], payload: { orderId: 'o-1' } });
  await beginSaga(context, { name: 'book', steps: [{ participant: 'rooms.reserve', payload: order, retry: { maxAttempts: 2 } }] });
  await beginTwoPhase(context, { name: 'book', branches: [{ participant: 'ledger.post', payload: [1, 2] }] });
  const branches: TccBranch[] = [{ participant: 'rooms.reserve', payload: order }];
  await beginTcc(context, { name: 'book', branches });
  // @ts-expect-error a Map in a TCC branch's payload
  await beginTcc(context, { name: 'book', branches: [{ participant: 'rooms.reserve', payload: { byId: new Map() } }] });
  // @ts-expect-error a Date in a saga step's payload
  await beginSaga(context, { name: 'book', steps: [{ participant: 'rooms.reserve', payload: { at: new Date() } }] });
  // @ts-expect-error a bigint in a 2PC branch's payload
  await beginTwoPhase(context, { name: 'book', branches: [{ participant: 'ledger.post', payload: { cents: 1n } }] });
  // @ts-expect-error a Set in the global transaction's own payload
  await beginTcc(context, { name: 'book', payload: { ids: new Set() }, branches: [{ participant: 'rooms.reserve', payload: {} }] });
  // @ts-expect-error an option that does not exist (timeout, not timeoutMs) still fails to compile
  await beginTcc(context, { name: 'book', timeout: 5000, branches: [{ participant: 'rooms.reserve', payload: {} }] });
}

// Compiled, not run: the types a user needs are importable from the package entry.
export function exportedTypesCompile(app: ConcordatApp, outcome: GlobalTxOutcome): void {
  expectTypeOf(outcome.state).toEqualTypeOf<GlobalTxEndState>();
  expectTypeOf<GlobalTxEndState>().toEqualTypeOf<'CONFIRMED' | 'CANCELLED' | 'FAILED'>();
  expectTypeOf<SagaStep['payload']>().toBeUnknown();
  expectTypeOf<ServiceOptions>().toHaveProperty('group');
  expectTypeOf<TccParticipantOptions>().toHaveProperty('retry');
  expectTypeOf<SagaParticipantOptions>().toHaveProperty('group');
  expectTypeOf<DeliveryInfo>().not.toBeAny();
  expectTypeOf<DedupWindow>().toHaveProperty('windowMs');
  expectTypeOf<BranchContext>().toHaveProperty('manager');
  // @ts-expect-error app.publish is checked too
  void app.publish('bad', { at: new Date() });
}
