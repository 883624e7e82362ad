import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode } from '../../../src/errors.js';
import { AppState, ConcordatApp, OnMessage, Service, type MessageContext } from '../../../src/runtime/index.js';
import { EmbeddedTransport } from '../../../src/transport/index.js';
import { createTestDatabase, type TestDatabase } from '../../support/database.js';

const handled: string[] = [];

@Service('pairing')
class Pairing {
  @OnMessage('pairing.orders')
  async onOrder(context: MessageContext<{ order: string }>): Promise<void> {
    handled.push(context.data.order);
  }
}

/** Publishes only: no consumer group, so what it publishes stays unhandled in the log. */
@Service('pairing-producer')
class Producer {}

/**
 * An embedded log directory belongs to the database it was first used
 * with: kept while the database is re-created, it would deliver its
 * records (here an order published and not yet handled) into the new one.
 */
describe('a log directory and a database that do not belong together', () => {
  let first: TestDatabase;
  let second: TestDatabase;
  let dir: string;

  beforeAll(async () => {
    first = await createTestDatabase('pairing_a');
    second = await createTestDatabase('pairing_b');
    dir = await mkdtemp(join(tmpdir(), 'concordat-pairing-'));
  });
  afterAll(async () => {
    await first?.drop();
    await second?.drop();
    await rm(dir, { recursive: true, force: true });
  });

  const transports: EmbeddedTransport[] = [];
  /** An app on `database` over the log directory; the transport is the test's, closed by {@link stop}. */
  const appOn = (database: TestDatabase, options: { consume?: boolean } = {}): ConcordatApp => {
    const transport = new EmbeddedTransport({ dataDir: join(dir, 'log') });
    transports.push(transport);
    return ConcordatApp.create({
      name: 'pairing',
      services: options.consume === false ? [Producer] : [Pairing],
      database: { url: database.url, poolSize: 2 },
      transport,
      partitions: 1,
    });
  };
  /** Stops the app and closes its transport (the log directory's lock goes with it). */
  const stop = async (app: ConcordatApp): Promise<void> => {
    await app.stop();
    await transports.splice(0).reduce((done, transport) => done.then(() => transport.close()), Promise.resolve());
  };

  it('refuses to start on another database, says how to reset either, and starts on its own database or a fresh log', async () => {
    // First life: the log is paired with the first database and holds an order nobody handled yet.
    const producer = appOn(first, { consume: false });
    await producer.start();
    await producer.publish('pairing.orders', { order: 'o-1' });
    await expect.poll(async () => (await producer.outboxRelay!.lag()).backlogRows, { timeout: 20_000 }).toBe(0);
    await stop(producer);

    // The database is replaced, the log kept: refused before anything is delivered.
    const wrong = appOn(second);
    const error = await wrong.start().then(
      () => undefined,
      (thrown: unknown) => thrown,
    );
    expect(error).toMatchObject({ code: ErrorCode.LOG_DATABASE_MISMATCH });
    const message = (error as Error).message;
    expect(message).toContain(join(dir, 'log'));
    expect(message).toContain('database.url / DATABASE_URL');
    expect(message).toContain('delete the log directory');
    expect(wrong.status).toBe(AppState.FAILED);
    expect(handled).toEqual([]);
    await stop(wrong);

    // Its own database: starts and handles the order.
    const right = appOn(first);
    await right.start();
    await expect.poll(() => handled, { timeout: 20_000 }).toEqual(['o-1']);
    await stop(right);

    // The operator chose the new database: with the log directory deleted, it starts.
    await rm(join(dir, 'log'), { recursive: true, force: true });
    const fresh = appOn(second);
    await fresh.start();
    expect(fresh.status).toBe(AppState.RUNNING);
    await stop(fresh);
    expect(handled).toEqual(['o-1']);
  });
});
