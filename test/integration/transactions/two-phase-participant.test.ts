import { randomUUID } from 'node:crypto';
import { Column, Entity, PrimaryGeneratedColumn } from 'typeorm';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { nonRetriable } from '../../../src/errors.js';
import { armFault, disarmFaults } from '../../../src/observability/index.js';
import { openDatabase, type Database } from '../../../src/persistence/index.js';
import { Dispatcher, Service, exploreHandlers } from '../../../src/runtime/index.js';
import {
  BranchAction,
  FenceState,
  Prepare,
  REPLY_TOPIC,
  XaParticipant,
  commandTopic,
  gidFor,
  type BranchCommand,
  type XaContext,
} from '../../../src/transactions/index.js';
import { createTestDatabase, type TestDatabase } from '../../support/database.js';
import { deliveryOf } from '../../support/deliveries.js';

let refuse = false;
const called: string[] = [];

/** A mapped table, for a @Prepare that writes with repository.save() (which opens a transaction of its own unless it knows it is in one). */
@Entity({ name: 'saved' })
class Saved {
  @PrimaryGeneratedColumn({ type: 'int' })
  id?: number;
  @Column({ type: 'uuid', name: 'global_tx_id' })
  globalTxId!: string;
  @Column({ type: 'int' })
  cents!: number;
}

/** @Prepare methods that write through the provided manager in the ways TypeORM users do, or end the branch's transaction themselves. */
@Service('careless')
@XaParticipant('careless.p', { retry: { maxAttempts: 1 } })
class Careless {
  static how: 'save' | 'nested' | 'commit' | 'rollback' | 'swallow' = 'save';
  /** What another session saw of the branch's fence row right after the @Prepare's own COMMIT (before any vote). */
  static fenceAtCommit: unknown;
  @Prepare()
  async work(context: XaContext<{ cents: number }>): Promise<void> {
    const row = { globalTxId: context.globalTxId, cents: context.payload.cents };
    switch (Careless.how) {
      case 'save':
        await context.manager.getRepository(Saved).save(row);
        return;
      case 'nested':
        await context.manager.transaction(async (manager) => {
          await manager.getRepository(Saved).save(row);
        });
        return;
      case 'commit':
        await context.manager.getRepository(Saved).save(row);
        await context.manager.query('COMMIT');
        Careless.fenceAtCommit = (await context.manager.connection.query(`SELECT * FROM concordat.fence WHERE global_tx_id = $1`, [context.globalTxId])).map(
          (r: { state: string; heuristic?: boolean }) => ({ state: r.state, heuristic: r.heuristic }),
        )[0];
        return;
      case 'rollback':
        await context.manager.query('ROLLBACK');
        // Autocommitted: outside any transaction, and no fence row any more.
        await context.manager.getRepository(Saved).save(row);
        return;
      case 'swallow':
        await context.manager.getRepository(Saved).save(row);
        await context.manager.query('SELECT 1 / 0').catch(() => undefined);
        return;
    }
  }
}

@Service('ledger')
@XaParticipant('ledger.post', { retry: { maxAttempts: 2, strategy: 'immediate' } })
class Ledger {
  @Prepare()
  async post(context: XaContext<{ cents: number }>): Promise<{ posted: number }> {
    called.push(`prepare:${context.globalTxId}`);
    await context.manager.query(`INSERT INTO postings (global_tx_id, cents) VALUES ($1, $2)`, [context.globalTxId, context.payload.cents]);
    if (refuse) throw nonRetriable(new Error('account frozen'));
    return { posted: context.payload.cents };
  }
}

