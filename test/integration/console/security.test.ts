import 'reflect-metadata';
import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileConsoleOptions } from '../../../src/config/index.js';
import { ConsoleServer } from '../../../src/console/index.js';
import { ErrorCode } from '../../../src/errors.js';
import { listDeadLetters, recordDeadLetter } from '../../../src/inbox/index.js';
import { openDatabase, type Database } from '../../../src/persistence/index.js';
import { TransactionContext } from '../../../src/runtime/index.js';
import { beginTcc, browseGlobalTxs, showGlobalTx } from '../../../src/transactions/index.js';
import { createTestDatabase, type TestDatabase } from '../../support/database.js';

const TOKEN = 'a-console-token-for-tests';

/**
 * The console's security model over real HTTP (no browser needed): the
 * token, the CSRF token and the origin checks on actions, the loopback Host
 * check without a token; and the keyset pages of global transactions.
 */
describe('console security and paging', () => {
  let testDb: TestDatabase;
  let db: Database;
  let withToken: ConsoleServer;
  let open: ConsoleServer;

  beforeAll(async () => {
    testDb = await createTestDatabase('console_security');
    db = await openDatabase({ url: testDb.url, poolSize: 4 });
    withToken = await ConsoleServer.start(compileConsoleOptions({ port: 0, token: TOKEN }), { dataSource: db.dataSource });
    open = await ConsoleServer.start(compileConsoleOptions({ port: 0 }), { dataSource: db.dataSource });
  });
  afterAll(async () => {
    await withToken?.close();
    await open?.close();
    await db?.close();
    await testDb?.drop();
  });

  /** A TCC global transaction for participants nobody runs: it stays TRYING. */
  const stuck = (name: string, payload: Record<string, unknown> = {}): Promise<string> =>
    db.transaction(async (manager) => {
      const context = new TransactionContext(manager, 'test');
      const id = await beginTcc(context, { name, payload, branches: [{ participant: 'nobody', payload: {} }], timeoutMs: 3_600_000 });
      await context.flush();
      return id;
    });
  const csrfOf = async (server: ConsoleServer, path: string, headers: Record<string, string> = {}): Promise<string> => {
    const html = await (await fetch(`${server.url}${path}`, { headers })).text();
    const match = /name="csrf" value="([^"]+)"/.exec(html);
    if (match === null) throw new Error(`no CSRF token on ${path}`);
    return match[1]!;
  };
  const post = (server: ConsoleServer, path: string, form: Record<string, string>, headers: Record<string, string> = {}): Promise<Response> =>
    fetch(`${server.url}${path}`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
      body: new URLSearchParams(form).toString(),
    });

  it('refuses to listen on a non-loopback address without a token', () => {
    expect(() => compileConsoleOptions({ host: '0.0.0.0' })).toThrow(
      expect.objectContaining({
        code: ErrorCode.INSECURE_LISTENER,
        message: expect.stringMatching(/^the console refuses to listen on 0\.0\.0\.0 without a token/),
      }),
    );
    expect(() => compileConsoleOptions({ host: '0.0.0.0', token: 'short' })).toThrow(/console\.token: must be at least 16 characters/);
    expect(compileConsoleOptions({ host: '0.0.0.0', token: TOKEN }).host).toBe('0.0.0.0');
  });

  it('with a token: reading needs it (cookie from the sign-in form, or a bearer header)', async () => {
    const anonymous = await fetch(`${withToken.url}/transactions`);
    expect(anonymous.status).toBe(401);
    expect(await anonymous.text()).toBe('sign in with the console token\n');
    const browser = await fetch(`${withToken.url}/transactions`, { headers: { accept: 'text/html' }, redirect: 'manual' });
    expect(browser.status).toBe(303);
    expect(browser.headers.get('location')).toBe('/sign-in?next=%2Ftransactions');

    const wrong = await post(withToken, '/sign-in', { token: 'not-the-token-at-all', next: '/transactions' });
    expect(wrong.headers.get('location')).toBe('/sign-in?failed=1&next=%2Ftransactions');
    expect(wrong.headers.get('set-cookie')).toBeNull();
    const signedIn = await post(withToken, '/sign-in', { token: TOKEN, next: '//evil.example/' });
    expect(signedIn.headers.get('location')).toBe('/transactions');
    const cookie = signedIn.headers.get('set-cookie')!;
    expect(cookie).toMatch(/^concordat_console=.+; Path=\/; HttpOnly; SameSite=Strict$/);
    expect((await fetch(`${withToken.url}/transactions`, { headers: { cookie: cookie.split(';')[0]! } })).status).toBe(200);
    expect((await fetch(`${withToken.url}/transactions`, { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(200);
  });

  it('an action needs the token, the CSRF token and a same-origin request; it is recorded with who did it', async () => {
    const id = await stuck('to-abort');
    const auth = { authorization: `Bearer ${TOKEN}` };
    const csrf = await csrfOf(withToken, `/transactions/${id}`, auth);
    const form = { reason: 'customer called', by: 'alice', confirm: 'yes' };

    expect((await post(withToken, `/transactions/${id}/abort`, { ...form, csrf })).status).toBe(401);
    const noCsrf = await post(withToken, `/transactions/${id}/abort`, form, auth);
    expect(noCsrf.status).toBe(403);
    expect(await noCsrf.text()).toBe('the form carries no valid CSRF token: reload the page and submit it again\n');
    const crossSite = await post(withToken, `/transactions/${id}/abort`, { ...form, csrf }, { ...auth, origin: 'http://evil.example' });
    expect(crossSite.status).toBe(403);
    expect(await crossSite.text()).toBe("refused a request from the origin http://evil.example: actions come from the console's own pages\n");
    const fetchMetadata = await post(withToken, `/transactions/${id}/abort`, { ...form, csrf }, { ...auth, 'sec-fetch-site': 'cross-site' });
    expect(fetchMetadata.status).toBe(403);
    expect((await showGlobalTx(db.dataSource.manager, id))!.tx.state).toBe('TRYING');

    const unconfirmed = await post(withToken, `/transactions/${id}/abort`, { reason: 'x', by: 'alice', csrf }, auth);
    expect(unconfirmed.headers.get('location')).toBe(`/transactions/${id}?error=abort+not+done%3A+tick+the+confirmation+box`);
    expect((await showGlobalTx(db.dataSource.manager, id))!.tx.state).toBe('TRYING');

    const done = await post(withToken, `/transactions/${id}/abort`, { ...form, csrf }, { ...auth, origin: withToken.url });
    expect(done.status).toBe(303);
    expect(decodeURIComponent(done.headers.get('location')!.replace(/\+/g, ' '))).toBe(
      `/transactions/${id}?done=abort: now CANCELLING; sent cancel → branch 1`,
    );
    const detail = (await showGlobalTx(db.dataSource.manager, id))!;
    expect(detail.tx.state).toBe('CANCELLING');
    expect(detail.events.find((e) => e.kind === 'OPERATOR')?.detail).toBe('abort by alice (console, 127.0.0.1): customer called');

    const again = await post(withToken, `/transactions/${id}/abort`, { ...form, csrf }, auth);
    expect(decodeURIComponent(again.headers.get('location')!.replace(/\+/g, ' '))).toBe(
      `/transactions/${id}?error=abort refused: global transaction ${id} is CANCELLING: only an undecided (TRYING) one can be aborted`,
    );
  });

  it('without a token: answers only to a loopback Host (no DNS rebinding), and still needs the CSRF token', async () => {
    const port = open.address.port;
    // node:http, since fetch sets Host itself.
    const statusFor = (host: string): Promise<number | undefined> =>
      new Promise((resolve, reject) => {
        const request = httpRequest({ host: '127.0.0.1', port, path: '/transactions', headers: { host } }, (response) => {
          response.resume();
          resolve(response.statusCode);
        });
        request.on('error', reject);
        request.end();
      });
    expect(await statusFor(`attacker.example:${port}`)).toBe(421);
    expect(await statusFor(`localhost:${port}`)).toBe(200);
    const id = await stuck('open-retry');
    const refused = await post(open, `/transactions/${id}/retry`, { by: 'bob', confirm: 'yes', csrf: 'guessed' });
    expect(refused.status).toBe(403);
    const csrf = await csrfOf(open, `/transactions/${id}`);
    const retried = await post(open, `/transactions/${id}/retry`, { by: 'bob', confirm: 'yes', csrf });
    expect(retried.status).toBe(303);
    const events = (await showGlobalTx(db.dataSource.manager, id))!.events;
    expect(events.at(-2)?.detail).toBe('retry TRYING by bob (console, 127.0.0.1)');
  });

  it('replays every pending dead letter of a topic, or the selected ones, recording who', async () => {
    const letter = (messageId: string, topic: string) => ({
      consumer: 'billing',
      messageId,
      handler: 'Billing.charge',
      topic,
      partition: 0,
      offset: 0,
      key: null,
      headers: { ce_id: messageId },
      payload: Buffer.from('{}'),
      error: 'Error: refused',
      errorCode: 'Error',
      attempts: 3,
    });
    await db.transaction(async (manager) => {
      for (const id of ['m-1', 'm-2']) await recordDeadLetter(manager, letter(id, 'charges'));
      for (const id of ['m-3', 'm-4']) await recordDeadLetter(manager, letter(id, 'refunds'));
    });
    const csrf = await csrfOf(open, '/dead-letters');
    const byTopic = await post(open, '/dead-letters/replay', { topic: 'charges', by: 'dave', confirm: 'yes', csrf });
    expect(decodeURIComponent(byTopic.headers.get('location')!.replace(/\+/g, ' '))).toMatch(
      /^\/dead-letters\?done=replayed 2 dead letter\(s\) through the outbox: \d+, \d+$/,
    );
    const [m3] = await listDeadLetters(db.dataSource, { topic: 'refunds' });
    await post(open, '/dead-letters/replay', { id: m3!.id, by: 'erin', confirm: 'yes', csrf });
    const all = await listDeadLetters(db.dataSource, { includeReplayed: true });
    expect(all.map((l) => [l.messageId, l.replayedBy])).toEqual([
      ['m-1', 'dave (console, 127.0.0.1)'],
      ['m-2', 'dave (console, 127.0.0.1)'],
      ['m-3', 'erin (console, 127.0.0.1)'],
      ['m-4', null],
    ]);
    const outbox = (await db.dataSource.query(`SELECT message_id FROM concordat.outbox WHERE topic IN ('charges', 'refunds') ORDER BY seq`)) as Array<{
      message_id: string;
    }>;
    expect(outbox.map((r) => r.message_id)).toEqual(['m-1', 'm-2', 'm-3']);
  });

  it('pages global transactions by keyset, newest first, examining at most scanMax rows per page', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i += 1) ids.push(await stuck('paged', { orderId: `P-${i}` }));
    const first = await browseGlobalTxs(db.dataSource.manager, { name: 'paged', limit: 2 });
    expect(first.rows.map((r) => r.id)).toEqual([ids[4], ids[3]]);
    const second = await browseGlobalTxs(db.dataSource.manager, { name: 'paged', limit: 2, after: first.next! });
    expect(second.rows.map((r) => r.id)).toEqual([ids[2], ids[1]]);
    const byKey = await browseGlobalTxs(db.dataSource.manager, { key: 'orderId=P-1' });
    expect(byKey.rows.map((r) => r.id)).toEqual([ids[1]]);
    expect((await browseGlobalTxs(db.dataSource.manager, { key: 'p-3' })).rows.map((r) => r.id)).toEqual([ids[3]]);
    // A bounded page: 3 rows examined, the match (P-0, the oldest) not among them; `next` continues the search.
    const bounded = await browseGlobalTxs(db.dataSource.manager, { key: 'orderId=P-0', scanMax: 3 });
    expect(bounded).toMatchObject({ rows: [], scanned: 3, next: ids[2] });
    const continued = await browseGlobalTxs(db.dataSource.manager, { key: 'orderId=P-0', scanMax: 3, after: bounded.next! });
    expect(continued.rows.map((r) => r.id)).toEqual([ids[0]]);
  });
});
