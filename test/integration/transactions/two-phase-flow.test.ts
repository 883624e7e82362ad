import { randomUUID } from 'node:crypto';
import { Container } from 'inversify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nonRetriable } from '../../../src/errors.js';
import { ConcordatApp, Service } from '../../../src/runtime/index.js';
import {
  BranchState,
  COORDINATOR_OPTIONS,
  GlobalTxState,
  Prepare,
  TransactionCoordinator,
  XaParticipant,
  beginTwoPhase,
  TxMode,
  gidFor,
  insertGlobalTx,
  listGlobalTxs,
  showGlobalTx,
  type XaContext,
} from '../../../src/transactions/index.js';
import { createTxFixture, waitFor, type TxFixture } from './support/fixture.js';

function participant(name: string) {
  @Service(name)
  @XaParticipant(name)
  class Participant {
    @Prepare()
    async work(context: XaContext<{ refuse?: string[]; commitItself?: string[]; swallow?: string[] }>): Promise<void> {
      await context.manager.query(`INSERT INTO effects VALUES ($1, $2)`, [context.globalTxId, name]);
      if (context.payload.refuse?.includes(name)) throw nonRetriable(new Error(`${name} says no`));
      // A careless @Prepare: its work is committed outside the global transaction, and the branch votes no (heuristic).
      if (context.payload.commitItself?.includes(name)) await context.manager.query('COMMIT');
      // A caught failed statement: the transaction is aborted, nothing committed, a plain no.
      if (context.payload.swallow?.includes(name)) await context.manager.query('SELECT 1 / 0').catch(() => undefined);
    }
  }
  return Participant;
}
const Alpha = participant('alpha');
const Beta = participant('beta');

