import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nonRetriable } from '../../../src/errors.js';
import { DeadLetterHeader, listDeadLetters, REPLAY_FOR_HEADER, REPLAY_OF_HEADER, replayDeadLetters, type DeadLetter } from '../../../src/inbox/index.js';
import { ConcordatApp, OnMessage, Service, type MessageContext } from '../../../src/runtime/index.js';
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

/** Another consumer group of the same topic, at-least-once (no inbox): it counts what it receives. */
const audited = new Map<number, number>();

@Service('audit')
class AuditTrailService {
  @OnMessage('orders.placed', { transactional: false })
  async note(context: MessageContext<Order>): Promise<void> {
    audited.set(context.data.n, (audited.get(context.data.n) ?? 0) + 1);
  }
}

// Some tests run the CLI several times, each a new Node process (about 2 s of CPU under tsx): on a loaded machine one
// took 59 s of the default 60 s timeout.
describe('dead letters: the partition moves on, the store keeps everything, concordat dlq replays once (real Postgres, real log)', { timeout: 180_000 }, () => {
  let testDb: TestDatabase;
  let dir: string;
  let transport: EmbeddedTransport;
  let app: ConcordatApp;
  const dlqRecords: Delivery[] = [];

  beforeAll(async () => {
    testDb = await createTestDatabase('dead_letters');
    dir = await mkdtemp(join(tmpdir(), 'concordat-dlq-'));
    transport = new EmbeddedTransport({ dataDir: dir });
    app = ConcordatApp.create({
      name: 'shop',
      services: [ShippingService, AuditTrailService],
      database: { url: testDb.url, poolSize: 4 },
      transport,
      partitions: 1,
      relay: { pollIntervalMs: 100 },
    });
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
    expect(poison).toMatchObject({
      consumer: 'shipping',
      handler: 'ShippingService.ship',
      topic: 'orders.placed',
      partition: 0,
      key: 'customer-1',
      replayedAt: null,
    });
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

  it('concordat dlq list cut at its --limit shows the oldest and says on stderr that more match', async () => {
    const cut = await concordat(['dlq', 'list', '--url', testDb.url, '--json', '--limit', '2']);
    expect(cut.code).toBe(0);
    expect((JSON.parse(cut.stdout) as Array<{ messageId: string }>).map((l) => l.messageId)).toEqual(['order-2', 'order-4']);
    expect(cut.stderr).toBe('concordat: warning: only the first 2 dead letters are shown; more match: raise --limit, or narrow with --consumer or --topic\n');
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
    expect(lines[0]!.split(/\s{2,}/)).toEqual([
      'ID',
      'FAILED AT',
      'CONSUMER',
      'TOPIC',
      'PARTITION:OFFSET',
      'MESSAGE ID',
      'ATTEMPTS',
      'HANDLER',
      'ERROR',
      'REPLAYED AT',
    ]);
    expect(lines.slice(1).map((line) => line.split(/\s{2,}/)[5])).toEqual(['order-2', 'order-4', 'order-5']);
    expect(table.stdout).toContain(`Error: cannot ship order 2`);

    healed = true;
    const poisonId = pending[0]!.id;
    const replay = await concordat(['dlq', 'replay', poisonId, '--url', url]);
    expect(replay).toEqual({
      code: 0,
      stdout: `replayed 1 dead letter(s) through the outbox:\n  ${poisonId}  order-2 → orders.placed (consumer shipping)\n`,
      stderr: '',
    });
    await until(async () => (await shipped()).includes(2), { message: 'the replayed order is shipped' });
    const [replayed] = await listDeadLetters(app.dataSource, { ids: [poisonId], includeReplayed: true });
    expect(replayed!.replayedBy).toMatch(/^[^@\s]+@\S+$/); // user@host of whoever ran the command

    const again = await concordat(['dlq', 'replay', poisonId, '--url', url]);
    expect(again).toEqual({
      code: 1,
      stdout: 'no pending dead letter matches; nothing replayed\n',
      stderr: `concordat: not replayed (already replayed, or no such dead letter): ${poisonId}\n`,
    });
    const bad = await concordat(['dlq', 'replay', '--url', url]);
    expect(bad).toEqual({
      code: 1,
      stdout: '',
      stderr: 'concordat: name the dead letters to replay (IDs from dlq list), or pass --all (narrowed by --consumer and --topic)\n',
    });

    // Two operators replaying everything at once: each remaining dead letter goes out once.
    const [first, second] = await Promise.all([
      replayDeadLetters(app.dataSource, { consumer: 'shipping' }),
      replayDeadLetters(app.dataSource, { consumer: 'shipping' }),
    ]);
    expect([...first, ...second].map((l) => l.messageId).sort()).toEqual(['order-4', 'order-5']);
    await until(async () => (await shipped()).length === 6, { message: 'all six shipped' });
    // A sentinel order behind the replays, on their key (the one partition): once both groups handled it,
    // a replay delivered or run twice would have shown.
    await app.transaction(async (context) => void context.publish('orders.placed', { n: 100, kind: 'ok' }, { key: 'customer-1', id: 'sentinel-100' }));
    await until(async () => (await shipped()).includes(100) && audited.has(100), { message: 'the sentinel handled by shipping and audit' });
    expect((await shipped()).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 100]);
    const [{ n: inboxRows }] = await app.dataSource.query(`SELECT count(*)::int AS n FROM concordat.inbox WHERE consumer = 'shipping'`);
    expect(inboxRows).toBe(7); // the six orders and the sentinel
    expect(await listDeadLetters(app.dataSource)).toEqual([]);
    const history = await listDeadLetters(app.dataSource, { includeReplayed: true });
    expect(history.every((l) => l.replayedAt !== null)).toBe(true);
    // The replays were for 'shipping' only: the audit group, which has no inbox to skip them, received each order once.
    expect(Object.fromEntries(audited)).toEqual({ 1: 1, 2: 1, 3: 1, 4: 1, 5: 1, 6: 1, 100: 1 });
    expect(app.stats().audit!.replaysSkipped).toBe(3);
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
    expect(again!.headers[REPLAY_FOR_HEADER]).toBe('shipping');
  });

  it("dlq replay refuses a dead letter older than its group's inbox dedup window, unless --force", async () => {
    healed = false;
    await app.transaction(async (context) => void context.publish('orders.placed', { n: 8, kind: 'poison' }, { key: 'customer-3', id: 'order-8' }));
    let letter: DeadLetter | undefined;
    await until(async () => (letter = (await listDeadLetters(app.dataSource)).find((l) => l.messageId === 'order-8')) !== undefined, {
      message: 'order 8 dead-lettered',
    });
    // The app recorded its groups' window (the embedded log keeps records 7 days, so the window is 7 days).
    expect(await app.dataSource.query(`SELECT consumer, window_ms FROM concordat.inbox_window ORDER BY consumer`)).toEqual([
      { consumer: 'audit', window_ms: 604_800_000 },
      { consumer: 'shipping', window_ms: 604_800_000 },
    ]);
    await app.dataSource.query(`UPDATE concordat.dead_letter SET failed_at = now() - interval '8 days' WHERE id = $1`, [letter!.id]);
    healed = true;
    const refused = await concordat(['dlq', 'replay', letter!.id, '--url', testDb.url]);
    expect(refused).toEqual({
      code: 1,
      stdout: '',
      stderr:
        `concordat: not replayed: 1 dead letter(s) failed longer ago than the inbox dedup window of their consumer group: ` +
        `${letter!.id} (consumer 'shipping', message order-8, failed 8 d ago, window 7 d). The inbox may have forgotten their message IDs, ` +
        'so a message processed since (redelivered, or replayed before) would be processed twice. Check that it was not, then replay with --force.\n',
    });
    expect((await listDeadLetters(app.dataSource)).map((l) => l.messageId)).toContain('order-8');
    const forced = await concordat(['dlq', 'replay', letter!.id, '--force', '--url', testDb.url]);
    expect(forced.code).toBe(0);
    await until(async () => (await shipped()).includes(8), { message: 'the forced replay is shipped' });
  });

  it('a group whose app never recorded its window is held to 7 days, and the refusal replays nothing of the selection', async () => {
    const [{ id: young }] = await app.dataSource.query(
      `INSERT INTO concordat.dead_letter (consumer, message_id, handler, topic, partition, "offset", headers, error, error_code, attempts, failed_at)
       VALUES ('ghost', 'g-young', 'Ghost.h', 'ghost.topic', 0, 1, '{}', 'e', 'Error', 1, now() - interval '6 days') RETURNING id`,
    );
    const [{ id: old }] = await app.dataSource.query(
      `INSERT INTO concordat.dead_letter (consumer, message_id, handler, topic, partition, "offset", headers, error, error_code, attempts, failed_at)
       VALUES ('ghost', 'g-old', 'Ghost.h', 'ghost.topic', 0, 2, '{}', 'e', 'Error', 1, now() - interval '9 days') RETURNING id`,
    );
    await expect(replayDeadLetters(app.dataSource, { consumer: 'ghost' })).rejects.toMatchObject({
      code: 'DEAD_LETTER_TOO_OLD',
      message: expect.stringContaining(`${old} (consumer 'ghost', message g-old, failed 9 d ago, window 7 d assumed, none recorded)`),
      context: { ids: [String(old)] },
    });
    expect((await listDeadLetters(app.dataSource, { consumer: 'ghost' })).map((l) => l.id)).toEqual([String(young), String(old)]);
    expect((await replayDeadLetters(app.dataSource, { ids: [String(young)] })).map((l) => l.id)).toEqual([String(young)]);
  });
});
