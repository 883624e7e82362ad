import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Container } from 'inversify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runChecks } from '../../../examples/order-saga/checks.js';
import { readAccounts, readOrders, readProducts } from '../../../examples/order-saga/data-files.js';
import { OrderSagaSchema1795200000001 } from '../../../examples/order-saga/schema.js';
import { InventorySagaService } from '../../../examples/order-saga/services/inventory.saga.js';
import { InventoryService } from '../../../examples/order-saga/services/inventory.service.js';
import { InventoryTwoPhaseService } from '../../../examples/order-saga/services/inventory.two-phase.js';
import {
  Participants,
  paymentDeadlineId,
  Topics,
  type OrderPaid,
  type OrderSubmitted,
  type PaymentHold,
} from '../../../examples/order-saga/services/messages.js';
import { Mode } from '../../../examples/order-saga/services/modes.js';
import { orderServiceFor } from '../../../examples/order-saga/services/order.modes.js';
import { PaymentSagaService } from '../../../examples/order-saga/services/payment.saga.js';
import { PaymentService } from '../../../examples/order-saga/services/payment.service.js';
import { PaymentTwoPhaseService } from '../../../examples/order-saga/services/payment.two-phase.js';
import { openDatabase, type Database } from '../../../src/persistence/index.js';
import { ConcordatApp, Service } from '../../../src/runtime/index.js';
import { until } from '../../../src/testing/index.js';
import { Cancel, Confirm, COORDINATOR_OPTIONS, TccParticipant, TransactionCoordinator, Try, type TccContext } from '../../../src/transactions/index.js';
import { EmbeddedTransport } from '../../../src/transport/index.js';
import { createTestDatabase, type TestDatabase } from '../../support/database.js';

/**
 * The order demo's payment deadline (`examples/order-saga/services/order.modes.ts`):
 * a scheduled message published with each order, cancelled by the order's
 * end, and cancelling the order when it is delivered first. Each race is
 * driven into each of its orders deterministically: a gate holds the
 * payment's Try or Confirm of one order, and the deadline is made due at a
 * chosen moment (its scheduled row's `deliver_at` set to now; the relay's
 * scheduler then moves it within its poll interval). Then the same under
 * real timers: many orders whose deadline falls due while their payment
 * runs, in each mode, ending exactly one way each with the demo's checks
 * passing.
 */
const DATA = resolve(import.meta.dirname, '../../../examples/order-saga/data');

async function loadReferenceData(db: Database): Promise<void> {
  const [products, accounts] = await Promise.all([readProducts(join(DATA, 'products.csv')), readAccounts(join(DATA, 'accounts.csv'))]);
  await db.dataSource.query(
    `INSERT INTO inventory.products (sku, name, initial_stock, available, reserved, sold)
     SELECT sku, name, stock, stock, 0, 0 FROM unnest($1::text[], $2::text[], $3::int[]) AS p(sku, name, stock)`,
    [products.map((p) => p.sku), products.map((p) => p.name), products.map((p) => p.stock)],
  );
  await db.dataSource.query(`INSERT INTO orders.prices (sku, price_cents) SELECT * FROM unnest($1::text[], $2::bigint[])`, [
    products.map((p) => p.sku),
    products.map((p) => p.priceCents),
  ]);
  await db.dataSource.query(
    `INSERT INTO payment.accounts (account_id, email, initial_balance, balance, held, captured)
     SELECT id, email, balance, balance, 0, 0 FROM unnest($1::text[], $2::text[], $3::bigint[]) AS a(id, email, balance)`,
    [accounts.map((a) => a.accountId), accounts.map((a) => a.email), accounts.map((a) => a.balanceCents)],
  );
}

/** A gate that holds one order's payment Try or Confirm (inside its transaction) until the test opens it. */
interface Gate {
  phase: 'try' | 'confirm';
  entered: boolean;
  open(): void;
  opened: Promise<void>;
}
const gates = new Map<string, Gate>();

function gateFor(orderId: string, phase: Gate['phase']): Gate {
  let open!: () => void;
  const opened = new Promise<void>((resolveGate) => (open = resolveGate));
  const gate: Gate = { phase, entered: false, open, opened };
  gates.set(orderId, gate);
  return gate;
}

async function pass(orderId: string, phase: Gate['phase']): Promise<void> {
  const gate = gates.get(orderId);
  if (gate?.phase !== phase) return;
  gate.entered = true;
  await gate.opened;
}