describe('2PC participant on PREPARE TRANSACTION (real Postgres)', () => {
  let testDb: TestDatabase;
  let db: Database;
  type Router = Pick<Dispatcher, 'dispatch'>;
  let dispatcher: Router;
  let careless: Router;

  beforeAll(async () => {
    testDb = await createTestDatabase('xa_participant');
    db = await openDatabase({ url: testDb.url, poolSize: 6, entities: [Saved] });
    await db.dataSource.query(`CREATE TABLE postings (global_tx_id uuid, cents int)`);
    await db.dataSource.query(`CREATE TABLE saved (id serial PRIMARY KEY, global_tx_id uuid, cents int)`);
    const instance = new Ledger();
    dispatcher = routerFor(Ledger, instance);
    const carelessInstance = new Careless();
    careless = routerFor(Careless, carelessInstance);
  });
  afterAll(async () => {
    // Nothing may be left prepared: it would hold locks and keep the database from being dropped.
    const left = await prepared();
    for (const gid of left) await db.dataSource.query(`ROLLBACK PREPARED '${gid}'`);
    await db.close();
    await testDb.drop();
    expect(left).toEqual([]);
  });
  beforeEach(() => {
    refuse = false;
    called.length = 0;
  });
  afterEach(() => disarmFaults());

  /** One dispatcher per consumer group of the class (prepares and decisions have groups of their own), routed by topic. */
  function routerFor(serviceClass: Function, instance: object): Router {
    const dispatchers = exploreHandlers([serviceClass]).consumers.map((consumer) => ({
      topics: new Set(consumer.handlers.keys()),
      dispatcher: new Dispatcher(consumer, { dataSource: db.dataSource, resolve: () => instance, signal: new AbortController().signal }),
    }));
    return {
      dispatch: (delivery) => {
        const target = dispatchers.find((d) => d.topics.has(delivery.topic));
        if (target === undefined) throw new Error(`no consumer group of ${serviceClass.name} handles ${delivery.topic}`);
        return target.dispatcher.dispatch(delivery);
      },
    };
  }

  async function prepared(): Promise<string[]> {
    const rows = await db.dataSource.query(`SELECT gid FROM pg_prepared_xacts WHERE database = current_database() ORDER BY gid`);
    return rows.map((r: { gid: string }) => r.gid);
  }
  /** Sends a command as the coordinator would and returns the reply the participant wrote to the outbox. */
  async function send(
    action: BranchCommand['action'],
    globalTxId: string,
    cents = 500,
    to = { dispatcher, participant: 'ledger.post' },
  ): Promise<Record<string, unknown> | undefined> {
    const command: BranchCommand = { globalTxId, branchId: 1, participant: to.participant, action, payload: { cents } };
    const before = Number((await db.dataSource.query(`SELECT coalesce(max(seq), 0) AS s FROM concordat.outbox`))[0].s);
    const topic = commandTopic('2PC', to.participant, action);
    await to.dispatcher.dispatch(deliveryOf(topic, { type: `concordat.xa.${action}`, source: 'coordinator', data: command, partitionkey: globalTxId }));
    const replies = await db.dataSource.query(`SELECT payload FROM concordat.outbox WHERE topic = $1 AND seq > $2`, [REPLY_TOPIC, before]);
    expect(replies.length).toBeLessThanOrEqual(1);
    return replies[0] === undefined ? undefined : JSON.parse(replies[0].payload.toString());
  }
  const postings = async (tx: string): Promise<number> =>
    Number((await db.dataSource.query(`SELECT count(*) AS n FROM postings WHERE global_tx_id = $1`, [tx]))[0].n);
  const saved = async (tx: string): Promise<number> =>
    Number((await db.dataSource.query(`SELECT count(*) AS n FROM saved WHERE global_tx_id = $1`, [tx]))[0].n);
  const fenceRow = async (tx: string): Promise<{ state: string; heuristic: boolean } | undefined> =>
    (await db.dataSource.query(`SELECT * FROM concordat.fence WHERE global_tx_id = $1`, [tx])).map((r: { state: string; heuristic: boolean }) => ({
      state: r.state,
      heuristic: r.heuristic,
    }))[0];
  const fence = async (tx: string): Promise<string | undefined> =>
    (await db.dataSource.query(`SELECT state FROM concordat.fence WHERE global_tx_id = $1`, [tx]))[0]?.state;

  it('prepares: the work is in a prepared transaction, invisible, and the vote is yes; a repeated prepare votes yes without working again', async () => {
    const tx = randomUUID();
    expect(await send(BranchAction.PREPARE, tx)).toEqual({
      globalTxId: tx,
      branchId: 1,
      participant: 'ledger.post',
      action: 'prepare',
      ok: true,
      result: { posted: 500 },
    });
    expect(await prepared()).toEqual([gidFor('ledger.post', tx, 1)]);
    expect(await postings(tx)).toBe(0);
    expect(await fence(tx)).toBeUndefined();
    expect(await send(BranchAction.PREPARE, tx)).toEqual({ globalTxId: tx, branchId: 1, participant: 'ledger.post', action: 'prepare', ok: true });
    expect(called).toEqual([`prepare:${tx}`]);

    expect(await send(BranchAction.COMMIT, tx)).toMatchObject({ action: 'commit', ok: true });
    expect(await prepared()).toEqual([]);
    expect(await postings(tx)).toBe(1);
    expect(await fence(tx)).toBe(FenceState.CONFIRMED);
  });

  it('commit is idempotent: a commit of a committed branch is acknowledged, a rollback of it is refused as not retriable', async () => {
    const tx = randomUUID();
    await send(BranchAction.PREPARE, tx);
    await send(BranchAction.COMMIT, tx);
    expect(await send(BranchAction.COMMIT, tx)).toMatchObject({ action: 'commit', ok: true });
    expect(await send(BranchAction.ROLLBACK, tx)).toEqual({
      globalTxId: tx,
      branchId: 1,
      participant: 'ledger.post',
      action: 'rollback',
      ok: false,
      error: 'ROLLBACK_AFTER_COMMIT: the branch committed before its rollback arrived',
      retriable: false,
    });
    expect(await postings(tx)).toBe(1);
    expect(await send(BranchAction.PREPARE, tx)).toMatchObject({ action: 'prepare', ok: true });
    expect(await prepared()).toEqual([]);
  });

  it('rollback undoes the prepared work, once; a late prepare is refused (anti-hanging)', async () => {
    const tx = randomUUID();
    await send(BranchAction.PREPARE, tx);
    expect(await send(BranchAction.ROLLBACK, tx)).toMatchObject({ action: 'rollback', ok: true });
    expect(await send(BranchAction.ROLLBACK, tx)).toMatchObject({ action: 'rollback', ok: true });
    expect(await prepared()).toEqual([]);
    expect(await postings(tx)).toBe(0);
    expect(await fence(tx)).toBe(FenceState.CANCELLED);
    expect(await send(BranchAction.PREPARE, tx)).toMatchObject({
      ok: false,
      error: 'PREPARE_AFTER_ROLLBACK: the branch was rolled back before its prepare arrived',
    });
    expect(called).toEqual([`prepare:${tx}`]);
    expect(await prepared()).toEqual([]);
  });

  it('a rollback before the prepare is an empty rollback, and the prepare that follows is refused', async () => {
    const tx = randomUUID();
    expect(await send(BranchAction.ROLLBACK, tx)).toMatchObject({ ok: true });
    expect(await send(BranchAction.PREPARE, tx)).toMatchObject({ ok: false });
    expect(called).toEqual([]);
    expect(await prepared()).toEqual([]);
  });

  it('a refusing @Prepare votes no, rolls its work back and leaves nothing prepared', async () => {
    refuse = true;
    const tx = randomUUID();
    expect(await send(BranchAction.PREPARE, tx)).toEqual({
      globalTxId: tx,
      branchId: 1,
      participant: 'ledger.post',
      action: 'prepare',
      ok: false,
      error: 'Error: account frozen',
    });
    expect(await prepared()).toEqual([]);
    expect(await postings(tx)).toBe(0);
    expect(await fence(tx)).toBe(FenceState.CANCELLED);
  });

  it('tells a committed branch from one rolled back outside the protocol (heuristic): the latter is refused as not retriable', async () => {
    const tx = randomUUID();
    await send(BranchAction.PREPARE, tx);
    await db.dataSource.query(`ROLLBACK PREPARED '${gidFor('ledger.post', tx, 1)}'`); // an operator's hand
    expect(await send(BranchAction.COMMIT, tx)).toEqual({
      globalTxId: tx,
      branchId: 1,
      participant: 'ledger.post',
      action: 'commit',
      ok: false,
      error: `HEURISTIC: ${gidFor('ledger.post', tx, 1)} is neither prepared nor committed (rolled back outside the protocol?)`,
      retriable: false,
    });
  });

  it('a crash after the vote leaves the branch prepared; the redelivered prepare votes yes again without working twice', async () => {
    const tx = randomUUID();
    armFault('xa.after-prepare', 'throw');
    const before = Number((await db.dataSource.query(`SELECT coalesce(max(seq), 0) AS s FROM concordat.outbox`))[0].s);
    const command: BranchCommand = { globalTxId: tx, branchId: 1, participant: 'ledger.post', action: 'prepare', payload: { cents: 1 } };
    // The dispatcher's policy retries the throw once: the second attempt finds the branch prepared.
    await dispatcher.dispatch(deliveryOf(commandTopic('2PC', 'ledger.post'), { type: 'concordat.xa.prepare', source: 'c', data: command, partitionkey: tx }));
    const votes = await db.dataSource.query(`SELECT payload FROM concordat.outbox WHERE topic = $1 AND seq > $2 ORDER BY seq`, [REPLY_TOPIC, before]);
    expect(votes.map((v: { payload: Buffer }) => JSON.parse(v.payload.toString()))).toEqual([
      { globalTxId: tx, branchId: 1, participant: 'ledger.post', action: 'prepare', ok: true, result: { posted: 1 } },
      { globalTxId: tx, branchId: 1, participant: 'ledger.post', action: 'prepare', ok: true },
    ]);
    expect(called).toEqual([`prepare:${tx}`]);
    expect(await prepared()).toEqual([gidFor('ledger.post', tx, 1)]);
    await send(BranchAction.ROLLBACK, tx);
    expect(await prepared()).toEqual([]);
  });

  it('a branch left prepared without its vote (the vote failed) is found by the redelivered prepare, which votes yes', async () => {
    const tx = randomUUID();
    const runner = db.dataSource.createQueryRunner();
    await runner.connect();
    await runner.query('BEGIN');
    await runner.query(`INSERT INTO concordat.fence (participant, global_tx_id, branch_id, state) VALUES ('ledger.post', $1, 1, 'CONFIRMED')`, [tx]);
    await runner.query(`INSERT INTO postings (global_tx_id, cents) VALUES ($1, 7)`, [tx]);
    await runner.query(`PREPARE TRANSACTION '${gidFor('ledger.post', tx, 1)}'`);
    await runner.release();
    expect(await send(BranchAction.PREPARE, tx)).toEqual({ globalTxId: tx, branchId: 1, participant: 'ledger.post', action: 'prepare', ok: true });
    expect(called).toEqual([]);
    expect(await send(BranchAction.COMMIT, tx)).toMatchObject({ ok: true });
    expect(await postings(tx)).toBe(1);
    expect(await prepared()).toEqual([]);
  });

  it('a @Prepare that publishes is refused: its messages would appear only at COMMIT PREPARED, unannounced', async () => {
    const tx = randomUUID();
    @Service('noisy')
    @XaParticipant('noisy.p', { retry: { maxAttempts: 1 } })
    class Noisy {
      @Prepare()
      async work(context: XaContext): Promise<void> {
        context.publish('somewhere', {});
      }
    }
    const noisy = routerFor(Noisy, new Noisy());
    const command: BranchCommand = { globalTxId: tx, branchId: 1, participant: 'noisy.p', action: 'prepare', payload: null };
    await noisy.dispatch(deliveryOf(commandTopic('2PC', 'noisy.p'), { type: 'concordat.xa.prepare', source: 'c', data: command }));
    const [row] = await db.dataSource.query(`SELECT payload FROM concordat.outbox WHERE topic = $1 ORDER BY seq DESC LIMIT 1`, [REPLY_TOPIC]);
    expect(JSON.parse(row.payload.toString())).toMatchObject({
      globalTxId: tx,
      ok: false,
      error:
        'ConcordatError: a 2PC branch cannot publish messages: they would become visible only at COMMIT PREPARED, which no relay hears of; publish from a handler of the global transaction outcome instead',
    });
    expect(await prepared()).toEqual([]);
  });

  describe('work that must stay in the prepared transaction', () => {
    const sendCareless = (action: BranchCommand['action'], tx: string) => send(action, tx, 300, { dispatcher: careless, participant: 'careless.p' });

    for (const how of ['save', 'nested'] as const) {
      it(`${how === 'save' ? 'repository.save()' : 'a nested manager.transaction()'} through the provided manager stays in the prepared transaction: invisible until commit, undone by a rollback`, async () => {
        Careless.how = how;
        const tx = randomUUID();
        expect(await sendCareless(BranchAction.PREPARE, tx)).toEqual({ globalTxId: tx, branchId: 1, participant: 'careless.p', action: 'prepare', ok: true });
        expect(await prepared()).toEqual([gidFor('careless.p', tx, 1)]);
        expect(await saved(tx)).toBe(0);
        expect(await sendCareless(BranchAction.ROLLBACK, tx)).toMatchObject({ action: 'rollback', ok: true });
        expect(await prepared()).toEqual([]);
        expect(await saved(tx)).toBe(0);
        expect(await fence(tx)).toBe(FenceState.CANCELLED);

        const committed = randomUUID();
        await sendCareless(BranchAction.PREPARE, committed);
        expect(await sendCareless(BranchAction.COMMIT, committed)).toMatchObject({ action: 'commit', ok: true });
        expect(await saved(committed)).toBe(1);
        expect(await fence(committed)).toBe(FenceState.CONFIRMED);
      });
    }

    it('a @Prepare that commits the transaction itself votes no, naming the method, and nothing is prepared', async () => {
      Careless.how = 'commit';
      const tx = randomUUID();
      expect(await sendCareless(BranchAction.PREPARE, tx)).toEqual({
        globalTxId: tx,
        branchId: 1,
        participant: 'careless.p',
        action: 'prepare',
        ok: false,
        error:
          'PREPARE_WITHOUT_TRANSACTION: @Prepare Careless.work ended the branch transaction itself (a COMMIT or ROLLBACK through the manager), ' +
          'so there is nothing to prepare; whatever it committed is outside the global transaction and a rollback cannot undo it',
        retriable: false,
        heuristic: true,
      });
      expect(await prepared()).toEqual([]);
      // The same prepare again (the dispatcher retrying a failed vote, a redelivery after a crash): not a yes with nothing prepared.
      expect(await sendCareless(BranchAction.PREPARE, tx)).toMatchObject({ action: 'prepare', ok: false, retriable: false, heuristic: true });
      // The fence row was committed by that COMMIT, with the heuristic marked already: a vote lost after it cannot lose the mark.
      expect(Careless.fenceAtCommit).toEqual({ state: FenceState.CONFIRMED, heuristic: true });
      expect(await fenceRow(tx)).toEqual({ state: FenceState.CONFIRMED, heuristic: true });
      expect(await prepared()).toEqual([]);
      expect(await saved(tx)).toBe(1);
    });

    it('a @Prepare that rolls the transaction back itself and writes on in autocommit votes no (heuristic), also when the prepare comes again', async () => {
      Careless.how = 'rollback';
      const tx = randomUUID();
      expect(await sendCareless(BranchAction.PREPARE, tx)).toMatchObject({ action: 'prepare', ok: false, retriable: false, heuristic: true });
      expect(await saved(tx)).toBe(1);
      expect(await sendCareless(BranchAction.PREPARE, tx)).toMatchObject({ action: 'prepare', ok: false, retriable: false, heuristic: true });
      expect(await fenceRow(tx)).toEqual({ state: FenceState.CANCELLED, heuristic: true });
      expect(await prepared()).toEqual([]);
      expect(await saved(tx)).toBe(1);
    });

    it('a @Prepare that swallows a failed statement votes no: PREPARE TRANSACTION would roll the aborted transaction back', async () => {
      Careless.how = 'swallow';
      const tx = randomUUID();
      expect(await sendCareless(BranchAction.PREPARE, tx)).toEqual({
        globalTxId: tx,
        branchId: 1,
        participant: 'careless.p',
        action: 'prepare',
        ok: false,
        error: 'PREPARE_ABORTED: a statement of @Prepare Careless.work failed and its error was caught; the branch transaction is aborted, nothing to prepare',
        retriable: false,
      });
      expect(await prepared()).toEqual([]);
      expect(await saved(tx)).toBe(0);
      expect(await fence(tx)).toBe(FenceState.CANCELLED);
    });
  });

  it('the explorer rejects a participant without @Prepare or with a name too long for a gid', () => {
    @Service('bad')
    @XaParticipant('bad.p')
    class NoPrepare {}
    @Service('long')
    @XaParticipant('x'.repeat(101))
    class LongName {
      @Prepare()
      async p(): Promise<void> {}
    }
    expect(() => exploreHandlers([NoPrepare])).toThrow("NoPrepare: 2PC participant 'bad.p' lacks @Prepare");
    expect(() => exploreHandlers([LongName])).toThrow(`LongName: 2PC participant '${'x'.repeat(101)}': the name must be at most 100 characters`);
  });
});
