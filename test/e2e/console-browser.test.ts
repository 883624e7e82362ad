import 'reflect-metadata';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { dataFile, feedAndCheck, readInputs } from '../../examples/order-saga/demo.js';
import { allServices, Mode } from '../../examples/order-saga/deployment.js';
import { OrderSagaSchema1795200000001 } from '../../examples/order-saga/schema.js';
import { ConcordatApp, OnMessage, Service, type MessageContext } from '../../src/runtime/index.js';
import { EmbeddedTransport } from '../../src/transport/index.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { CHROMIUM_PATH, fileNeedsTools } from '../support/tools.js';

const JOBS_TOPIC = 'console-test.jobs';
const IDLE_TOPIC = 'console-test.idle';
const IDLE_GROUP = 'console-test-idle';

/**
 * With `CONSOLE_SCREENSHOTS=<dir>`, the tests also save screenshots of the
 * pages they visit there (how docs/console/*.png are made:
 * `CONSOLE_SCREENSHOTS=docs/console npx vitest run test/e2e/console-browser.test.ts`).
 */
const SCREENSHOTS = process.env.CONSOLE_SCREENSHOTS;
async function shot(page: Page, name: string): Promise<void> {
  if (SCREENSHOTS === undefined || SCREENSHOTS === '') return;
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

/** Fails every message while `failing` is set, with no retry: a dead letter to replay. */
let failing = true;
@Service('console-jobs')
class JobService {
  @OnMessage(JOBS_TOPIC, { retry: { maxAttempts: 1 } })
  async run(context: MessageContext<{ job: string }>): Promise<void> {
    if (failing) throw new Error(`job ${context.data.job} failed: the console test wants a dead letter`);
    await context.manager.query(`INSERT INTO console_jobs (job) VALUES ($1)`, [context.data.job]);
  }
}

/**
 * The operator console in a real browser (Debian's Chromium driven by
 * playwright-core) against an app running the order-saga services in TCC
 * mode with the `console` option, after a few orders, one of which must
 * cancel (more than the stock of its product). Every test fails when the
 * page logs an error to the browser console.
 */
describe('the console in a browser', () => {
  const present = fileNeedsTools('chromium');
  let dir: string;
  let testDb: TestDatabase;
  let transport: EmbeddedTransport;
  let app: ConcordatApp;
  let browser: Browser;
  let page: Page;
  let consoleErrors: string[];

  beforeAll(async () => {
    if (!present) return;
    dir = await mkdtemp(join(tmpdir(), 'concordat-console-'));
    testDb = await createTestDatabase('console');
    const lines = (await readFile(dataFile('orders.csv'), 'utf8')).trim().split('\n').slice(0, 4);
    lines.push('E2E-STOCK,ACC-0043,SKU-WHISK,300');
    const ordersFile = join(dir, 'orders.csv');
    await writeFile(ordersFile, lines.join('\n') + '\n');
    transport = new EmbeddedTransport({ dataDir: join(dir, 'log') });
    app = ConcordatApp.create({
      name: 'order-saga',
      services: [...allServices(Mode.TCC), JobService],
      database: { url: testDb.url, migrations: [OrderSagaSchema1795200000001], poolSize: 8 },
      transport,
      partitions: 2,
      console: { port: 0 },
    });
    await app.start();
    await app.dataSource.query(`CREATE TABLE console_jobs (job text PRIMARY KEY)`);
    const inputs = await readInputs({ ordersFile, productsFile: dataFile('products.csv'), accountsFile: dataFile('accounts.csv') });
    const result = await feedAndCheck(app, inputs, {
      mode: Mode.TCC,
      ordersFile,
      productsFile: dataFile('products.csv'),
      accountsFile: dataFile('accounts.csv'),
      dataDir: dir,
      databaseName: testDb.name,
      partitions: 2,
      timeoutMs: 30_000,
    });
    expect(result.summary.cancelledForStock).toBe(1);
    browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: ['--no-sandbox'] });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await app?.stop();
    await transport?.close();
    await testDb?.drop();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  beforeEach(async () => {
    if (!present) return;
    consoleErrors = [];
    page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    page.on('console', (message) => {
      if (message.type() === 'error') consoleErrors.push(message.text());
    });
    page.on('pageerror', (error) => consoleErrors.push(error.message));
  });

  afterEach(async () => {
    if (!present) return;
    await page.close();
    expect(consoleErrors, 'errors the page logged to the browser console').toEqual([]);
  });

  it("finds the cancelled order's global transaction by its business key and shows its branches and timeline", async () => {
    await page.goto(`${app.consoleUrl}/transactions`);
    await page.fill('input[name=key]', 'orderId=E2E-STOCK');
    await page.selectOption('select[name=state]', 'CANCELLED');
    await page.click('button:has-text("Filter")');
    const rows = page.locator('#transactions tbody tr[data-tx]');
    await rows.first().waitFor();
    await shot(page, 'transactions');
    expect(await rows.count()).toBe(1);
    expect(await rows.first().locator('td.state').textContent()).toBe('CANCELLED');
    await rows.first().locator('a').click();

    await page.locator('#tx-state').waitFor();
    expect(await page.locator('#tx-state').textContent()).toBe('CANCELLED');
    const branchStates = await page.locator('#branches tbody tr td.state').allTextContents();
    expect(branchStates.sort()).toEqual(['CANCELLED', 'CANCELLED']);
    const timeline = await page.locator('#timeline tbody tr').allTextContents();
    expect(timeline.length).toBeGreaterThanOrEqual(3);
    expect(timeline.at(-1)).toContain('CANCELLED');
    expect(await page.locator('pre').last().textContent()).toContain('"orderId": "E2E-STOCK"');
    await shot(page, 'transaction');
    // Ended: no action is offered.
    expect(await page.locator('form[action$="/retry"]').count()).toBe(0);
  });

  it('replays a dead letter and shows it processed, with who replayed it', async () => {
    await app.publish(JOBS_TOPIC, { job: 'J-1' }, { key: 'J-1' });
    await page.goto(`${app.consoleUrl}/dead-letters?topic=${JOBS_TOPIC}`);
    // The live view shows the dead letter once the dispatcher gave up on it.
    const row = page.locator('#dead-letters tr[data-dead-letter]');
    await row.first().waitFor({ timeout: 20_000 });
    await row.first().locator('a').click();
    await page.locator('#dead-letter-state').waitFor();
    expect(await page.locator('#dead-letter-state').textContent()).toBe('pending');
    expect(await page.locator('#payload').textContent()).toContain('"job": "J-1"');
    expect(await page.locator('#headers').textContent()).toContain('ce_id');
    await shot(page, 'dead-letter');

    failing = false;
    await page.click('summary:has-text("Replay")');
    await page.fill('input[name=by]', 'alice');
    await page.check('input[name=confirm]');
    await page.click('button:has-text("Replay")');
    await page.locator('.flash.done').waitFor();
    expect(await page.locator('.flash.done').textContent()).toMatch(/^replayed 1 dead letter\(s\) through the outbox: \d+$/);
    // Processed: the live view turns once the consumer group handled the replayed message.
    await page.locator('#dead-letter-state:has-text("replayed and processed")').waitFor({ timeout: 20_000 });
    expect(await page.locator('#dead-letter').textContent()).toMatch(/by alice \(console, 127\.0\.0\.1\)/);
    await page.goto(`${app.consoleUrl}/dead-letters?all=1`);
    await shot(page, 'dead-letters');
    const jobs = (await app.dataSource.query(`SELECT job FROM console_jobs`)) as Array<{ job: string }>;
    expect(jobs).toEqual([{ job: 'J-1' }]);
  });

  it('resets the offsets of a consumer group that has no members', async () => {
    // A group that consumed two records of a one-partition topic, then left: committed offset 2, no members.
    await transport.ensureTopics([{ name: IDLE_TOPIC, partitions: 1 }]);
    await transport.publish([1, 2].map((n) => ({ topic: IDLE_TOPIC, key: null, value: Buffer.from(String(n)), headers: {} })));
    let delivered = 0;
    let consumedBoth: () => void = () => {};
    const both = new Promise<void>((resolve) => (consumedBoth = resolve));
    const subscription = await transport.subscribe({
      groupId: IDLE_GROUP,
      topics: [IDLE_TOPIC],
      handler: async () => {
        delivered += 1;
        if (delivered === 2) consumedBoth();
      },
    });
    await both;
    await subscription.close();

    await page.goto(`${app.consoleUrl}/groups`);
    await page.click(`tr[data-group="${IDLE_GROUP}"] a`);
    await page.locator('#group-state').waitFor();
    const offsets = page.locator(`#offsets tr[data-partition="${IDLE_TOPIC}:0"]`);
    await page.locator(`#offsets tr[data-partition="${IDLE_TOPIC}:0"] td.committed:text-is("2")`).waitFor();
    expect(await offsets.locator('td.lag').textContent()).toBe('0');
    expect(await page.locator('#members').textContent()).toContain('No members.');

    await page.click('summary:has-text("Reset the group")');
    await page.selectOption('select[name=to]', 'earliest');
    await page.fill('input[name=by]', 'carol');
    await page.check('input[name=confirm]');
    await page.click('button:has-text("Reset offsets")');
    await page.locator('.flash.done').waitFor();
    expect(await page.locator('.flash.done').textContent()).toBe(`reset ${IDLE_GROUP} on ${IDLE_TOPIC} (earliest) by carol (console, 127.0.0.1): 0: 2 → 0`);
    expect(await offsets.locator('td.committed').textContent()).toBe('0');
    expect(await offsets.locator('td.lag').textContent()).toBe('2');
    await shot(page, 'group-reset');

    // A group with members cannot be reset: the page says why and offers no form.
    const jobsGroup = app.handlers.consumers.find((consumer) => consumer.handlers.has(JOBS_TOPIC))!.group;
    await page.goto(`${app.consoleUrl}/groups`);
    await page.click(`tr[data-group="${jobsGroup}"] a`);
    await page.locator('#group-state:text-is("Stable")').waitFor();
    expect(await page.locator('#members tbody tr').count()).toBe(1);
    expect(await page.locator('form[action$="/reset-offsets"]').count()).toBe(0);
    expect(await page.locator('main').textContent()).toContain('Offsets can be reset only while the group has no members');
  });

  it('shows the outbox, the topics and a topic', async () => {
    await page.goto(`${app.consoleUrl}/outbox`);
    await page.locator('#outbox-backlog').waitFor();
    expect(await page.locator('#relays tbody tr').first().textContent()).toContain('yes');
    await shot(page, 'outbox');
    await page.goto(`${app.consoleUrl}/topics`);
    await page.click(`a:text-is("${JOBS_TOPIC}")`);
    await page.locator('#partitions').waitFor();
    expect(await page.locator('#partitions tbody tr').count()).toBe(2);
    expect(await page.locator('#configs').textContent()).toContain('retention.ms');
    await shot(page, 'topic');
  });
});
