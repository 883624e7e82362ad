import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { ConcordatApp, OnMessage, Service, TransactionCoordinator, type MessageContext } from '../../../src/index.js';
import { until } from '../../../src/testing/index.js';
import { REPLY_TOPIC } from '../../../src/transactions/index.js';
import { createTestDatabase, type TestDatabase } from '../../support/database.js';

let received: (data: { n: number }) => void = () => {};

@Service('logger-greeter')
class Greeter {
  @OnMessage('logger.greetings')
  async greet(context: MessageContext<{ n: number }>): Promise<void> {
    received(context.data);
  }
}

/** A pino logger writing its JSON lines into an array. */
function capturingPino(): { logger: pino.Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line));
      done();
    },
  });
  return { logger: pino({ level: 'debug', base: { service: 'users-own' } }, stream), lines };
}

describe("an app logs through its user's logger (issue 10 §2)", () => {
  let testDb: TestDatabase;
  let dataDir: string;

  beforeAll(async () => {
    testDb = await createTestDatabase('app_logger');
    dataDir = await mkdtemp(join(tmpdir(), 'concordat-app-logger-'));
  });
  afterAll(async () => {
    await testDb?.drop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it("a pino logger is the root of the app's component loggers", async () => {
    const { logger, lines } = capturingPino();
    const app = ConcordatApp.create({ name: 'logger-app', services: [Greeter], database: { url: testDb.url }, dataDir, partitions: 1, logger });
    expect(app.logger).toBe(logger);
    const delivered = new Promise<{ n: number }>((resolve) => (received = resolve));
    await app.start();
    try {
      await app.publish('logger.greetings', { n: 7 });
      expect(await delivered).toEqual({ n: 7 });
    } finally {
      await app.stop();
    }
    const started = lines.find((line) => line.msg === 'app started');
    expect(started).toMatchObject({ component: 'app', app: 'logger-app', service: 'users-own' });
    const components = new Set(lines.map((line) => line.component));
    // The app's own lines and those of components it creates: the relay, the embedded transport (at debug).
    for (const component of ['app', 'outbox-relay', 'transport.embedded']) expect(components).toContain(component);
    expect(lines.find((line) => line.msg === 'app stopped')).toMatchObject({ component: 'app', app: 'logger-app' });
  });

  it("the coordinator, a service of the app, logs through the user's logger too", async () => {
    const { logger, lines } = capturingPino();
    const app = ConcordatApp.create({
      name: 'logger-coordinator-app',
      services: [TransactionCoordinator],
      database: { url: testDb.url },
      dataDir,
      partitions: 1,
      logger,
    });
    await app.start();
    const globalTxId = randomUUID();
    try {
      // A reply for a global transaction nobody began: the coordinator ignores it with a warning.
      await app.publish(REPLY_TOPIC, { globalTxId, branchId: 1, action: 'confirm', ok: true });
      await until(() => lines.some((line) => line.component === 'coordinator' && line.globalTxId === globalTxId), { message: "the coordinator's line" });
    } finally {
      await app.stop();
    }
    expect(lines.find((line) => line.component === 'coordinator' && line.globalTxId === globalTxId)).toMatchObject({
      level: 40,
      msg: 'reply for an unknown global transaction; ignored',
      service: 'users-own',
    });
  });

  it("a logger with pino's level methods (not pino) gets (fields, message) calls", async () => {
    const calls: Array<[string, Record<string, unknown>, string | undefined]> = [];
    const method = (level: string) => (fields: unknown, message?: string) => calls.push([level, fields as Record<string, unknown>, message]);
    const logger = {
      trace: method('trace'),
      debug: method('debug'),
      info: method('info'),
      warn: method('warn'),
      error: method('error'),
      fatal: method('fatal'),
      level: 'info',
    };
    const app = ConcordatApp.create({ name: 'plain-logger-app', services: [Greeter], database: { url: testDb.url }, dataDir, partitions: 1, logger });
    await app.start();
    await app.stop();
    expect(calls).toContainEqual(['info', expect.objectContaining({ component: 'app', app: 'plain-logger-app' }), 'app started']);
    expect(calls).toContainEqual(['info', expect.objectContaining({ component: 'app', app: 'plain-logger-app' }), 'app stopped']);
    // level 'info': nothing below it reaches the user's logger.
    expect(calls.filter(([level]) => level === 'debug' || level === 'trace')).toEqual([]);
  });

  it('refuses a logger without the level methods, naming the option', () => {
    expect(() => ConcordatApp.create({ name: 'bad-logger-app', services: [Greeter], logger: { info: () => undefined } as never })).toThrow(
      "app.logger: must be a pino logger or an object with pino's level methods (trace, debug, info, warn, error, fatal)",
    );
  });
});
