import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConcordatError, ErrorCode } from '../../../src/errors.js';
import { openDatabase, type Database } from '../../../src/persistence/index.js';
import { ConcordatApp, OnMessage, runTransaction, Service, type MessageContext } from '../../../src/runtime/index.js';
import { beginSaga, beginTcc, beginTwoPhase } from '../../../src/transactions/index.js';
import { EmbeddedTransport } from '../../../src/transport/index.js';
import { createTestDatabase, type TestDatabase } from '../../support/database.js';

/** What a call threw (the test fails when it did not throw). */
async function thrown(work: () => Promise<unknown>): Promise<ConcordatError> {
  try {
    await work();
  } catch (error) {
    return error as ConcordatError;
  }
  throw new Error('expected an error, none was thrown');
}

const BAD_TOPIC_MESSAGE = `Topic name "orders placed" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'`;

@Service('newcomer')
class Newcomer {
  @OnMessage('newcomer.in')
  async on(_context: MessageContext): Promise<void> {}
}

describe("a newcomer's mistakes get a clear error at the call (issue 10 §3)", () => {
  let testDb: TestDatabase;
  let db: Database;
  let dir: string;
  let app: ConcordatApp;

  beforeAll(async () => {
    testDb = await createTestDatabase('newcomer_errors');
    db = await openDatabase({ url: testDb.url, poolSize: 4 });
    dir = await mkdtemp(join(tmpdir(), 'concordat-newcomer-'));
    app = ConcordatApp.create({ name: 'newcomer', services: [Newcomer], database: db, transport: new EmbeddedTransport({ dataDir: dir }), partitions: 1 });
    await app.start();
  });

  afterAll(async () => {
    await app?.stop();
    await db?.close();
    await testDb?.drop();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  const outboxRows = async (): Promise<number> => Number((await db.dataSource.query(`SELECT count(*) AS n FROM concordat.outbox`))[0].n);
  const globalTxRows = async (): Promise<number> => Number((await db.dataSource.query(`SELECT count(*) AS n FROM concordat.global_transaction`))[0].n);

  it('app.publish to an invalid topic name throws INVALID_TOPIC_EXCEPTION with the words of @OnMessage, and writes nothing', async () => {
    const before = await outboxRows();
    const error = await thrown(() => app.publish('orders placed', { n: 1 }));
    expect(error).toBeInstanceOf(ConcordatError);
    expect(error.code).toBe(ErrorCode.INVALID_TOPIC_EXCEPTION);
    expect(error.message).toBe(BAD_TOPIC_MESSAGE);
    expect(error.context).toEqual({ topic: 'orders placed' });
    expect(await outboxRows()).toBe(before);
    // The same words as a handler declared on that topic.
    @Service('bad-handler')
    class BadHandler {
      @OnMessage('orders placed')
      async on(): Promise<void> {}
    }
    expect(() => ConcordatApp.create({ name: 'x', services: [BadHandler] })).toThrow(`- BadHandler.on: ${BAD_TOPIC_MESSAGE}`);
  });

  it('ctx.publish throws at the call, for an empty name, "..", and one of 250 characters too', async () => {
    const cases: Array<[string, string]> = [
      ['', "Topic name is illegal, it can't be empty"],
      ['..', 'Topic name cannot be "." or ".."'],
      ['a'.repeat(250), `Topic name is illegal, it can't be longer than 249 characters, topic name: ${'a'.repeat(250)}`],
      ['orders placed', BAD_TOPIC_MESSAGE],
    ];
    for (const [topic, message] of cases) {
      const error = await thrown(() => runTransaction(db.dataSource, 'newcomer', async (context) => context.publish(topic, { n: 1 })));
      expect(error.code).toBe(ErrorCode.INVALID_TOPIC_EXCEPTION);
      expect(error.message).toBe(message);
    }
    // A valid name of 249 characters still goes through.
    const id = await runTransaction(db.dataSource, 'newcomer', async (context) => context.publish('a'.repeat(249), { n: 1 }));
    expect((await db.dataSource.query(`SELECT topic FROM concordat.outbox WHERE message_id = $1`, [id]))[0]?.topic ?? null).toBe('a'.repeat(249));
  });

  it('an outcome topic is checked by the same rule, with the same words', async () => {
    const error = await thrown(() =>
      runTransaction(db.dataSource, 'newcomer', (context) =>
        beginTcc(context, { name: 'bad-outcome', outcomeTopic: 'orders placed', branches: [{ participant: 'rooms.reserve', payload: {} }] }),
      ),
    );
    expect(error.code).toBe(ErrorCode.CONFIG_INVALID);
    expect(error.message).toBe(`invalid options: tcc.outcomeTopic: ${BAD_TOPIC_MESSAGE} (got "orders placed")`);
  });

  describe('begin* with a payload that cannot be serialized', () => {
    const cyclic: Record<string, unknown> = { name: 'loop' };
    cyclic.self = cyclic;

    it.each([
      [
        'beginTcc',
        'a BigInt',
        (context: Parameters<typeof beginTcc>[0]) =>
          beginTcc(context, {
            name: 'book',
            branches: [
              { participant: 'rooms.reserve', payload: { nights: 2 } },
              // @ts-expect-error a BigInt is not JSON: refused at compile time; here the check at run time (an untyped payload)
              { participant: 'payments.charge', payload: { cents: 10n } },
            ],
          }),
        "branch 2 (participant 'payments.charge'): its payload cannot be serialized as JSON (TypeError: Do not know how to serialize a BigInt)",
      ],
      [
        'beginSaga',
        'a cycle',
        (context: Parameters<typeof beginSaga>[0]) => beginSaga(context, { name: 'book', steps: [{ participant: 'rooms.reserve', payload: cyclic }] }),
        "branch 1 (participant 'rooms.reserve'): its payload cannot be serialized as JSON (TypeError: Converting circular structure to JSON",
      ],
      [
        'beginTwoPhase',
        'a BigInt',
        (context: Parameters<typeof beginTwoPhase>[0]) =>
          // @ts-expect-error a BigInt is not JSON: refused at compile time; here the check at run time (an untyped payload)
          beginTwoPhase(context, { name: 'book', branches: [{ participant: 'ledger.post', payload: [1n] }] }),
        "branch 1 (participant 'ledger.post'): its payload cannot be serialized as JSON (TypeError: Do not know how to serialize a BigInt)",
      ],
    ] as const)('%s with %s: SERIALIZATION_FAILED naming the branch and its participant, nothing stored', async (_name, _what, begin, message) => {
      const before = await globalTxRows();
      const error = await thrown(() => runTransaction(db.dataSource, 'newcomer', (context) => begin(context)));
      expect(error).toBeInstanceOf(ConcordatError);
      expect(error.code).toBe(ErrorCode.SERIALIZATION_FAILED);
      expect(error.message).toContain(message);
      expect(error.message).toContain('a BigInt as a string');
      expect(await globalTxRows()).toBe(before);
    });

    it("the global transaction's own payload: SERIALIZATION_FAILED naming `payload`", async () => {
      const error = await thrown(() =>
        runTransaction(db.dataSource, 'newcomer', (context) =>
          // @ts-expect-error a BigInt is not JSON: refused at compile time; here the check at run time (an untyped payload)
          beginTcc(context, { name: 'book', payload: { total: 5n }, branches: [{ participant: 'rooms.reserve', payload: {} }] }),
        ),
      );
      expect(error.code).toBe(ErrorCode.SERIALIZATION_FAILED);
      expect(error.message).toContain("tcc 'book': payload cannot be serialized as JSON (TypeError: Do not know how to serialize a BigInt)");
    });
  });
});
