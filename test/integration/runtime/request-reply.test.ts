import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ConcordatError, ErrorCode, nonRetriable } from '../../../src/errors.js';
import {
  ConcordatApp,
  OnMessage,
  RequestFailedError,
  Service,
  defineTopic,
  type MessageContext,
  type PendingRequest,
  type TopicContext,
  type UnmatchedReply,
} from '../../../src/runtime/index.js';
import { FaultyTransport, until } from '../../../src/testing/index.js';
import { EmbeddedTransport, KafkaTransport, type Transport } from '../../../src/transport/index.js';
import { startTestBroker, type TestBroker } from '../broker/helpers/broker.js';
import { createTestDatabase, type TestDatabase } from '../../support/database.js';

/**
 * Request-reply (issue 14), end to end on each transport: both directions
 * through the outbox and the inbox. One app is requester and responder (its
 * reply topic and its services' groups are separate consumer groups, as in
 * two apps). The redelivery test wraps the transport in a FaultyTransport
 * that hands every record to its handler twice.
 */

const quote = defineTopic('rr.quote', z.object({ sku: z.string().min(1), quantity: z.number().int().positive() }), {
  reply: z.object({ cents: z.number().int(), currency: z.enum(['EUR', 'USD']).default('EUR') }),
});

/** A latch a handler waits on, opened by the test. */
function latch(): { promise: Promise<void>; open(): void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}
let slowGate = latch();
/** Runs of the slow handler begun so far. */
let slowRuns = 0;

@Service('rr-pricing')
class Pricing {
  @OnMessage(quote)
  async quote(context: TopicContext<typeof quote>) {
    await context.manager.query(`INSERT INTO quoted (message_id, sku) VALUES ($1, $2)`, [context.message.id, context.data.sku]);
    // Not an integer: the reply schema refuses it before it is written.
    if (context.data.sku === 'fractional') return { cents: 0.5 };
    return { cents: 100 * context.data.quantity };
  }

  @OnMessage('rr.fail', { retry: { maxAttempts: 1 } })
  async fail(context: MessageContext<{ sku: string }>): Promise<never> {
    throw nonRetriable(new Error(`no price for ${context.data.sku}`));
  }

  // A group of its own: its wait must not hold back the other handlers' messages.
  @OnMessage('rr.slow', { group: 'rr-slow' })
  async slow(context: MessageContext<{ n: number }>) {
    slowRuns++;
    await slowGate.promise;
    await context.manager.query(`INSERT INTO quoted (message_id, sku) VALUES ($1, 'slow')`, [context.message.id]);
    return { n: context.data.n + 1 };
  }
}

/** What {@link StartupQuoter}'s start hook got for its request. */
let startupQuote: unknown;

/** Asks for a quote while its app starts, and waits for the reply there. */
@Service('rr-startup')
class StartupQuoter {
  async onApplicationStart(started: ConcordatApp): Promise<void> {
    startupQuote = await started.request(quote, { sku: 'boot', quantity: 2 }, { timeoutMs: 8000 });
  }
}

const tables = `CREATE TABLE quoted (message_id text, sku text); CREATE TABLE unmatched (request_id text, reason text, late_ms int)`;
const recordUnmatched = async (reply: UnmatchedReply, context: MessageContext): Promise<void> => {
  await context.manager.query(`INSERT INTO unmatched (request_id, reason, late_ms) VALUES ($1, $2, $3)`, [reply.requestId, reply.reason, reply.lateMs ?? null]);
};

const testConsumer = { sessionTimeoutMs: 6000, heartbeatIntervalMs: 500, maxWaitMs: 100, retryBackoffMs: 20, retryBackoffMaxMs: 100 };