/** The demo's TCC payment participant (`payment.service.ts`, same SQL), with a gate in front of its Try and its Confirm. */
@Service('payment')
@TccParticipant(Participants.PAYMENT)
class GatedPaymentService {
  @Try()
  async hold(context: TccContext<PaymentHold>): Promise<void> {
    await pass(context.payload.orderId, 'try');
    const { accountId, amountCents } = context.payload;
    const [, held]: [unknown[], number] = await context.manager.query(
      `UPDATE payment.accounts SET balance = balance - $2, held = held + $2 WHERE account_id = $1 AND balance >= $2`,
      [accountId, amountCents],
    );
    if (held === 0) throw new Error(`insufficient funds in ${accountId}`);
  }

  @Confirm()
  async capture(context: TccContext<PaymentHold>): Promise<void> {
    await pass(context.payload.orderId, 'confirm');
    const { orderId, accountId, amountCents } = context.payload;
    await context.manager.query(`UPDATE payment.accounts SET held = held - $2, captured = captured + $2 WHERE account_id = $1`, [accountId, amountCents]);
    await context.manager.query(`INSERT INTO payment.captures (order_id, global_tx_id, account_id, amount_cents) VALUES ($1, $2, $3, $4)`, [
      orderId,
      context.globalTxId,
      accountId,
      amountCents,
    ]);
  }

  @Cancel()
  async release(context: TccContext<PaymentHold>): Promise<void> {
    const { accountId, amountCents } = context.payload;
    await context.manager.query(`UPDATE payment.accounts SET held = held - $2, balance = balance + $2 WHERE account_id = $1`, [accountId, amountCents]);
  }
}

interface OrderRow {
  status: string;
  reason: string | null;
  global_tx_id: string | null;
}

