import { Container } from 'inversify';
import { afterAll, beforeAll, describe, expect, expectTypeOf, it } from 'vitest';
import { z } from 'zod';
import { ErrorCode, ValidationError } from '../../../src/errors.js';
import { ConcordatApp, Service } from '../../../src/runtime/index.js';
import {
  COORDINATOR_OPTIONS,
  Cancel,
  Compensate,
  Confirm,
  Prepare,
  SagaParticipant,
  Step,
  TccParticipant,
  TransactionCoordinator,
  Try,
  XaParticipant,
  beginSaga,
  beginTcc,
  beginTwoPhase,
  defineParticipant,
  type ParticipantPayload,
  type SagaContext,
  type TccContext,
  type XaContext,
} from '../../../src/transactions/index.js';
import { createTxFixture, type TxFixture } from './support/fixture.js';
import { KafkaTransport } from '../../../src/transport/index.js';
import { startTestBroker, type TestBroker } from '../broker/helpers/broker.js';

/**
 * Typed participants (issue 14): one definition gives the participant's
 * name and its payload schema; the callers of `beginTcc`, `beginSaga` and
 * `beginTwoPhase` are type-checked and validated against it before anything
 * is stored, the participant's methods are typed from it and receive the
 * schema's output, and a payload that reaches a participant invalid anyway
 * (a caller that used the bare name) makes its first phase fail: the Try
 * or the prepare votes no, the saga step fails, with VALIDATION_FAILED. The
 * `@ts-expect-error` lines must not compile (`tsc --noEmit` checks them).
 */

const stock = defineParticipant(
  'typed-stock',
  z.object({ sku: z.string().min(1), quantity: z.number().int().positive(), warehouse: z.string().default('main') }),
);
const charge = defineParticipant('typed-charge', z.object({ cents: z.number().int().positive() }));
const ledger = defineParticipant('typed-ledger', z.object({ account: z.string(), cents: z.number().int() }));

/** Global transactions a participant method ran for, committed or not (a failed first phase rolls its effects back). */
const ran = new Set<string>();
const effect = (context: { manager: { query(sql: string, params: unknown[]): Promise<unknown> }; globalTxId: string }, what: string) => {
  ran.add(context.globalTxId);
  return context.manager.query(`INSERT INTO effects VALUES ($1, $2)`, [context.globalTxId, what]);
};

@Service('typed-stock')
@TccParticipant(stock)
class Stock {
  @Try()
  async reserve(context: TccContext<typeof stock>): Promise<void> {
    expectTypeOf(context.payload).toEqualTypeOf<{ sku: string; quantity: number; warehouse: string }>();
    await effect(context, `try ${context.payload.sku}x${context.payload.quantity}@${context.payload.warehouse}`);
  }
  @Confirm()
  async confirm(context: TccContext<typeof stock>): Promise<void> {
    await effect(context, `confirm ${context.payload.warehouse}`);
  }
  @Cancel()
  async cancel(context: TccContext<typeof stock>): Promise<void> {
    await effect(context, 'cancel');
  }
}

@Service('typed-charge')
@SagaParticipant(charge)
class Charge {
  @Step()
  async charge(context: SagaContext<typeof charge>): Promise<void> {
    expectTypeOf(context.payload.cents).toEqualTypeOf<number>();
    await effect(context, `charge ${context.payload.cents}`);
  }
  @Compensate()
  async refund(context: SagaContext<typeof charge>): Promise<void> {
    await effect(context, `refund ${context.payload.cents}`);
  }
}

@Service('typed-ledger')
@XaParticipant(ledger)
class Ledger {
  @Prepare()
  async post(context: XaContext<typeof ledger>): Promise<void> {
    await effect(context, `post ${context.payload.account} ${context.payload.cents}`);
  }
}

const testConsumer = { sessionTimeoutMs: 6000, heartbeatIntervalMs: 500, maxWaitMs: 100, retryBackoffMs: 20, retryBackoffMaxMs: 100 };

