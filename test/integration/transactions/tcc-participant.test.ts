import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { nonRetriable } from '../../../src/errors.js';
import { openDatabase, type Database } from '../../../src/persistence/index.js';
import { Dispatcher, Service, exploreHandlers } from '../../../src/runtime/index.js';
import {
  Cancel,
  Confirm,
  FenceState,
  REPLY_TOPIC,
  TccParticipant,
  Try,
  participantTopic,
  type TccAction,
  type TccCommand,
  type TccContext,
} from '../../../src/transactions/index.js';
import { createTestDatabase, type TestDatabase } from '../../support/database.js';
import { deliveryOf } from '../../support/deliveries.js';

let refuseTry = false;
const called: string[] = [];

@Service('warehouse')
@TccParticipant('warehouse.hold', { retry: { maxAttempts: 2, strategy: 'immediate' } })
class Warehouse {
  @Try()
  async hold(context: TccContext<{ units: number }>): Promise<{ held: number }> {
    called.push(`try:${context.globalTxId}`);
    await context.manager.query(`INSERT INTO holds (global_tx_id, units) VALUES ($1, $2)`, [context.globalTxId, context.payload.units]);
    context.publish('warehouse.audit', { tried: context.globalTxId });
    if (refuseTry) throw nonRetriable(new Error('no room'));
    return { held: context.payload.units };
  }

  @Confirm()
  async keep(context: TccContext<{ units: number }>): Promise<void> {
    called.push(`confirm:${context.globalTxId}`);
  }

  @Cancel()
  async drop(context: TccContext<{ units: number }>): Promise<void> {
    called.push(`cancel:${context.globalTxId}`);
    await context.manager.query(`DELETE FROM holds WHERE global_tx_id = $1`, [context.globalTxId]);
  }
}

