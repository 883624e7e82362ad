import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { ConcordatError, ErrorCode } from '../../../src/errors.js';
import type { Logger } from '../../../src/observability/index.js';
import { openDatabase } from '../../../src/persistence/index.js';
import { AppState, ConcordatApp, OnMessage, Service, type MessageContext } from '../../../src/runtime/index.js';
import { EmbeddedTransport } from '../../../src/transport/index.js';
import { createTestDatabase, type TestDatabase } from '../../support/database.js';

/**
 * A PostgreSQL that is not there yet: a port where nothing listens until the
 * test opens a TCP proxy on it to the run's real server.
 */
class LatePostgres {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();

  private constructor(
    readonly port: number,
    private readonly target: URL,
  ) {}

  /** Reserves a free port (listen on 0, close) for a proxy to `target`'s host and port. */
  static async reserve(target: string): Promise<LatePostgres> {
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as { port: number }).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    return new LatePostgres(port, new URL(target));
  }

  /** `target` with host and port replaced by the proxy's. */
  url(): string {
    const url = new URL(this.target);
    url.hostname = '127.0.0.1';
    url.port = String(this.port);
    return url.toString();
  }

  /** {@link url} as messages show it: the password as `***`. */
  shown(): string {
    const url = new URL(this.url());
    if (url.password !== '') url.password = '***';
    return url.toString();
  }

  async appear(): Promise<void> {
    const server = createServer((client) => {
      const upstream = connect(Number(this.target.port || 5432), this.target.hostname);
      for (const socket of [client, upstream]) {
        this.sockets.add(socket);
        socket.on('close', () => this.sockets.delete(socket));
        socket.on('error', () => {
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream);
      upstream.pipe(client);
    });
    await new Promise<void>((resolve) => server.listen(this.port, '127.0.0.1', resolve));
    this.server = server;
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => (this.server === undefined ? resolve() : this.server.close(() => resolve())));
  }
}

/** A real pino logger writing its lines into an array. */
function capturedLogger(): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino<never>({ level: 'info' }, sink), lines };
}

async function rejection(work: Promise<unknown>): Promise<ConcordatError> {
  try {
    await work;
  } catch (error) {
    return error as ConcordatError;
  }
  throw new Error('expected a rejection, the promise resolved');
}

const received: string[] = [];

@Service('late-db')
class Echo {
  @OnMessage('late-db.ping')
  async on(context: MessageContext<{ n: number }>): Promise<void> {
    received.push(`${context.data.n}`);
  }
}