describe.each(['embedded', 'kafkajs → concordat broker'])('typed participants of global transactions (coordinator, %s, Postgres)', (kind) => {
  let f: TxFixture;
  let app: ConcordatApp;
  let broker: TestBroker | undefined;
  let kafka: KafkaTransport | undefined;

  beforeAll(async () => {
    f = await createTxFixture('typed_participants', [`CREATE TABLE effects (global_tx_id uuid, what text)`]);
    if (kind !== 'embedded') {
      broker = await startTestBroker();
      kafka = new KafkaTransport({ brokers: [broker.bootstrap], consumer: testConsumer });
    }
    const container = new Container();
    container.bind(COORDINATOR_OPTIONS).toConstantValue({ scanIntervalMs: 50, resendIntervalMs: 400 });
    app = ConcordatApp.create({
      name: 'typed-tx',
      services: [TransactionCoordinator, Stock, Charge, Ledger],
      container,
      database: f.db,
      transport: kafka ?? f.transport,
      partitions: 2,
    });
    await app.start();
  });
  afterAll(async () => {
    await app?.stop();
    await kafka?.close();
    await broker?.stop();
    await f?.close();
  });

  const effects = async (id: string): Promise<string[]> =>
    (await f.query<{ what: string }>(`SELECT what FROM effects WHERE global_tx_id = $1 ORDER BY what`, [id])).map((row) => row.what);
  const globalTxCount = async (): Promise<number> => (await f.query<{ n: number }>(`SELECT count(*)::int AS n FROM concordat.global_transaction`))[0]!.n;

  it('types the payloads from the definition, at begin and in the participant', () => {
    expectTypeOf<ParticipantPayload<typeof stock>>().toEqualTypeOf<{ sku: string; quantity: number; warehouse: string }>();
    expectTypeOf<ParticipantPayload<{ n: number }>>().toEqualTypeOf<{ n: number }>();
    const compileOnly = async (): Promise<void> => {
      await app.transaction(async (context) => {
        await beginTcc(context, { name: 'ok', branches: [{ participant: stock, payload: { sku: 'a', quantity: 1 } }] });
        // @ts-expect-error quantity must be a number
        await beginTcc(context, { name: 'bad', branches: [{ participant: stock, payload: { sku: 'a', quantity: '1' } }] });
        await beginTcc(context, {
          name: 'bad',
          branches: [
            // @ts-expect-error a payload of another participant
            { participant: stock, payload: { cents: 5 } },
            { participant: 'untyped', payload: {} },
          ],
        });
        // A saga mixing a typed step, an untyped one and a retry policy; a 2PC branch.
        await beginSaga(context, {
          name: 'ok',
          steps: [
            { participant: charge, payload: { cents: 5 }, retry: { maxAttempts: 2 } },
            { participant: 'ship', payload: { any: 1 } },
          ],
        });
        // @ts-expect-error cents is missing
        await beginSaga(context, { name: 'bad', steps: [{ participant: charge, payload: {} }] });
        await beginTwoPhase(context, { name: 'ok', branches: [{ participant: ledger, payload: { account: 'x', cents: -3 } }] });
        // @ts-expect-error account must be a string
        await beginTwoPhase(context, { name: 'bad', branches: [{ participant: ledger, payload: { account: 1, cents: 3 } }] });
      });
    };
    expect(typeof compileOnly).toBe('function');
  });

  it('TCC: a valid payload is confirmed; the participant received the schema output (default filled in)', async () => {
    const id = await app.transaction((context) => beginTcc(context, { name: 'typed', branches: [{ participant: stock, payload: { sku: 'a', quantity: 2 } }] }));
    expect(await f.ended(id)).toEqual({ state: 'CONFIRMED', reason: null, ended: true });
    expect(await effects(id)).toEqual(['confirm main', 'try ax2@main']);
    expect(ran.has(id)).toBe(true);
  });

  it('begin refuses an invalid payload of a typed participant before anything is stored, naming the branch', async () => {
    const before = await globalTxCount();
    for (const begin of [
      (context: Parameters<Parameters<ConcordatApp['transaction']>[0]>[0]) =>
        beginTcc(context, {
          name: 'bad',
          branches: [
            { participant: 'other', payload: {} },
            { participant: stock, payload: { sku: '', quantity: 0 } },
          ],
        }),
      (context: Parameters<Parameters<ConcordatApp['transaction']>[0]>[0]) =>
        beginSaga(context, { name: 'bad', steps: [{ participant: charge, payload: { cents: -1 } }] }),
      (context: Parameters<Parameters<ConcordatApp['transaction']>[0]>[0]) =>
        beginTwoPhase(context, { name: 'bad', branches: [{ participant: ledger, payload: { account: 'x', cents: 1.5 } }] }),
    ]) {
      await expect(app.transaction(begin)).rejects.toBeInstanceOf(ValidationError);
    }
    const error = (await app
      .transaction((context) =>
        beginTcc(context, {
          name: 'bad',
          branches: [
            { participant: 'other', payload: {} },
            { participant: stock, payload: { sku: '', quantity: 0 } },
          ],
        }),
      )
      .catch((caught: unknown) => caught)) as ValidationError;
    expect(error).toMatchObject({ code: ErrorCode.VALIDATION_FAILED, retriable: false });
    expect(error.message).toMatch(/^tcc\.branches\.1\.payload \(participant 'typed-stock'\) is invalid: sku: .+; quantity: .+$/);
    expect(await globalTxCount()).toBe(before);
  });

  it('a payload that reaches a participant invalid (sent by bare name) fails its first phase with VALIDATION_FAILED', async () => {
    const [tcc, saga, xa] = await app.transaction(async (context) => [
      await beginTcc(context, { name: 'untyped', branches: [{ participant: 'typed-stock', payload: { sku: 'a', quantity: 'two' } }] }),
      await beginSaga(context, { name: 'untyped', steps: [{ participant: 'typed-charge', payload: { cents: 'five' }, retry: { maxAttempts: 1 } }] }),
      await beginTwoPhase(context, { name: 'untyped', branches: [{ participant: 'typed-ledger', payload: { cents: 3 } }] }),
    ]);
    const validation =
      /ValidationError: the payload of branch 1 of global transaction \S+ \(participant '(typed-stock|typed-charge|typed-ledger)'\) is invalid: /;
    for (const id of [tcc!, saga!, xa!]) {
      const ended = await f.ended(id);
      expect(ended.state).toBe('CANCELLED');
      expect(ended.reason).toMatch(validation);
    }
    // No method ran for them: neither a Try, a step nor a prepare.
    expect([tcc!, saga!, xa!].filter((id) => ran.has(id))).toEqual([]);
  });
});
