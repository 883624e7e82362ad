import { randomUUID } from 'node:crypto';
import { Container } from 'inversify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nonRetriable } from '../../../src/errors.js';
import { ConcordatApp, OnMessage, Service, type MessageContext } from '../../../src/runtime/index.js';
import {
  BranchAction,
  COORDINATOR_OPTIONS,
  Compensate,
  SagaParticipant,
  Step,
  TransactionCoordinator,
  beginSaga,
  commandTopic,
  retryGlobalTx,
  showGlobalTx,
  type BranchCommand,
  type GlobalTxOutcome,
  type SagaContext,
  type SagaStep,
} from '../../../src/transactions/index.js';
import { createTxFixture, waitFor, type TxFixture } from './support/fixture.js';

/** How a test wants a participant to misbehave: fail its step or its compensation this many times. */
interface Script {
  failStep?: Record<string, { times: number; retriable: boolean }>;
  failCompensation?: Record<string, { times: number; retriable: boolean }>;
}

/** Failures so far, per global transaction and participant (in memory: a failed step's own writes roll back). */
const failures = new Map<string, number>();

function failIfScripted(kind: string, context: SagaContext<Script>, name: string, rule: { times: number; retriable: boolean } | undefined): void {
  if (rule === undefined) return;
  const key = `${kind}:${context.globalTxId}:${name}`;
  const count = failures.get(key) ?? 0;
  if (count >= rule.times) return;
  failures.set(key, count + 1);
  const error = new Error(`${name} ${kind} failure ${count + 1}`);
  throw rule.retriable ? error : nonRetriable(error);
}

function participant(name: string) {
  @Service(name)
  @SagaParticipant(name)
  class Participant {
    @Step()
    async run(context: SagaContext<Script>): Promise<string> {
      await context.manager.query(`INSERT INTO effects (global_tx_id, participant, action) VALUES ($1, $2, 'step')`, [context.globalTxId, name]);
      failIfScripted('step', context, name, context.payload.failStep?.[name]);
      return `${name}-done`;
    }
    @Compensate()
    async undo(context: SagaContext<Script>): Promise<void> {
      await context.manager.query(`INSERT INTO effects (global_tx_id, participant, action) VALUES ($1, $2, 'compensate')`, [context.globalTxId, name]);
      failIfScripted('compensation', context, name, context.payload.failCompensation?.[name]);
    }
  }
  return Participant;
}
const Reserve = participant('reserve');
const Charge = participant('charge');
const Ship = participant('ship');

@Service('saga-outcomes')
class Outcomes {
  @OnMessage('test.saga-outcome')
  async record(context: MessageContext<GlobalTxOutcome>): Promise<void> {
    await context.manager.query(`INSERT INTO outcomes VALUES ($1, $2)`, [context.data.globalTxId, context.data.state]);
  }
}

