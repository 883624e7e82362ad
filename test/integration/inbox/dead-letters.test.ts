import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nonRetriable } from '../../../src/errors.js';
import { listDeadLetters } from '../../../src/inbox/index.js';
import { ConcordatApp, DeadLetterHeader, OnMessage, REPLAY_OF_HEADER, replayDeadLetters, Service, type MessageContext } from '../../../src/runtime/index.js';
import { until } from '../../../src/testing/index.js';
import { EmbeddedTransport, type Delivery } from '../../../src/transport/index.js';
import { createTestDatabase, type TestDatabase } from '../../support/database.js';

const MAIN = new URL('../../../src/cli/main.ts', import.meta.url).pathname;

/** Runs `concordat <args>` as a process. */
function concordat(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], { env: { ...process.env, CONCORDAT_LOG_LEVEL: 'silent' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

interface Order {
  n: number;
  kind: 'ok' | 'poison' | 'invalid' | 'bug';
}

/** Poison messages fail until `healed`; `invalid` ones fail non-retriably; `bug` ones with a TypeError. */
let healed = false;
const attempts = new Map<number, number>();

@Service('shipping')
class ShippingService {
  @OnMessage('orders.placed', { retry: { maxAttempts: 3, strategy: 'immediate' } })
  async ship(context: MessageContext<Order>): Promise<void> {
    const { n, kind } = context.data;
    attempts.set(n, (attempts.get(n) ?? 0) + 1);
    if (kind === 'poison' && !healed) throw new Error(`cannot ship order ${n}`);
    if (kind === 'invalid' && !healed) throw nonRetriable(new Error(`order ${n} is invalid`));
    if (kind === 'bug' && !healed) (context.data as unknown as { missing: { field: number } }).missing.field;
    await context.manager.query(`INSERT INTO shipped (n) VALUES ($1)`, [n]);
  }
}

describe('dead letters: the partition moves on, the store keeps everything, concordat dlq replays once (real Postgres, real log)', () => {
  let testDb: TestDatabase;
  let dir: string;
  let transport: EmbeddedTransport;
  let app: ConcordatApp;
  const dlqRecords: Delivery[] = [];

  beforeAll(async () => {
    testDb = await createTestDatabase('dead_letters');
    dir = await mkdtemp(join(tmpdir(), 'concordat-dlq-'));
    transport = new EmbeddedTransport({ dataDir: dir });
    app = ConcordatApp.create({ name: 'shop', services: [ShippingService], database: { url: testDb.url, poolSize: 4 }, transport, partitions: 1, relay: { pollIntervalMs: 100 } });
    await app.start();
    await app.dataSource.query(`CREATE TABLE shipped (n int, at timestamptz DEFAULT clock_timestamp())`);
    await transport.subscribe({ groupId: 'dlq-reader', topics: ['orders.placed.dlq'], handler: async (delivery) => void dlqRecords.push(delivery) });
  });
  afterAll(async () => {
    await app.stop();
    await transport.close();
    await testDb.drop();
    await rm(dir, { recursive: true, force: true });
  });

  const shipped = async (): Promise<number[]> => (await app.dataSource.query(`SELECT n FROM shipped ORDER BY at`)).map((r: { n: number }) => r.n);

  it('a failing message goes to <topic>.dlq after its attempts (at once when non-retriable or a TypeError); the messages behind it are processed', async () => {
    const orders: Order[] = [
      { n: 1, kind: 'ok' },
      { n: 2, kind: 'poison' },
      { n: 3, kind: 'ok' },
      { n: 4, kind: 'invalid' },
      { n: 5, kind: 'bug' },
      { n: 6, kind: 'ok' },
    ];
    await app.transaction(async (context) => {
      for (const order of orders) context.publish('orders.placed', order, { key: 'customer-1', id: `order-${order.n}` });
    });
    await until(async () => (await shipped()).length === 3 && dlqRecords.length === 3, { message: 'three shipped, three dead-lettered' });
    expect(await shipped()).toEqual([1, 3, 6]);
    // The six arrive in one read and are dispatched as one batch (one transaction). 2 fails in it: the batch
    // rolls back, 1 runs again (its work was rolled back), 2 goes on alone (the batch counted as its attempt 1,
    // so three calls in all), then 3..6 as a batch: 4 fails, 3 runs again, 4 is dead-lettered after that one
    // attempt; then 5..6: 5 fails (a TypeError: no retry), then 6 alone. Every handler's effect is there once.
    expect(Object.fromEntries(attempts)).toEqual({ 1: 2, 2: 3, 3: 2, 4: 1, 5: 1, 6: 1 });

    const letters = await listDeadLetters(app.dataSource);
    expect(letters.map((l) => ({ messageId: l.messageId, attempts: l.attempts, error: l.error, errorCode: l.errorCode }))).toEqual([
      { messageId: 'order-2', attempts: 3, error: 'Error: cannot ship order 2', errorCode: 'Error' },
      { messageId: 'order-4', attempts: 1, error: 'Error: order 4 is invalid', errorCode: 'Error' },
      { messageId: 'order-5', attempts: 1, error: "TypeError: Cannot read properties of undefined (reading 'field')", errorCode: 'TypeError' },
    ]);
    const [poison] = letters;
    expect(poison).toMatchObject({ consumer: 'shipping', handler: 'ShippingService.ship', topic: 'orders.placed', partition: 0, key: 'customer-1', replayedAt: null });
    expect(poison!.headers.ce_id).toBe('order-2');
    expect(JSON.parse(poison!.payload!.toString())).toEqual({ n: 2, kind: 'poison' });

    const record = dlqRecords.find((d) => d.headers.ce_id?.toString() === 'order-2')!;
    expect(record.key?.toString()).toBe('customer-1');
    expect(JSON.parse(record.value!.toString())).toEqual({ n: 2, kind: 'poison' });
    const header = (name: string): string | undefined => record.headers[name]?.toString();
    expect({
      error: header(DeadLetterHeader.ERROR),
      code: header(DeadLetterHeader.ERROR_CODE),
      attempts: header(DeadLetterHeader.ATTEMPTS),
      handler: header(DeadLetterHeader.HANDLER),
      consumer: header(DeadLetterHeader.CONSUMER),
      topic: header(DeadLetterHeader.TOPIC),
      id: header(DeadLetterHeader.ID),
      type: header('ce_type'),
    }).toEqual({
      error: 'Error: cannot ship order 2',
      code: 'Error',
      attempts: '3',
      handler: 'ShippingService.ship',
      consumer: 'shipping',
      topic: 'orders.placed',
      id: poison!.id,
      type: 'orders.placed',
    });
    expect(app.stats().shipping).toMatchObject({ processed: 3, deadLettered: 3, retries: 2 });
  });

  it('concordat dlq list shows them; dlq replay sends one back through the normal path, once', async () => {
    const url = testDb.url;
    const listed = await concordat(['dlq', 'list', '--url', url, '--json']);
    expect(listed.code).toBe(0);
    const pending = JSON.parse(listed.stdout) as Array<{ id: string; messageId: string; payload: string }>;
    expect(pending.map((l) => [l.messageId, l.payload])).toEqual([
      ['order-2', '{"n":2,"kind":"poison"}'],
      ['order-4', '{"n":4,"kind":"invalid"}'],
      ['order-5', '{"n":5,"kind":"bug"}'],
    ]);
    const table = await concordat(['dlq', 'list', '--url', url, '--consumer', 'shipping']);
    const lines = table.stdout.trimEnd().split('\n');
    expect(lines[0]!.split(/\s{2,}/)).toEqual(['ID', 'FAILED AT', 'CONSUMER', 'TOPIC', 'PARTITION:OFFSET', 'MESSAGE ID', 'ATTEMPTS', 'HANDLER', 'ERROR', 'REPLAYED AT']);
    expect(lines.slice(1).map((line) => line.split(/\s{2,}/)[5])).toEqual(['order-2', 'order-4', 'order-5']);
    expect(table.stdout).toContain(`Error: cannot ship order 2`);

    healed = true;
    const poisonId = pending[0]!.id;
    const replay = await concordat(['dlq', 'replay', poisonId, '--url', url]);
    expect(replay).toEqual({ code: 0, stdout: `replayed 1 dead letter(s) through the outbox:\n  ${poisonId}  order-2 → orders.placed (consumer shipping)\n`, stderr: '' });
    await until(async () => (await shipped()).includes(2), { message: 'the replayed order is shipped' });

    const again = await concordat(['dlq', 'replay', poisonId, '--url', url]);
    expect(again).toEqual({
      code: 1,
      stdout: 'no pending dead letter matches; nothing replayed\n',
      stderr: `concordat: not replayed (already replayed, or no such dead letter): ${poisonId}\n`,
    });
    const bad = await concordat(['dlq', 'replay', '--url', url]);
    expect(bad).toEqual({ code: 1, stdout: '', stderr: 'concordat: name the dead letters to replay (IDs from dlq list), or pass --all (narrowed by --consumer and --topic)\n' });

    // Two operators replaying everything at once: each remaining dead letter goes out once.
    const [first, second] = await Promise.all([
      replayDeadLetters(app.dataSource, { consumer: 'shipping' }),
      replayDeadLetters(app.dataSource, { consumer: 'shipping' }),
    ]);
    expect([...first, ...second].map((l) => l.messageId).sort()).toEqual(['order-4', 'order-5']);
    await until(async () => (await shipped()).length === 6, { message: 'all six shipped' });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect((await shipped()).sort()).toEqual([1, 2, 3, 4, 5, 6]);
    const [{ n: replays }] = await app.dataSource.query(`SELECT count(*)::int AS n FROM concordat.inbox WHERE consumer = 'shipping'`);
    expect(replays).toBe(6);
    expect(await listDeadLetters(app.dataSource)).toEqual([]);
    const history = await listDeadLetters(app.dataSource, { includeReplayed: true });
    expect(history.every((l) => l.replayedAt !== null)).toBe(true);
  });

  it('a replayed message that fails again is dead-lettered again, with the replay header', async () => {
    healed = false;
    await app.transaction(async (context) => void context.publish('orders.placed', { n: 7, kind: 'poison' }, { key: 'customer-2', id: 'order-7' }));
    await until(async () => (await listDeadLetters(app.dataSource)).length === 1, { message: 'order 7 dead-lettered' });
    const [letter] = await replayDeadLetters(app.dataSource, { topic: 'orders.placed' });
    await until(async () => (await listDeadLetters(app.dataSource)).length === 1, { message: 'order 7 dead-lettered again' });
    const [again] = await listDeadLetters(app.dataSource);
    expect(again!.id).not.toBe(letter!.id);
    expect(again!.messageId).toBe('order-7');
    expect(again!.headers[REPLAY_OF_HEADER]).toBe(letter!.id);
  });
});