describe('2PC global transactions end to end (coordinator, prepared transactions, embedded log, Postgres)', () => {
  let f: TxFixture;
  let main: ConcordatApp;
  let beta: ConcordatApp | undefined;

  beforeAll(async () => {
    f = await createTxFixture('xa_flow', [`CREATE TABLE effects (global_tx_id uuid, participant text)`]);
    // beta's topic exists from the start, so its commands wait in the log while beta is down.
    await f.transport.ensureTopics([{ name: 'concordat.xa.beta', partitions: 2 }]);
    const container = new Container();
    container.bind(COORDINATOR_OPTIONS).toConstantValue({ scanIntervalMs: 50, resendIntervalMs: 400 });
    main = ConcordatApp.create({
      name: 'xa-flow',
      services: [TransactionCoordinator, Alpha],
      container,
      database: f.db,
      transport: f.transport,
      partitions: 2,
    });
    await main.start();
  });
  afterAll(async () => {
    await beta?.stop();
    await main.stop();
    await f.close();
  });

  const startBeta = async (): Promise<ConcordatApp> => {
    beta = ConcordatApp.create({ name: 'beta-app', services: [Beta], database: f.db, transport: f.transport, partitions: 2, relay: false });
    await beta.start();
    return beta;
  };
  const stopBeta = async (): Promise<void> => {
    await beta?.stop();
    beta = undefined;
  };
  const begin = (participants: string[], payload: object, timeoutMs = 30_000): Promise<string> =>
    main.transaction((context) => beginTwoPhase(context, { name: 'test', branches: participants.map((p) => ({ participant: p, payload })), timeoutMs }));
  const effects = async (id: string): Promise<string[]> =>
    (await f.query<{ participant: string }>(`SELECT participant FROM effects WHERE global_tx_id = $1 ORDER BY 1`, [id])).map((r) => r.participant);

  it('commits every branch when all vote yes; the timeline tells the story', async () => {
    await startBeta();
    const id = await begin(['alpha', 'beta'], {});
    expect(await f.ended(id)).toEqual({ state: 'CONFIRMED', reason: null, ended: true });
    expect(await effects(id)).toEqual(['alpha', 'beta']);
    expect(await f.branchStates(id)).toEqual(['CONFIRMED', 'CONFIRMED']);
    expect(await f.prepared()).toEqual([]);
    const detail = await showGlobalTx(f.db.dataSource.manager, id);
    // A reply slower than the resend interval (400 ms here, on a loaded machine) adds a RESENT and its SENT: the story is the rest.
    const story = detail!.events.filter((e, i, all) => e.kind !== 'RESENT' && all[i - 1]?.kind !== 'RESENT');
    expect(story.map((e) => e.kind)).toEqual(['BEGUN', 'SENT', 'REPLIED', 'REPLIED', 'DECIDED', 'SENT', 'REPLIED', 'REPLIED', 'ENDED']);
    expect(story[5]!.detail).toBe('commit → branch 1, 2');
    await stopBeta();
  });

  it("prepare: 'sequential' asks one branch at a time, in order; a no ends phase one and the branches not asked are cancelled without a message", async () => {
    await startBeta();
    const sequential = (payload: object): Promise<string> =>
      main.transaction((context) =>
        beginTwoPhase(context, { name: 'test', prepare: 'sequential', branches: ['beta', 'alpha'].map((p) => ({ participant: p, payload })) }),
      );
    const yes = await sequential({});
    expect(await f.ended(yes)).toEqual({ state: 'CONFIRMED', reason: null, ended: true });
    expect(await effects(yes)).toEqual(['alpha', 'beta']);
    const sent = async (id: string): Promise<string[]> =>
      (await showGlobalTx(f.db.dataSource.manager, id))!.events
        .filter((e) => e.kind === 'SENT' || e.kind === 'REPLIED' || e.kind === 'DECIDED')
        .map((e) => `${e.kind} ${e.detail ?? ''}`.trim());
    const story = await sent(yes);
    // beta (branch 1) is asked alone; alpha (branch 2) only after beta's yes.
    expect(story[0]).toBe('SENT prepare → branch 1');
    expect(story.slice(1, 3)).toEqual(['REPLIED prepare: ok', 'SENT prepare → branch 2']);
    expect(story[3]).toBe('REPLIED prepare: ok');
    const no = await sequential({ refuse: ['beta'] });
    expect(await f.ended(no)).toEqual({ state: 'CANCELLED', reason: 'beta refused: Error: beta says no', ended: true });
    expect(await f.branchStates(no)).toEqual(['CANCELLED', 'CANCELLED']);
    // alpha was never asked: no prepare, no rollback, no effect.
    expect((await sent(no)).filter((line) => line.startsWith('SENT'))).toEqual(['SENT prepare → branch 1']);
    expect(await effects(no)).toEqual([]);
    expect(await f.prepared()).toEqual([]);
    await stopBeta();
  });

  it('rolls back every prepared branch when one votes no', async () => {
    await startBeta();
    const id = await begin(['alpha', 'beta'], { refuse: ['beta'] });
    expect(await f.ended(id)).toEqual({ state: 'CANCELLED', reason: 'beta refused: Error: beta says no', ended: true });
    expect(await effects(id)).toEqual([]);
    expect(await f.branchStates(id)).toEqual(['CANCELLED', 'CANCELLED']);
    expect(await f.prepared()).toEqual([]);
    await stopBeta();
  });

  it('a branch whose @Prepare committed its own work ends the global transaction FAILED, naming it; the other branch is rolled back', async () => {
    await startBeta();
    const id = await begin(['alpha', 'beta'], { commitItself: ['beta'] });
    const reason =
      'beta (branch 2) voted no but may have committed work outside the global transaction: PREPARE_WITHOUT_TRANSACTION: @Prepare Participant.work ended ' +
      'the branch transaction itself (a COMMIT or ROLLBACK through the manager), so there is nothing to prepare; whatever it committed is outside the ' +
      'global transaction and a rollback cannot undo it';
    expect(await f.ended(id)).toEqual({ state: 'FAILED', reason, ended: true });
    expect(await f.branchStates(id)).toEqual(['CANCELLED', 'FAILED']);
    // alpha's prepared work rolled back; beta's committed work stays, for the operator to see.
    expect(await effects(id)).toEqual(['beta']);
    expect(await f.prepared()).toEqual([]);
    const failed = await listGlobalTxs(f.db.dataSource.manager, { states: [GlobalTxState.FAILED] });
    expect(failed.map((t) => [t.id, t.reason])).toContainEqual([id, reason]);
    const detail = await showGlobalTx(f.db.dataSource.manager, id);
    expect(detail!.events.filter((e) => e.kind === 'BRANCH_FAILED').map((e) => e.branchId)).toEqual([2]);
    await stopBeta();
  });

  it('a @Prepare that swallowed a failed statement committed nothing: a plain no, CANCELLED', async () => {
    await startBeta();
    const id = await begin(['alpha', 'beta'], { swallow: ['beta'] });
    const ended = await f.ended(id);
    expect(ended).toMatchObject({ state: 'CANCELLED', ended: true });
    expect(ended.reason).toMatch(/^beta refused: PREPARE_ABORTED: /);
    expect(await f.branchStates(id)).toEqual(['CANCELLED', 'CANCELLED']);
    expect(await effects(id)).toEqual([]);
    await stopBeta();
  });

  it('aborts at the deadline while a participant is down: the prepared branch is rolled back; the late prepare and rollback, in either order, leave nothing', async () => {
    const id = await begin(['alpha', 'beta'], {}, 400);
    await waitFor(async () => ((await f.branchStates(id))[0] === 'CANCELLED' ? true : undefined), 'alpha rolled back');
    expect(await f.txRow(id)).toEqual({ state: 'CANCELLING', reason: 'deadline passed before every branch voted', ended: false });
    expect(await f.prepared()).toEqual([]);
    await startBeta();
    expect(await f.ended(id)).toEqual({ state: 'CANCELLED', reason: 'deadline passed before every branch voted', ended: true });
    expect(await effects(id)).toEqual([]);
    expect(await f.prepared()).toEqual([]);
    const fences = await f.query<{ participant: string; state: string }>(`SELECT participant, state FROM concordat.fence WHERE global_tx_id = $1 ORDER BY 1`, [
      id,
    ]);
    expect(fences).toEqual([
      { participant: 'alpha', state: 'CANCELLED' },
      { participant: 'beta', state: 'CANCELLED' },
    ]);
    await stopBeta();
  });

  it('start-up recovery: a branch left prepared asks the coordinator, which commits it by its decision', async () => {
    // beta prepared and voted; the coordinator decided; beta never got the commit (say it was dead-lettered) and the
    // next resend is an hour away. Stored without sending any command, so only beta's start-up recovery can move it.
    const id = randomUUID();
    await main.transaction((context) =>
      insertGlobalTx(context.manager, {
        id,
        mode: TxMode.TWO_PHASE,
        name: 'test',
        state: GlobalTxState.TRYING,
        timeoutMs: 30_000,
        payload: null,
        outcomeTopic: null,
        outcomeKey: null,
        branches: [{ branchId: 1, participant: 'beta', state: BranchState.TRIED, payload: {} }],
        sent: 'nothing',
      }),
    );
    await f.query(
      `UPDATE concordat.global_transaction SET state = 'CONFIRMING', decision = 'CONFIRMING', resend_at = now() + interval '1 hour' WHERE id = $1`,
      [id],
    );
    await prepareByHand(id, 'beta');
    await startBeta();
    expect(await f.ended(id)).toEqual({ state: 'CONFIRMED', reason: null, ended: true });
    expect(await effects(id)).toEqual(['beta']);
    expect(await f.prepared()).toEqual([]);
    const detail = await showGlobalTx(f.db.dataSource.manager, id);
    expect(detail!.events.some((e) => e.detail === 'prepare: ok again (recovery); decision sent to the branch')).toBe(true);
    await stopBeta();
  });

  it('start-up recovery: a branch prepared for a global transaction nobody knows is rolled back (presumed abort)', async () => {
    const id = randomUUID();
    await prepareByHand(id, 'beta');
    expect(await f.prepared()).toEqual([gidFor('beta', id, 1)]);
    await startBeta();
    // The rollback's acknowledgement commits with the fence row, after ROLLBACK PREPARED: wait for that.
    const fence = await waitFor(
      async () => (await f.query<{ state: string }>(`SELECT state FROM concordat.fence WHERE global_tx_id = $1`, [id]))[0],
      'the rollback recorded',
    );
    expect(fence).toEqual({ state: 'CANCELLED' });
    expect(await f.prepared()).toEqual([]);
    expect(await effects(id)).toEqual([]);
    await stopBeta();
  });

  /** Does what beta's prepare does, on a connection of its own, and leaves the transaction prepared. */
  async function prepareByHand(id: string, name: string): Promise<void> {
    const runner = f.db.dataSource.createQueryRunner();
    await runner.connect();
    try {
      await runner.query('BEGIN');
      await runner.query(`INSERT INTO concordat.fence (participant, global_tx_id, branch_id, state) VALUES ($1, $2, 1, 'CONFIRMED')`, [name, id]);
      await runner.query(`INSERT INTO effects VALUES ($1, $2)`, [id, name]);
      await runner.query(`PREPARE TRANSACTION '${gidFor(name, id, 1)}'`);
    } finally {
      await runner.release();
    }
  }
});
