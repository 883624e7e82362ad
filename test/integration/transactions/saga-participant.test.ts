import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { nonRetriable } from '../../../src/errors.js';
import { openDatabase, type Database } from '../../../src/persistence/index.js';
import { Dispatcher, Service, exploreHandlers } from '../../../src/runtime/index.js';
import {
  Compensate,
  FenceState,
  REPLY_TOPIC,
  SagaParticipant,
  Step,
  commandTopic,
  type BranchCommand,
  type SagaContext,
} from '../../../src/transactions/index.js';
import { createTestDatabase, type TestDatabase } from '../../support/database.js';
import { deliveryOf } from '../../support/deliveries.js';

let stepError: Error | undefined;
let compensationError: Error | undefined;
const called: string[] = [];

@Service('shipping')
@SagaParticipant('shipping.book')
class Shipping {
  @Step()
  async book(context: SagaContext<{ parcel: string }>): Promise<{ booking: string }> {
    called.push(`step:${context.globalTxId}`);
    await context.manager.query(`INSERT INTO bookings (global_tx_id, parcel) VALUES ($1, $2)`, [context.globalTxId, context.payload.parcel]);
    context.publish('shipping.audit', { booked: context.globalTxId });
    if (stepError !== undefined) throw stepError;
    return { booking: `B-${context.payload.parcel}` };
  }

  @Compensate()
  async unbook(context: SagaContext<{ parcel: string }>): Promise<void> {
    called.push(`compensate:${context.globalTxId}`);
    await context.manager.query(`DELETE FROM bookings WHERE global_tx_id = $1`, [context.globalTxId]);
    if (compensationError !== undefined) throw compensationError;
  }
}

describe('saga participant behind its fence (real Postgres)', () => {
  let testDb: TestDatabase;
  let db: Database;
  let dispatcher: Dispatcher;

  beforeAll(async () => {
    testDb = await createTestDatabase('saga_participant');
    db = await openDatabase({ url: testDb.url, poolSize: 4 });
    await db.dataSource.query(`CREATE TABLE bookings (global_tx_id uuid, parcel text)`);
    const instance = new Shipping();
    dispatcher = new Dispatcher(exploreHandlers([Shipping]).consumers[0]!, {
      dataSource: db.dataSource,
      resolve: () => instance,
      signal: new AbortController().signal,
    });
  });
  afterAll(async () => {
    await db.close();
    await testDb.drop();
  });
  beforeEach(() => {
    stepError = undefined;
    compensationError = undefined;
    called.length = 0;
  });

  async function send(action: 'execute' | 'compensate', globalTxId: string): Promise<Record<string, unknown>> {
    const command: BranchCommand = { globalTxId, branchId: 2, participant: 'shipping.book', action, payload: { parcel: 'p1' } };
    const before = Number((await db.dataSource.query(`SELECT coalesce(max(seq), 0) AS s FROM concordat.outbox`))[0].s);
    await dispatcher.dispatch(
      deliveryOf(commandTopic('SAGA', 'shipping.book'), { type: `concordat.saga.${action}`, source: 'c', data: command, partitionkey: globalTxId }),
    );
    const replies = await db.dataSource.query(`SELECT payload FROM concordat.outbox WHERE topic = $1 AND seq > $2`, [REPLY_TOPIC, before]);
    expect(replies).toHaveLength(1);
    return JSON.parse(replies[0].payload.toString());
  }
  const bookings = async (tx: string): Promise<number> =>
    Number((await db.dataSource.query(`SELECT count(*) AS n FROM bookings WHERE global_tx_id = $1`, [tx]))[0].n);
  const fence = async (tx: string): Promise<string | undefined> =>
    (await db.dataSource.query(`SELECT state FROM concordat.fence WHERE global_tx_id = $1`, [tx]))[0]?.state;
  const audits = async (): Promise<number> =>
    Number((await db.dataSource.query(`SELECT count(*) AS n FROM concordat.outbox WHERE topic = 'shipping.audit'`))[0].n);

  it('runs a step once, however often it is sent, and compensates it once', async () => {
    const tx = randomUUID();
    // The step that ran echoes its payload (a coordinator that lost the saga compensates with it); the duplicate says it repeats.
    expect(await send('execute', tx)).toEqual({
      globalTxId: tx,
      branchId: 2,
      participant: 'shipping.book',
      action: 'execute',
      ok: true,
      result: { booking: 'B-p1' },
      payload: { parcel: 'p1' },
    });
    expect(await send('execute', tx)).toEqual({ globalTxId: tx, branchId: 2, participant: 'shipping.book', action: 'execute', ok: true, repeated: true });
    expect(await fence(tx)).toBe(FenceState.TRIED);
    expect(await send('compensate', tx)).toMatchObject({ action: 'compensate', ok: true });
    expect(await send('compensate', tx)).toMatchObject({ action: 'compensate', ok: true });
    expect(called).toEqual([`step:${tx}`, `compensate:${tx}`]);
    expect(await bookings(tx)).toBe(0);
    expect(await fence(tx)).toBe(FenceState.CANCELLED);
  });

  it('a failed step leaves no trace (writes, messages, fence), says whether it is retriable, and runs afresh when sent again', async () => {
    const tx = randomUUID();
    const auditsBefore = await audits();
    stepError = new Error('carrier timeout');
    expect(await send('execute', tx)).toEqual({
      globalTxId: tx,
      branchId: 2,
      participant: 'shipping.book',
      action: 'execute',
      ok: false,
      error: 'Error: carrier timeout',
      retriable: true,
    });
    expect(await bookings(tx)).toBe(0);
    expect(await audits()).toBe(auditsBefore);
    expect(await fence(tx)).toBeUndefined();
    stepError = nonRetriable(new Error('address invalid'));
    expect(await send('execute', tx)).toMatchObject({ ok: false, error: 'Error: address invalid', retriable: false });
    stepError = undefined;
    expect(await send('execute', tx)).toMatchObject({ ok: true, result: { booking: 'B-p1' } });
    expect(await bookings(tx)).toBe(1);
    expect(await audits()).toBe(auditsBefore + 1);
  });

  it('a failed compensation rolls back its writes and keeps the step compensable', async () => {
    const tx = randomUUID();
    await send('execute', tx);
    compensationError = nonRetriable(new Error('already shipped'));
    expect(await send('compensate', tx)).toMatchObject({ ok: false, error: 'Error: already shipped', retriable: false });
    expect(await bookings(tx)).toBe(1);
    expect(await fence(tx)).toBe(FenceState.TRIED);
    compensationError = undefined;
    expect(await send('compensate', tx)).toMatchObject({ ok: true });
    expect(await bookings(tx)).toBe(0);
  });

  it('a compensation before its step is empty, and the step that arrives after it is refused (anti-hanging)', async () => {
    const tx = randomUUID();
    expect(await send('compensate', tx)).toMatchObject({ action: 'compensate', ok: true });
    expect(await send('execute', tx)).toEqual({
      globalTxId: tx,
      branchId: 2,
      participant: 'shipping.book',
      action: 'execute',
      ok: false,
      error: 'STEP_AFTER_COMPENSATION: the step was compensated before it arrived',
      retriable: false,
    });
    expect(called).toEqual([]);
    expect(await bookings(tx)).toBe(0);
  });

  it('the explorer rejects a participant that lacks @Compensate', () => {
    @Service('half')
    @SagaParticipant('half.p')
    class Half {
      @Step()
      async a(): Promise<void> {}
    }
    expect(() => exploreHandlers([Half])).toThrow("Half: saga participant 'half.p' lacks @Compensate");
  });
});