describe.each(['embedded', 'kafkajs → concordat broker'])('request-reply end to end (%s)', (kind) => {
  let testDb: TestDatabase;
  let faulty: FaultyTransport;
  let broker: TestBroker | undefined;
  let dir: string;
  let app: ConcordatApp;
  const count = async (sql: string, params: unknown[] = []): Promise<number> => Number((await app.dataSource.query(sql, params))[0].n);

  beforeAll(async () => {
    testDb = await createTestDatabase('request_reply');
    dir = await mkdtemp(join(tmpdir(), 'concordat-rr-'));
    let transport: Transport;
    if (kind === 'embedded') {
      transport = new EmbeddedTransport({ dataDir: dir, consumer: { heartbeatIntervalMs: 200, maxWaitMs: 100, retryBackoffMs: 20, retryBackoffMaxMs: 200 } });
    } else {
      broker = await startTestBroker();
      transport = new KafkaTransport({ brokers: [broker.bootstrap], consumer: testConsumer });
    }
    faulty = new FaultyTransport(transport);
    app = ConcordatApp.create({
      name: 'rr-app',
      services: [Pricing],
      database: { url: testDb.url, poolSize: 6 },
      transport: faulty,
      partitions: 1,
      relay: { pollIntervalMs: 50 },
      requests: { instanceId: 'test-1', timeoutMs: 20_000, onUnmatchedReply: recordUnmatched },
    });
    await app.start();
    await app.dataSource.query(tables);
  });
  afterAll(async () => {
    slowGate.open();
    await app?.stop();
    await faulty?.close();
    await broker?.stop();
    await testDb?.drop();
    await rm(dir, { recursive: true, force: true });
  });

  it("resolves with the handler's return value, as the reply schema's output; both directions leave inbox rows", async () => {
    expect(app.replyTopic).toBe('rr-app.replies.test-1');
    const reply = await app.request(quote, { sku: 'a', quantity: 3 });
    expect(reply).toEqual({ cents: 300, currency: 'EUR' });
    // The same with the request written beside other work, awaited after the commit.
    const pending = await app.transaction(async (context) => {
      await context.manager.query(`INSERT INTO quoted (message_id, sku) VALUES ('caller', 'b')`);
      return context.request(quote, { sku: 'b', quantity: 1 }, { key: 'b' });
    });
    await expect(pending.reply()).resolves.toEqual({ cents: 100, currency: 'EUR' });
    expect(await pending.reply()).toEqual({ cents: 100, currency: 'EUR' });
    expect(await count(`SELECT count(*) AS n FROM concordat.inbox WHERE consumer = 'rr-pricing' AND message_id = $1`, [pending.id])).toBe(1);
    // The reply reaches its waiter inside the reply's transaction, so its inbox row may commit just after.
    await until(async () => (await count(`SELECT count(*) AS n FROM concordat.inbox WHERE consumer = 'rr-app.replies.test-1'`)) === 2, {
      message: "both replies in the reply topic's inbox",
    });
    expect(app.requestStats()).toMatchObject({ sent: 2, answered: 2, pending: 0 });
  });

  it('a failing responder sends a failed reply with its dead letter: the request rejects with REQUEST_FAILED, not at its timeout', async () => {
    const started = Date.now();
    const error = await app.request('rr.fail', { sku: 'x' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RequestFailedError);
    const failure = (error as RequestFailedError).failure;
    expect(error).toMatchObject({ code: ErrorCode.REQUEST_FAILED });
    expect(failure).toMatchObject({ code: 'Error', message: 'Error: no price for x', handler: 'Pricing.fail', consumer: 'rr-pricing', attempts: 1 });
    expect((error as Error).message).toContain(`the request is dead letter ${failure.deadLetterId} there`);
    expect(Date.now() - started).toBeLessThan(20_000);
    const [letter] = await app.dataSource.query(`SELECT topic, error_code FROM concordat.dead_letter WHERE id = $1`, [failure.deadLetterId]);
    expect(letter).toEqual({ topic: 'rr.fail', error_code: 'Error' });

    // A return value the reply schema refuses fails the handler (nothing of its work commits) the same way.
    const invalid = await app.request(quote, { sku: 'fractional', quantity: 1 }).catch((e: unknown) => e);
    expect(invalid).toBeInstanceOf(RequestFailedError);
    expect((invalid as RequestFailedError).failure).toMatchObject({ code: 'VALIDATION_FAILED', attempts: 1 });
    expect(await count(`SELECT count(*) AS n FROM quoted WHERE sku = 'fractional'`)).toBe(0);
  });

  it('times out with REQUEST_TIMEOUT; the late reply is counted and handed to onUnmatchedReply once, not to the caller', async () => {
    slowGate = latch();
    const before = app.requestStats()!;
    const sent: PendingRequest[] = [];
    const error = await app
      .transaction(async (context) => context.request('rr.slow', { n: 1 }, { timeoutMs: 300 }))
      .then((pending) => (sent.push(pending), pending.reply()))
      .catch((e: unknown) => e);
    const pending = sent[0]!;
    expect(error).toBeInstanceOf(ConcordatError);
    expect(error).toMatchObject({ code: ErrorCode.REQUEST_TIMEOUT, retriable: true });
    expect((error as Error).message).toContain(`no reply to request ${pending.id} on topic 'rr.slow' within 300 ms of its commit`);
    slowGate.open();
    await until(async () => (await count(`SELECT count(*) AS n FROM unmatched`)) >= 1, {
      timeoutMs: 30_000,
      message: 'the late reply handed to onUnmatchedReply',
    });
    const rows = await app.dataSource.query(`SELECT request_id, reason, late_ms FROM unmatched`);
    expect(rows).toEqual([{ request_id: pending.id, reason: 'late', late_ms: expect.any(Number) }]);
    expect(rows[0].late_ms).toBeGreaterThanOrEqual(0);
    // Counted once the reply's transaction committed.
    await until(() => app.requestStats()!.unmatched.late > before.unmatched.late, { message: 'the late reply counted' });
    const after = app.requestStats()!;
    expect(after.timedOut - before.timedOut).toBe(1);
    expect(after.unmatched.late - before.unmatched.late).toBe(1);
    // The caller's promise stays rejected with the timeout: the reply went nowhere else.
    await expect(pending.reply()).rejects.toMatchObject({ code: ErrorCode.REQUEST_TIMEOUT });
  });

  it('a redelivered request has one effect and its requester one reply (every record delivered twice)', async () => {
    const before = app.stats();
    const unmatchedBefore = app.requestStats()!.unmatched;
    const repeated = faulty.stats.deliveriesRepeated;
    faulty.deliverTwice();
    try {
      const first = await app.transaction(async (context) => context.request(quote, { sku: 'twice', quantity: 2 }, { key: 'twice' }));
      expect(await first.reply()).toEqual({ cents: 200, currency: 'EUR' });
      // A sentinel behind it (one partition each way): once it is answered, the first request's and reply's second deliveries were handled.
      expect(await app.request(quote, { sku: 'sentinel', quantity: 1 })).toEqual({ cents: 100, currency: 'EUR' });
      expect(await count(`SELECT count(*) AS n FROM quoted WHERE message_id = $1`, [first.id])).toBe(1);
    } finally {
      faulty.deliverTwice(false);
    }
    // At least the first request's and its reply's second deliveries (the sentinel's may still be on their way).
    expect(faulty.stats.deliveriesRepeated - repeated).toBeGreaterThanOrEqual(2);
    const after = app.stats();
    expect(after['rr-pricing']!.duplicates - before['rr-pricing']!.duplicates).toBeGreaterThanOrEqual(1);
    expect(after['rr-app.replies.test-1']!.duplicates - before['rr-app.replies.test-1']!.duplicates).toBeGreaterThanOrEqual(1);
    // No reply reached a waiter twice or went unmatched.
    expect(app.requestStats()!.unmatched).toEqual(unmatchedBefore);
  });

  it('misuse is a clear error at once, not a hang', async () => {
    await expect(
      app.transaction(async (context) => {
        await context.request(quote, { sku: 'c', quantity: 1 }).reply();
      }),
    ).rejects.toThrow(/was awaited inside the transaction that sends the request: .* await reply\(\) after app\.transaction\(\) returned/);
    const rolledBack: PendingRequest[] = [];
    await expect(
      app.transaction(async (context) => {
        rolledBack.push(context.request(quote, { sku: 'd', quantity: 1 }));
        throw new Error('changed my mind');
      }),
    ).rejects.toThrow('changed my mind');
    await expect(rolledBack[0]!.reply()).rejects.toMatchObject({ code: ErrorCode.REQUEST_NOT_SENT });
    await expect(app.request(quote, { sku: 'e', quantity: 1 }, { timeoutMs: 0 })).rejects.toMatchObject({ code: ErrorCode.REQUEST_INVALID });
    await expect(app.request('rr.fail', {}, { deliverAt: new Date() } as never)).rejects.toThrow(/cannot be published for later/);
    // The payload is validated before anything is written.
    await expect(app.request(quote, { sku: 'e', quantity: 0 })).rejects.toMatchObject({ code: ErrorCode.VALIDATION_FAILED });
    // None of these wrote a request: only the requests of the tests above reached the responder.
    expect(await count(`SELECT count(*) AS n FROM quoted WHERE sku IN ('c', 'd', 'e')`)).toBe(0);
  });

  it('a start hook may send a request and await its reply: the reply topic is read before the hooks run', async () => {
    startupQuote = undefined;
    const gateway = ConcordatApp.create({
      name: 'rr-startup',
      services: [StartupQuoter],
      database: { url: testDb.url, poolSize: 4 },
      transport: faulty,
      partitions: 1,
      relay: false, // rr-app's relay publishes the shared database's outbox
      requests: { instanceId: 'boot-0' },
    });
    try {
      await gateway.start();
    } finally {
      await gateway.stop();
    }
    expect(startupQuote).toEqual({ cents: 200, currency: 'EUR' });
  });
});

describe('a requester that restarts (embedded)', () => {
  let testDb: TestDatabase;
  let dir: string;
  let transport: EmbeddedTransport;
  const apps: ConcordatApp[] = [];

  beforeAll(async () => {
    testDb = await createTestDatabase('request_reply_restart');
    dir = await mkdtemp(join(tmpdir(), 'concordat-rr-restart-'));
    transport = new EmbeddedTransport({ dataDir: dir, consumer: { heartbeatIntervalMs: 200, maxWaitMs: 100, retryBackoffMs: 20, retryBackoffMaxMs: 200 } });
  });
  afterAll(async () => {
    slowGate.open();
    for (const app of apps) await app.stop();
    await transport?.close();
    await testDb?.drop();
    await rm(dir, { recursive: true, force: true });
  });

  it("pending waiters fail when it stops; the reply sent meanwhile lands in the restarted instance's inbox as unknown", async () => {
    const database = { url: testDb.url, poolSize: 4 };
    const common = { database, transport, partitions: 1, relay: { pollIntervalMs: 50 } };
    const responder = ConcordatApp.create({ ...common, name: 'rr-responder', services: [Pricing] });
    apps.push(responder);
    await responder.start();
    await responder.dataSource.query(tables);
    const requests = { instanceId: 'gateway-0', onUnmatchedReply: recordUnmatched };
    // A gateway: no services of its own, only requests.
    const first = ConcordatApp.create({ ...common, name: 'rr-gateway', services: [], requests, relay: false });
    apps.push(first);
    await first.start();
    slowGate = latch();
    const runs = slowRuns;
    const pending = await first.transaction(async (context) => context.request('rr.slow', { n: 41 }));
    // The responder holds the request; its reply comes only after the gate opens, once this instance is gone.
    await until(() => slowRuns > runs, { message: 'the responder handling the request' });
    await first.stop();
    await expect(pending.reply()).rejects.toMatchObject({ code: ErrorCode.APP_STATE_INVALID });
    await expect(pending.reply()).rejects.toThrow(/the request was sent and will still be handled/);

    const second = ConcordatApp.create({ ...common, name: 'rr-gateway', services: [], requests, relay: false });
    apps.push(second);
    await second.start();
    slowGate.open();
    await until(async () => (await countIn(second, `SELECT count(*) AS n FROM unmatched`)) >= 1, {
      timeoutMs: 30_000,
      message: 'the reply read by the restarted instance',
    });
    expect(await second.dataSource.query(`SELECT request_id, reason FROM unmatched`)).toEqual([{ request_id: pending.id, reason: 'unknown' }]);
    await until(async () => (await countIn(second, `SELECT count(*) AS n FROM concordat.inbox WHERE consumer = 'rr-gateway.replies.gateway-0'`)) === 1, {
      message: "the reply in the gateway's inbox",
    });
    await until(() => second.requestStats()!.unmatched.unknown === 1, { message: 'the unknown reply counted' });
    expect(second.requestStats()!.unmatched).toEqual({ late: 0, extra: 0, unknown: 1 });
  });
});

async function countIn(app: ConcordatApp, sql: string): Promise<number> {
  return Number((await app.dataSource.query(sql))[0].n);
}

describe('misuse fails at app creation, before any I/O', () => {
  it('an instanceId that cannot be part of a topic name', () => {
    expect(() => ConcordatApp.create({ name: 'rr', services: [Pricing], requests: { instanceId: 'pod 7' } })).toThrow(
      "invalid options: requests.instanceId: must be 1..100 characters of a-z, A-Z, 0-9, '_' and '-' (got \"pod 7\")",
    );
  });

  it('an app with no services and no requests', () => {
    expect(() => ConcordatApp.create({ name: 'rr', services: [] })).toThrow(
      "app.services: must list at least one service class (an app without any only sends requests: give it the 'requests' option)",
    );
  });
});