describe('starting against a database that is not there yet (issue 10 §3)', () => {
  let testDb: TestDatabase;
  let dir: string;
  const cleanups: Array<() => Promise<void>> = [];

  beforeAll(async () => {
    testDb = await createTestDatabase('late_db');
    dir = await mkdtemp(join(tmpdir(), 'concordat-late-db-'));
  });
  afterEach(async () => {
    vi.unstubAllEnvs();
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  afterAll(async () => {
    await testDb?.drop();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  const appOn = (url: string, name: string, connectRetry?: { timeoutMs: number; initialDelayMs?: number; maxDelayMs?: number }): ConcordatApp => {
    const transport = new EmbeddedTransport({ dataDir: join(dir, name) });
    const app = ConcordatApp.create({
      name,
      services: [Echo],
      database: { url, poolSize: 4, connectTimeoutMs: 2000, ...(connectRetry !== undefined && { connectRetry }) },
      transport,
      partitions: 1,
    });
    cleanups.push(async () => {
      await app.stop();
      await transport.close();
    });
    return app;
  };

  it('an app whose start failed (no database) is FAILED, and starts once the database is there', async () => {
    const late = await LatePostgres.reserve(testDb.url);
    cleanups.push(() => late.close());
    const app = appOn(late.url(), 'restartable');
    const error = await rejection(app.start());
    expect(error.code).toBe(ErrorCode.DATABASE_UNAVAILABLE);
    expect(error.message).toContain(`cannot connect to PostgreSQL at ${late.shown()} (from database.url): connect ECONNREFUSED 127.0.0.1:${late.port}`);
    expect(error.message).toContain('to wait for it at start, set database.connectRetry: { timeoutMs: ... }');
    expect(app.status).toBe(AppState.FAILED);

    await late.appear();
    await app.start();
    expect(app.status).toBe(AppState.RUNNING);
    // It works: a message goes through outbox, relay, log and handler.
    await app.publish('late-db.ping', { n: 1 });
    await vi.waitFor(() => expect(received).toContain('1'), { timeout: 20_000, interval: 50 });
    await app.stop();
    expect(app.status).toBe(AppState.STOPPED);
  });

  it('with connectRetry, start waits for the database (backoff, each wait logged) and the app runs', async () => {
    const late = await LatePostgres.reserve(testDb.url);
    cleanups.push(() => late.close());
    const app = appOn(late.url(), 'waiting', { timeoutMs: 30_000, initialDelayMs: 100, maxDelayMs: 400 });
    const startedAt = Date.now();
    const appeared = new Promise<void>((resolve) => setTimeout(() => void late.appear().then(resolve), 1500));
    await app.start();
    await appeared;
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(1500);
    expect(app.status).toBe(AppState.RUNNING);
    await app.publish('late-db.ping', { n: 2 });
    await vi.waitFor(() => expect(received).toContain('2'), { timeout: 20_000, interval: 50 });
  });

  it('openDatabase logs each wait with the error and the next delay, doubling up to maxDelayMs', async () => {
    const late = await LatePostgres.reserve(testDb.url);
    cleanups.push(() => late.close());
    const { logger: log, lines } = capturedLogger();
    const appeared = new Promise<void>((resolve) => setTimeout(() => void late.appear().then(resolve), 2000));
    const db = await openDatabase({ url: late.url(), poolSize: 2, connectRetry: { timeoutMs: 30_000, initialDelayMs: 100, maxDelayMs: 400 } }, log);
    cleanups.push(() => db.close());
    await appeared;
    expect((await db.dataSource.query('SELECT 1 AS one'))[0].one).toBe(1);
    const waits = lines.filter((line) => line.msg === `database not reachable yet; next attempt in ${String(line.nextDelayMs)} ms`);
    // 100 + 200 + 400 + 400 ... ms: at least four waits before 2 s.
    expect(waits.length).toBeGreaterThanOrEqual(4);
    expect(waits.slice(0, 4).map((line) => line.nextDelayMs)).toEqual([100, 200, 400, 400]);
    expect(waits.map((line) => line.attempt)).toEqual(waits.map((_, i) => i + 1));
    for (const line of waits) {
      expect(line.level).toBe(40); // warn
      expect(line.err).toBe(`connect ECONNREFUSED 127.0.0.1:${late.port}`);
      expect(line.timeoutMs).toBe(30_000);
    }
    expect(lines.at(-1)).toMatchObject({ msg: 'database reachable', attempts: waits.length + 1 });
  });

  it('the wait is bounded: after timeoutMs, DATABASE_UNAVAILABLE saying how long it waited', async () => {
    const late = await LatePostgres.reserve(testDb.url);
    const { logger: log, lines } = capturedLogger();
    const startedAt = Date.now();
    const error = await rejection(openDatabase({ url: late.url(), connectRetry: { timeoutMs: 800, initialDelayMs: 100, maxDelayMs: 200 } }, log));
    const elapsedMs = Date.now() - startedAt;
    expect(error.code).toBe(ErrorCode.DATABASE_UNAVAILABLE);
    expect(error.message).toMatch(
      new RegExp(
        `^cannot connect to PostgreSQL at ${late.shown().replace(/[*]/g, '\\*').replace(/[.?/]/g, '\\$&')} \\(from database\\.url\\) after \\d+ attempts in \\d+ ms: connect ECONNREFUSED`,
      ),
    );
    expect(error.message).toContain('or wait longer with database.connectRetry.timeoutMs (now 800)');
    expect(error.context.attempts).toBe(lines.length + 1);
    expect(elapsedMs).toBeGreaterThanOrEqual(800);
    expect(elapsedMs).toBeLessThan(15_000);
  });

  it('a failure that waiting cannot cure (a missing database) fails at once, with no wait', async () => {
    const missing = new URL(testDb.url);
    missing.pathname = '/no_such_database_here';
    const { logger: log, lines } = capturedLogger();
    const error = await rejection(openDatabase({ url: missing.toString(), connectRetry: { timeoutMs: 60_000 } }, log));
    expect(error.code).toBe(ErrorCode.DATABASE_UNAVAILABLE);
    expect(error.message).toContain('database "no_such_database_here" does not exist. Check the URL in database.url');
    expect(error.context.attempts).toBe(1);
    expect(lines).toEqual([]);
  });

  it('a URL from DATABASE_URL that cannot be reached is named as DATABASE_URL', async () => {
    const late = await LatePostgres.reserve(testDb.url);
    vi.stubEnv('DATABASE_URL', late.url());
    const error = await rejection(openDatabase({}));
    expect(error.code).toBe(ErrorCode.DATABASE_UNAVAILABLE);
    expect(error.message).toContain(`cannot connect to PostgreSQL at ${late.shown()} (from DATABASE_URL): connect ECONNREFUSED`);
  });
});