describe('sagas end to end (coordinator, participants, embedded log, Postgres)', () => {
  let f: TxFixture;
  let app: ConcordatApp;

  beforeAll(async () => {
    f = await createTxFixture('saga_flow', [
      `CREATE TABLE effects (seq serial, global_tx_id uuid, participant text, action text)`,
      `CREATE TABLE outcomes (global_tx_id uuid, state text)`,
    ]);
    const container = new Container();
    container.bind(COORDINATOR_OPTIONS).toConstantValue({ scanIntervalMs: 30, resendIntervalMs: 300 });
    app = ConcordatApp.create({
      name: 'saga-flow',
      services: [TransactionCoordinator, Reserve, Charge, Ship, Outcomes],
      container,
      database: f.db,
      transport: f.transport,
      partitions: 2,
    });
    await app.start();
  });
  afterAll(async () => {
    await app.stop();
    await f.close();
  });

  const fastRetry = { maxAttempts: 3, strategy: 'fixed' as const, initialDelayMs: 20, maxDelayMs: 20 };
  const begin = (script: Script, options: { timeoutMs?: number; steps?: string[]; compensationMax?: number } = {}): Promise<string> =>
    app.transaction((context) =>
      beginSaga(context, {
        name: 'order',
        steps: (options.steps ?? ['reserve', 'charge', 'ship']).map((participant): SagaStep => ({ participant, payload: script, retry: fastRetry })),
        compensationRetry: { maxAttempts: options.compensationMax ?? 3, strategy: 'fixed', initialDelayMs: 20, maxDelayMs: 20 },
        outcomeTopic: 'test.saga-outcome',
        ...(options.timeoutMs !== undefined && { timeoutMs: options.timeoutMs }),
      }),
    );
  /** What ran for a global transaction, in commit order. */
  const effects = async (id: string): Promise<string[]> =>
    (await f.query<{ e: string }>(`SELECT participant || ':' || action AS e FROM effects WHERE global_tx_id = $1 ORDER BY seq`, [id])).map((r) => r.e);
  const outcome = (id: string) =>
    waitFor(async () => (await f.query<{ state: string }>(`SELECT state FROM outcomes WHERE global_tx_id = $1`, [id]))[0]?.state, `outcome of ${id}`);

  it('runs every step in order, once, and ends CONFIRMED with every step CONFIRMED', async () => {
    const id = await begin({});
    expect(await f.ended(id)).toEqual({ state: 'CONFIRMED', reason: null, ended: true });
    expect(await effects(id)).toEqual(['reserve:step', 'charge:step', 'ship:step']);
    expect(await f.branchStates(id)).toEqual(['CONFIRMED', 'CONFIRMED', 'CONFIRMED']);
    expect(await outcome(id)).toBe('CONFIRMED');
    const results = await f.query<{ result: string }>(`SELECT result FROM concordat.branch WHERE global_tx_id = $1 ORDER BY branch_id`, [id]);
    expect(results.map((r) => r.result)).toEqual(['reserve-done', 'charge-done', 'ship-done']);
  });

  it('compensates the done steps in reverse order when a step fails for good', async () => {
    const id = await begin({ failStep: { ship: { times: 1, retriable: false } } });
    expect(await f.ended(id)).toEqual({ state: 'CANCELLED', reason: 'ship failed: Error: ship step failure 1', ended: true });
    // ship's own step rolled back (no effect), then charge and reserve were undone, last first.
    expect(await effects(id)).toEqual(['reserve:step', 'charge:step', 'charge:compensate', 'reserve:compensate']);
    expect(await f.branchStates(id)).toEqual(['CANCELLED', 'CANCELLED', 'CANCELLED']);
    expect(await outcome(id)).toBe('CANCELLED');
  });

  it('retries a step that fails retriably under its policy and goes on when it succeeds', async () => {
    const id = await begin({ failStep: { charge: { times: 2, retriable: true } } });
    expect(await f.ended(id)).toEqual({ state: 'CONFIRMED', reason: null, ended: true });
    expect(await effects(id)).toEqual(['reserve:step', 'charge:step', 'ship:step']);
    const detail = await showGlobalTx(f.db.dataSource.manager, id);
    expect(detail!.events.filter((e) => e.kind === 'RETRY_SCHEDULED').map((e) => e.detail)).toEqual(['attempt 2 of 3 in 20 ms', 'attempt 3 of 3 in 20 ms']);
  });

  it('compensates when the step keeps failing past its policy', async () => {
    const id = await begin({ failStep: { charge: { times: 99, retriable: true } } });
    expect(await f.ended(id)).toEqual({ state: 'CANCELLED', reason: 'charge failed: Error: charge step failure 3', ended: true });
    expect(await effects(id)).toEqual(['reserve:step', 'reserve:compensate']);
  });

  it('retries a failing compensation until it succeeds', async () => {
    const id = await begin({ failStep: { ship: { times: 1, retriable: false } }, failCompensation: { reserve: { times: 2, retriable: true } } });
    expect(await f.ended(id)).toEqual({ state: 'CANCELLED', reason: 'ship failed: Error: ship step failure 1', ended: true });
    expect(await effects(id)).toEqual(['reserve:step', 'charge:step', 'charge:compensate', 'reserve:compensate']);
  });

  it('ends FAILED, visibly, when a compensation cannot succeed; an operator retry finishes it once the cause is fixed', async () => {
    const id = await begin({ failStep: { ship: { times: 1, retriable: false } }, failCompensation: { charge: { times: 1, retriable: false } } });
    expect(await f.ended(id)).toEqual({ state: 'FAILED', reason: 'compensation of charge failed: Error: charge compensation failure 1', ended: true });
    expect(await outcome(id)).toBe('FAILED');
    expect(await f.branchStates(id)).toEqual(['TRIED', 'FAILED', 'CANCELLED']);
    // reserve was not compensated: its compensation waits behind charge's, as the reverse order requires.
    expect(await effects(id)).toEqual(['reserve:step', 'charge:step']);

    // The scripted failure happened once; the retry succeeds.
    await retryGlobalTx(f.db.dataSource, id);
    expect(await f.ended(id)).toEqual({ state: 'CANCELLED', reason: 'compensation of charge failed: Error: charge compensation failure 1', ended: true });
    expect(await effects(id)).toEqual(['reserve:step', 'charge:step', 'charge:compensate', 'reserve:compensate']);
    expect(await f.branchStates(id)).toEqual(['CANCELLED', 'CANCELLED', 'CANCELLED']);
  });

  it('compensates the step in flight at the deadline; its participant, back, runs it then undoes it', async () => {
    // 'slow' is not running: its step waits in the log past the deadline.
    await f.transport.ensureTopics([{ name: commandTopic('SAGA', 'slow'), partitions: 2 }]);
    const Slow = participant('slow');
    const id = await begin({}, { steps: ['reserve', 'slow'], timeoutMs: 500 });
    await waitFor(async () => ((await f.txRow(id)).state === 'CANCELLING' ? true : undefined), 'the deadline decision');
    expect((await f.txRow(id)).reason).toBe('deadline passed before every step completed');
    const late = ConcordatApp.create({ name: 'slow-app', services: [Slow], database: f.db, transport: f.transport, partitions: 2, relay: false });
    await late.start();
    try {
      expect(await f.ended(id)).toEqual({ state: 'CANCELLED', reason: 'deadline passed before every step completed', ended: true });
      expect(await effects(id)).toEqual(['reserve:step', 'slow:step', 'slow:compensate', 'reserve:compensate']);
    } finally {
      await late.stop();
    }
  });

  describe('presumed abort: a step that ran for a saga the coordinator does not hold', () => {
    const fenceOf = async (id: string): Promise<string | undefined> =>
      (await f.query<{ state: string }>(`SELECT state FROM concordat.fence WHERE global_tx_id = $1`, [id]))[0]?.state;
    const consumed = async (consumer: string): Promise<number> =>
      Number((await f.query<{ n: string }>(`SELECT count(*) AS n FROM concordat.inbox WHERE consumer = $1`, [consumer]))[0]!.n);
    /** Sends reserve step 1 as the coordinator would, for a saga the coordinator may not hold (a new message ID: a redelivery past the inbox). */
    const sendStep = (id: string, payload: Script): Promise<string> =>
      app.transaction(async (context) => {
        const command: BranchCommand = { globalTxId: id, branchId: 1, participant: 'reserve', action: BranchAction.EXECUTE, payload };
        return context.publish(commandTopic('SAGA', 'reserve'), command, { key: id, type: 'concordat.saga.execute', globalTxId: id });
      });
    /**
     * Sends reserve, on `key` (so to the same partition as that saga's commands), the compensation of another,
     * unknown saga, and waits until reserve handled it (an empty compensation: fence CANCELLED). Any command
     * published for `key` before it has then been handled too.
     */
    const behindCommandsFor = async (key: string): Promise<void> => {
      const sentinel = randomUUID();
      await app.transaction(async (context) => {
        const command: BranchCommand = { globalTxId: sentinel, branchId: 1, participant: 'reserve', action: BranchAction.COMPENSATE, payload: {} };
        context.publish(commandTopic('SAGA', 'reserve', BranchAction.COMPENSATE), command, { key, type: 'concordat.saga.compensate', globalTxId: sentinel });
      });
      await waitFor(async () => ((await fenceOf(sentinel)) === 'CANCELLED' ? true : undefined), 'the sentinel compensation handled by reserve');
    };
    const forget = async (id: string): Promise<void> => {
      await f.query(`DELETE FROM concordat.global_tx_event WHERE global_tx_id = $1`, [id]);
      await f.query(`DELETE FROM concordat.global_transaction WHERE id = $1`, [id]);
    };

    it('the step is compensated, with its payload; the step delivered again is then refused', async () => {
      const id = randomUUID(); // begun nowhere (history cleaned up, or another database)
      // @Compensate reads context.payload: with a null payload it would throw, and the fence would stay TRIED.
      await sendStep(id, {});
      await waitFor(async () => ((await fenceOf(id)) === 'CANCELLED' ? true : undefined), 'the presumed compensation');
      expect(await effects(id)).toEqual(['reserve:step', 'reserve:compensate']);
      const replies = await consumed('concordat-coordinator');
      await sendStep(id, {});
      // The refusal (STEP_AFTER_COMPENSATION) reaches the coordinator, which ignores it; nothing ran.
      await waitFor(async () => ((await consumed('concordat-coordinator')) > replies ? true : undefined), 'the refusal');
      expect(await effects(id)).toEqual(['reserve:step', 'reserve:compensate']);
      expect(await fenceOf(id)).toBe('CANCELLED');
    });

    it('is safe after history cleanup: a step of a CONFIRMED saga delivered again is a duplicate (fence TRIED) and is not compensated', async () => {
      const id = await begin({}, { steps: ['reserve'] });
      expect(await f.ended(id)).toEqual({ state: 'CONFIRMED', reason: null, ended: true });
      // Sagas have no commit action: the participant's fence still holds TRIED for the confirmed step.
      expect(await fenceOf(id)).toBe('TRIED');
      await forget(id);
      const replies = await consumed('concordat-coordinator');
      await sendStep(id, {});
      await waitFor(async () => ((await consumed('concordat-coordinator')) > replies ? true : undefined), 'the repeated ok');
      // A compensation, had the coordinator sent one, was published with that consumption: handled before the sentinel.
      await behindCommandsFor(id);
      expect(await effects(id)).toEqual(['reserve:step']);
      expect(await fenceOf(id)).toBe('TRIED');
    });

    it('after history and fence cleanup the redelivered step runs again, and the compensation undoes that second run only', async () => {
      const id = await begin({}, { steps: ['reserve'] });
      expect(await f.ended(id)).toEqual({ state: 'CONFIRMED', reason: null, ended: true });
      await forget(id);
      await f.query(`DELETE FROM concordat.fence WHERE global_tx_id = $1`, [id]);
      await sendStep(id, {});
      await waitFor(async () => ((await fenceOf(id)) === 'CANCELLED' ? true : undefined), 'the presumed compensation');
      expect(await effects(id)).toEqual(['reserve:step', 'reserve:step', 'reserve:compensate']);
    });
  });
});