describe('the payment deadline against the payment, one order at a time (TCC, gated payment)', () => {
  let testDb: TestDatabase;
  let db: Database;
  let dir: string;
  let transport: EmbeddedTransport;
  let app: ConcordatApp;
  const PAYMENT_TIMEOUT_MS = 60_000; // far away: each case makes the deadline due itself

  beforeAll(async () => {
    testDb = await createTestDatabase('order_deadline');
    db = await openDatabase({ url: testDb.url, poolSize: 20, migrations: [OrderSagaSchema1795200000001] });
    await loadReferenceData(db);
    dir = await mkdtemp(join(tmpdir(), 'concordat-order-deadline-'));
    transport = new EmbeddedTransport({ dataDir: dir, consumer: { heartbeatIntervalMs: 200, maxWaitMs: 50 } });
    const container = new Container();
    container.bind(COORDINATOR_OPTIONS).toConstantValue({ scanIntervalMs: 50, resendIntervalMs: 1000 });
    app = ConcordatApp.create({
      name: 'order-deadline',
      services: [orderServiceFor(Mode.TCC, { paymentTimeoutMs: PAYMENT_TIMEOUT_MS }), InventoryService, GatedPaymentService, TransactionCoordinator],
      container,
      database: db,
      transport,
      partitions: 2,
      relay: { pollIntervalMs: 50 },
    });
    await app.start();
  });
  afterAll(async () => {
    for (const gate of gates.values()) gate.open();
    await app?.stop();
    await transport?.close();
    await db?.close();
    await testDb?.drop();
    await rm(dir, { recursive: true, force: true });
  });

  const submit = async (orderId: string, payLater = false): Promise<void> => {
    const message: OrderSubmitted = { orderId, accountId: 'ACC-0002', sku: 'SKU-KETTLE', quantity: 1, ...(payLater && { payLater: true }) };
    await app.publish(Topics.ORDER_SUBMITTED, message, { key: orderId });
  };
  /** Publishes the customer's payment; resolves with its message ID. */
  const pay = (orderId: string): Promise<string> => app.publish(Topics.ORDER_PAID, { orderId } satisfies OrderPaid, { key: orderId });
  const order = async (orderId: string): Promise<OrderRow | undefined> =>
    (await db.dataSource.query(`SELECT status, reason, global_tx_id FROM orders.orders WHERE order_id = $1`, [orderId]))[0];
  const statusIs = (orderId: string, status: string) => async () => (await order(orderId))?.status === status;
  const txState = async (id: string): Promise<string | undefined> =>
    (await db.dataSource.query(`SELECT state FROM concordat.global_transaction WHERE id = $1`, [id]))[0]?.state;
  const scheduled = async (orderId: string): Promise<boolean> =>
    (await db.dataSource.query(`SELECT 1 FROM concordat.outbox_scheduled WHERE message_id = $1`, [paymentDeadlineId(orderId)])).length === 1;
  const handled = async (messageId: string): Promise<boolean> =>
    (await db.dataSource.query(`SELECT 1 FROM concordat.inbox WHERE message_id = $1`, [messageId])).length > 0;
  /** Makes the order's deadline due now: the scheduler moves it at its next pass (every 50 ms at most). */
  const dueNow = async (orderId: string): Promise<void> => {
    const [, updated]: [unknown[], number] = await db.dataSource.query(`UPDATE concordat.outbox_scheduled SET deliver_at = now() WHERE message_id = $1`, [
      paymentDeadlineId(orderId),
    ]);
    expect(updated, `the deadline of ${orderId} is still scheduled`).toBe(1);
  };
  const captures = async (orderId: string): Promise<number> =>
    (await db.dataSource.query(`SELECT count(*)::int AS n FROM payment.captures WHERE order_id = $1`, [orderId]))[0].n;

  it('a payment handled before its order is placed is retried until the order is, not dropped', async () => {
    const retries = app.stats()['orders']?.retries ?? 0;
    await pay('D-PAID-BEFORE-PLACED');
    // The payment's handler ran first and found no order (a retry counted), then the order is placed.
    await until(() => (app.stats()['orders']?.retries ?? 0) > retries, { message: 'the payment tried before its order exists' });
    await submit('D-PAID-BEFORE-PLACED', true);
    await until(statusIs('D-PAID-BEFORE-PLACED', 'CONFIRMED'), { timeoutMs: 30_000, message: 'the early payment confirms the order' });
    expect(await scheduled('D-PAID-BEFORE-PLACED')).toBe(false);
  });

  it('placing an order schedules its deadline; the order ending cancels it', async () => {
    await submit('D-PAID-AT-CHECKOUT');
    await until(statusIs('D-PAID-AT-CHECKOUT', 'CONFIRMED'), { message: 'the order is confirmed' });
    expect(await scheduled('D-PAID-AT-CHECKOUT')).toBe(false);
    expect(await handled(paymentDeadlineId('D-PAID-AT-CHECKOUT'))).toBe(false);
  });

  it('an order never paid is cancelled by its deadline, with nothing taken; a payment after that begins nothing', async () => {
    await submit('D-NEVER-PAID', true);
    await until(statusIs('D-NEVER-PAID', 'AWAITING_PAYMENT'), { message: 'the order awaits its payment' });
    expect(await scheduled('D-NEVER-PAID')).toBe(true);
    await dueNow('D-NEVER-PAID');
    await until(statusIs('D-NEVER-PAID', 'CANCELLED'), { message: 'the deadline cancels the order' });
    expect(await order('D-NEVER-PAID')).toEqual({
      status: 'CANCELLED',
      reason: `payment deadline: not paid within ${PAYMENT_TIMEOUT_MS} ms`,
      global_tx_id: null,
    });

    const late = await pay('D-NEVER-PAID');
    await until(() => handled(late), { message: 'the late payment is handled' });
    expect(await order('D-NEVER-PAID')).toMatchObject({ status: 'CANCELLED', global_tx_id: null });
    expect(await captures('D-NEVER-PAID')).toBe(0);
  });

  it('a payment before the deadline begins the global transaction, and the order ending cancels the deadline', async () => {
    await submit('D-PAID-LATER', true);
    await until(statusIs('D-PAID-LATER', 'AWAITING_PAYMENT'), { message: 'the order awaits its payment' });
    await pay('D-PAID-LATER');
    await until(statusIs('D-PAID-LATER', 'CONFIRMED'), { message: 'the paid order is confirmed' });
    expect(await scheduled('D-PAID-LATER')).toBe(false);
    expect(await captures('D-PAID-LATER')).toBe(1);
  });

  it('the deadline while the payment is still trying aborts the global transaction: stock and hold released, no charge', async () => {
    const gate = gateFor('D-SLOW-TRY', 'try');
    await submit('D-SLOW-TRY');
    await until(() => gate.entered, { message: "the payment's Try is running" });
    const { global_tx_id: txId } = (await order('D-SLOW-TRY'))!;
    expect(await txState(txId!)).toBe('TRYING');
    await dueNow('D-SLOW-TRY');
    await until(async () => (await txState(txId!)) === 'CANCELLING', { message: 'the deadline aborts the global transaction' });
    gate.open(); // the Try holds and votes yes, too late: its Cancel (queued behind it) releases the hold
    await until(statusIs('D-SLOW-TRY', 'CANCELLED'), { message: 'the order is cancelled' });
    expect((await order('D-SLOW-TRY'))!.reason).toBe(`aborted by operator: payment deadline: payment not through within ${PAYMENT_TIMEOUT_MS} ms`);
    expect(await txState(txId!)).toBe('CANCELLED');
    expect(await captures('D-SLOW-TRY')).toBe(0);
  });

  it('the deadline after the payment went through (decided CONFIRMING) does nothing: the order is confirmed', async () => {
    const gate = gateFor('D-SLOW-CONFIRM', 'confirm');
    await submit('D-SLOW-CONFIRM');
    await until(() => gate.entered, { message: "the payment's Confirm is running" });
    const { global_tx_id: txId } = (await order('D-SLOW-CONFIRM'))!;
    expect(await txState(txId!)).toBe('CONFIRMING');
    await dueNow('D-SLOW-CONFIRM');
    await until(() => handled(paymentDeadlineId('D-SLOW-CONFIRM')), { message: 'the deadline is handled' });
    expect(await txState(txId!)).toBe('CONFIRMING');
    expect((await order('D-SLOW-CONFIRM'))!.status).toBe('PENDING');
    gate.open();
    await until(statusIs('D-SLOW-CONFIRM', 'CONFIRMED'), { message: 'the order is confirmed' });
    expect(await captures('D-SLOW-CONFIRM')).toBe(1);
  });

  it("leaves every invariant of the demo's checks true", async () => {
    const checks = await runChecks(db.dataSource, Mode.TCC);
    expect(checks.filter((check) => !check.ok)).toEqual([]);
  });
});