describe('TCC participant behind its fence (real Postgres)', () => {
  let testDb: TestDatabase;
  let db: Database;
  let dispatcher: Dispatcher;

  beforeAll(async () => {
    testDb = await createTestDatabase('tcc_participant');
    db = await openDatabase({ url: testDb.url, poolSize: 4 });
    await db.dataSource.query(`CREATE TABLE holds (global_tx_id uuid, units int)`);
    const table = exploreHandlers([Warehouse]);
    const instance = new Warehouse();
    dispatcher = new Dispatcher(table.consumers[0]!, { dataSource: db.dataSource, resolve: () => instance, signal: new AbortController().signal });
  });
  afterAll(async () => {
    await db.close();
    await testDb.drop();
  });
  beforeEach(async () => {
    refuseTry = false;
    called.length = 0;
  });

  /** Sends a command as the coordinator would (a new message each time) and returns the reply it produced. */
  async function send(action: TccAction, globalTxId: string, units = 2): Promise<Record<string, unknown> | undefined> {
    const command: TccCommand = { globalTxId, branchId: 1, participant: 'warehouse.hold', action, payload: { units } };
    const before = Number((await db.dataSource.query(`SELECT coalesce(max(seq), 0) AS s FROM concordat.outbox`))[0].s);
    await dispatcher.dispatch(
      deliveryOf(participantTopic('warehouse.hold'), { type: `concordat.tcc.${action}`, source: 'coordinator', data: command, partitionkey: globalTxId }),
    );
    const replies = await db.dataSource.query(`SELECT payload FROM concordat.outbox WHERE topic = $1 AND seq > $2`, [REPLY_TOPIC, before]);
    expect(replies.length).toBeLessThanOrEqual(1);
    return replies[0] === undefined ? undefined : JSON.parse(replies[0].payload.toString());
  }
  const fence = async (globalTxId: string): Promise<string | undefined> =>
    (await db.dataSource.query(`SELECT state FROM concordat.fence WHERE global_tx_id = $1`, [globalTxId]))[0]?.state;
  const holds = async (globalTxId: string): Promise<number> =>
    Number((await db.dataSource.query(`SELECT count(*) AS n FROM holds WHERE global_tx_id = $1`, [globalTxId]))[0].n);

  it('confirm path: Try reserves and votes yes; Confirm runs once however often it is sent', async () => {
    const tx = randomUUID();
    // The yes echoes the payload, for a coordinator that would have to cancel without holding the global transaction.
    expect(await send('try', tx)).toEqual({
      globalTxId: tx,
      branchId: 1,
      participant: 'warehouse.hold',
      action: 'try',
      ok: true,
      result: { held: 2 },
      payload: { units: 2 },
    });
    expect(await fence(tx)).toBe(FenceState.TRIED);
    expect(await send('try', tx)).toEqual({ globalTxId: tx, branchId: 1, participant: 'warehouse.hold', action: 'try', ok: true, payload: { units: 2 } });
    expect(await send('confirm', tx)).toMatchObject({ action: 'confirm', ok: true });
    expect(await send('confirm', tx)).toMatchObject({ action: 'confirm', ok: true });
    expect(called).toEqual([`try:${tx}`, `confirm:${tx}`]);
    expect(await fence(tx)).toBe(FenceState.CONFIRMED);
    expect(await send('cancel', tx)).toMatchObject({ action: 'cancel', ok: false, error: 'Cancel after Confirm', retriable: false });
  });

  it('cancel path: Cancel undoes a successful Try, once', async () => {
    const tx = randomUUID();
    await send('try', tx);
    expect(await holds(tx)).toBe(1);
    expect(await send('cancel', tx)).toMatchObject({ ok: true });
    expect(await send('cancel', tx)).toMatchObject({ ok: true });
    expect(called).toEqual([`try:${tx}`, `cancel:${tx}`]);
    expect(await holds(tx)).toBe(0);
    expect(await fence(tx)).toBe(FenceState.CANCELLED);
  });

  it('empty rollback and anti-hanging: a Cancel before its Try undoes nothing, and the late Try is refused', async () => {
    const tx = randomUUID();
    expect(await send('cancel', tx)).toMatchObject({ action: 'cancel', ok: true });
    expect(called).toEqual([]);
    expect(await fence(tx)).toBe(FenceState.CANCELLED);
    expect(await send('try', tx)).toEqual({
      globalTxId: tx,
      branchId: 1,
      participant: 'warehouse.hold',
      action: 'try',
      ok: false,
      error: 'TRY_AFTER_CANCEL: the branch was cancelled before its Try arrived',
    });
    expect(called).toEqual([]);
    expect(await holds(tx)).toBe(0);
  });

  it('a Try that refuses votes no, and its writes and messages are rolled back while the vote is kept', async () => {
    refuseTry = true;
    const tx = randomUUID();
    const auditBefore = Number((await db.dataSource.query(`SELECT count(*) AS n FROM concordat.outbox WHERE topic = 'warehouse.audit'`))[0].n);
    expect(await send('try', tx)).toEqual({ globalTxId: tx, branchId: 1, participant: 'warehouse.hold', action: 'try', ok: false, error: 'Error: no room' });
    expect(await holds(tx)).toBe(0);
    expect(Number((await db.dataSource.query(`SELECT count(*) AS n FROM concordat.outbox WHERE topic = 'warehouse.audit'`))[0].n)).toBe(auditBefore);
    expect(await fence(tx)).toBe(FenceState.TRY_FAILED);
    expect(await send('cancel', tx)).toMatchObject({ ok: true });
    expect(called).toEqual([`try:${tx}`]);
    expect(await fence(tx)).toBe(FenceState.CANCELLED);
  });

  it('refuses Confirm without a successful Try', async () => {
    const tx = randomUUID();
    expect(await send('confirm', tx)).toMatchObject({ ok: false, error: 'Confirm without a successful Try (fence: none)', retriable: false });
    expect(called).toEqual([]);
  });

  it('the explorer rejects a participant that lacks a role', () => {
    @Service('broken')
    @TccParticipant('broken.p')
    class Broken {
      @Try()
      async a(): Promise<void> {}
      @Try()
      async b(): Promise<void> {}
    }
    expect(() => exploreHandlers([Broken])).toThrow("Broken: TCC participant 'broken.p' lacks @Confirm, @Cancel");
  });
});
