import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConcordatError, ErrorCode } from '../../../src/errors.js';
import { ConcordatApp, OnMessage, Service, type MessageContext, type PendingRequest } from '../../../src/runtime/index.js';
import { EmbeddedTransport } from '../../../src/transport/index.js';
import { createTestDatabase, type TestDatabase } from '../../support/database.js';

/**
 * A `COMMIT` whose answer is lost: the app reaches PostgreSQL through a TCP
 * proxy (real sockets, the real server) that, once armed, cuts the one
 * connection whose statement carries a marker (the request's key) and `COMMIT` — either after
 * PostgreSQL answered it (the transaction committed, the client never
 * hears) or before passing it on (it never ran). Either way the caller gets
 * TRANSACTION_OUTCOME_UNKNOWN, never a rollback, and a request published in
 * that transaction waits for its reply: when the commit happened, the reply
 * comes; when it did not, the timeout says the request may never have been
 * sent.
 */

type Cut = 'after-answer' | 'before-send';

/** A TCP proxy to PostgreSQL that can cut the connection carrying one marked COMMIT. */
class CommitCutter {
  private server?: Server;
  private armed?: { marker: string; cut: Cut };
  private readonly sockets = new Set<Socket>();
  cuts = 0;

  constructor(
    private readonly host: string,
    private readonly port: number,
  ) {}

  async listen(): Promise<number> {
    this.server = createServer((client) => this.pipe(client));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    return (this.server.address() as { port: number }).port;
  }

  arm(marker: string, cut: Cut): void {
    this.armed = { marker, cut };
  }

  private pipe(client: Socket): void {
    const upstream = connect(this.port, this.host);
    this.sockets.add(client).add(upstream);
    let dropAnswer = false;
    const cutBoth = (): void => {
      this.cuts++;
      client.destroy();
      upstream.destroy();
    };
    client.on('data', (chunk) => {
      const armed = this.armed;
      const text = chunk.toString('latin1');
      if (armed !== undefined && text.includes(armed.marker) && text.includes('COMMIT')) {
        this.armed = undefined;
        if (armed.cut === 'before-send') return cutBoth();
        dropAnswer = true;
      }
      upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      // PostgreSQL answered the COMMIT: it is done, and the client will never know.
      if (dropAnswer) return cutBoth();
      client.write(chunk);
    });
    for (const socket of [client, upstream]) {
      socket.on('error', () => undefined);
      socket.on('close', () => {
        this.sockets.delete(socket);
        client.destroy();
        upstream.destroy();
      });
    }
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

@Service('cut-pricing')
class Pricing {
  @OnMessage('cut.quote')
  async quote(context: MessageContext<{ sku: string }>) {
    return { price: `quoted ${context.data.sku}` };
  }
}

describe('a COMMIT whose answer is lost', () => {
  let testDb: TestDatabase;
  let cutter: CommitCutter;
  let dir: string;
  let app: ConcordatApp;

  beforeAll(async () => {
    testDb = await createTestDatabase('commit_unknown');
    const direct = new URL(testDb.url);
    cutter = new CommitCutter(direct.hostname, Number(direct.port || 5432));
    const proxied = new URL(testDb.url);
    proxied.hostname = '127.0.0.1';
    proxied.port = String(await cutter.listen());
    dir = await mkdtemp(join(tmpdir(), 'concordat-commit-unknown-'));
    app = ConcordatApp.create({
      name: 'cut-app',
      services: [Pricing],
      database: { url: proxied.toString(), poolSize: 6 },
      transport: new EmbeddedTransport({ dataDir: dir, consumer: { heartbeatIntervalMs: 200, maxWaitMs: 100, retryBackoffMs: 20, retryBackoffMaxMs: 200 } }),
      partitions: 1,
      relay: { pollIntervalMs: 50 },
      requests: { instanceId: 'cut-1', timeoutMs: 20_000 },
    });
    await app.start();
    await app.dataSource.query(`CREATE TABLE booked (sku text PRIMARY KEY); CREATE TABLE held (sku text UNIQUE DEFERRABLE INITIALLY DEFERRED)`);
  });
  afterAll(async () => {
    await app?.stop();
    await cutter?.close();
    await testDb?.drop();
    await rm(dir, { recursive: true, force: true });
  });

  /** Runs a transaction that books `sku` and requests a quote for it, with its COMMIT cut as `cut` says. */
  async function cutTransaction(sku: string, cut: Cut, timeoutMs?: number): Promise<{ error: unknown; pending: PendingRequest }> {
    const sent: PendingRequest[] = [];
    cutter.arm(sku, cut);
    const error = await app
      .transaction(async (context) => {
        await context.manager.query(`INSERT INTO booked (sku) VALUES ($1)`, [sku]);
        // The key travels as text in the outbox insert sent with the COMMIT (the payload as hex): the cutter's marker.
        sent.push(context.request('cut.quote', { sku }, { key: sku, ...(timeoutMs !== undefined && { timeoutMs }) }));
      })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    return { error, pending: sent[0]! };
  }

  const booked = async (sku: string): Promise<number> => Number((await app.dataSource.query(`SELECT count(*) AS n FROM booked WHERE sku = $1`, [sku]))[0].n);

  it('committed after all: the caller is told the outcome is unknown, and the request, which was sent, gets its reply', async () => {
    const cutsBefore = cutter.cuts;
    const { error, pending } = await cutTransaction('sku-committed', 'after-answer');
    expect(cutter.cuts).toBe(cutsBefore + 1);
    expect(error).toBeInstanceOf(ConcordatError);
    expect(error).toMatchObject({ code: ErrorCode.TRANSACTION_OUTCOME_UNKNOWN, retriable: true });
    expect((error as Error).message).toMatch(/failed while COMMIT was on its way .*may or may not have committed/);
    // It did commit: the row, and the request (a REQUEST_NOT_SENT here would be a lie).
    expect(await booked('sku-committed')).toBe(1);
    await expect(pending.reply()).resolves.toEqual({ price: 'quoted sku-committed' });
  });

  it('never ran: the same error; the request times out saying it may never have been sent', async () => {
    const { error, pending } = await cutTransaction('sku-lost', 'before-send', 1500);
    expect(error).toMatchObject({ code: ErrorCode.TRANSACTION_OUTCOME_UNKNOWN });
    expect(await booked('sku-lost')).toBe(0);
    const timeout = await pending.reply().catch((e: unknown) => e);
    expect(timeout).toMatchObject({ code: ErrorCode.REQUEST_TIMEOUT, context: { commitOutcome: 'unknown' } });
    expect((timeout as Error).message).toContain('the request may never have been sent');
  });

  it('a COMMIT that PostgreSQL refused is a known rollback, not an unknown outcome: the request was not sent', async () => {
    await app.dataSource.query(`INSERT INTO held (sku) VALUES ('taken')`);
    const sent: PendingRequest[] = [];
    const error = await app
      .transaction(async (context) => {
        sent.push(context.request('cut.quote', { sku: 'taken' }));
        // A deferred unique constraint: the violation is raised by the COMMIT itself.
        await context.manager.query(`INSERT INTO held (sku) VALUES ('taken')`);
      })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: '23505' });
    await expect(sent[0]!.reply()).rejects.toMatchObject({ code: ErrorCode.REQUEST_NOT_SENT });
  });
});