const SERVICES: Record<Mode, Function[]> = {
  [Mode.TCC]: [InventoryService, PaymentService],
  [Mode.TWO_PHASE]: [InventoryTwoPhaseService, PaymentTwoPhaseService],
  [Mode.SAGA]: [InventorySagaService, PaymentSagaService],
};

describe.each([Mode.TCC, Mode.TWO_PHASE, Mode.SAGA])('deadlines falling due while payments run, real timers (%s)', (mode) => {
  let testDb: TestDatabase | undefined;
  let db: Database | undefined;
  let dir: string | undefined;
  let transport: EmbeddedTransport | undefined;
  let app: ConcordatApp | undefined;
  afterAll(async () => {
    await app?.stop();
    await transport?.close();
    await db?.close();
    await testDb?.drop();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('every order ends exactly one way, and the checks pass', async () => {
    testDb = await createTestDatabase(`order_deadline_race_${mode}`);
    db = await openDatabase({ url: testDb.url, poolSize: 20, migrations: [OrderSagaSchema1795200000001] });
    await loadReferenceData(db);
    dir = await mkdtemp(join(tmpdir(), `concordat-order-deadline-${mode}-`));
    transport = new EmbeddedTransport({ dataDir: dir, consumer: { heartbeatIntervalMs: 200, maxWaitMs: 50 } });
    const container = new Container();
    container.bind(COORDINATOR_OPTIONS).toConstantValue({ scanIntervalMs: 50, resendIntervalMs: 500 });
    // About an order's own latency here: some deadlines fall due before their order's payment is through, some after.
    const paymentTimeoutMs = 40;
    app = ConcordatApp.create({
      name: `order-deadline-${mode}`,
      services: [orderServiceFor(mode, { paymentTimeoutMs }), ...SERVICES[mode], TransactionCoordinator],
      container,
      database: db,
      transport,
      partitions: 4,
      relay: { pollIntervalMs: 50 },
    });
    await app.start();
    const orders = (await readOrders(join(DATA, 'orders.csv'))).slice(0, 60);
    // Every fourth order is placed to be paid later, and paid about when its deadline falls due.
    const payLater = (index: number): boolean => index % 4 === 0;
    await app.transaction(async (context) => {
      orders.forEach((line, index) => {
        const message: OrderSubmitted = { ...line, ...(payLater(index) && { payLater: true }) };
        context.publish(Topics.ORDER_SUBMITTED, message, { key: line.orderId });
      });
    });
    const awaiting = orders.filter((_, index) => payLater(index)).map((line) => line.orderId);
    await until(async () => (await db!.dataSource.query(`SELECT count(*)::int AS n FROM orders.orders`))[0].n === orders.length, {
      timeoutMs: 60_000,
      message: 'every order placed',
    });
    await app.transaction(async (context) => {
      for (const orderId of awaiting) context.publish(Topics.ORDER_PAID, { orderId } satisfies OrderPaid, { key: orderId });
    });
    await until(
      async () =>
        (await db!.dataSource.query(`SELECT count(*)::int AS n FROM orders.orders WHERE status IN ('CONFIRMED', 'CANCELLED')`))[0].n === orders.length,
      { timeoutMs: 90_000, message: 'every order ended' },
    );
    const checks = await runChecks(db.dataSource, mode);
    expect(checks.filter((check) => !check.ok)).toEqual([]);
    const [tally] = await db.dataSource.query(
      `SELECT count(*) FILTER (WHERE reason LIKE '%payment deadline%')::int AS deadline, count(*) FILTER (WHERE status = 'CONFIRMED')::int AS confirmed FROM orders.orders`,
    );
    // With deadlines this short some orders certainly miss theirs (the pay-later ones are paid only after every order was placed).
    expect(tally.deadline, JSON.stringify(tally)).toBeGreaterThan(0);
  });
});
