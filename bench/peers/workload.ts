import type { Account, Product } from '../../examples/order-saga/data-files.js';

/**
 * The business every system of `bench:peers` runs: the order saga of
 * examples/order-saga (its tables, its products and accounts), one order at
 * a time or many in flight. Nothing here imports a database driver: each
 * system's process runs these statements through its own client (drizzle
 * inside a DBOS transaction, node-postgres inside a Restate `ctx.run`), and
 * Concordat runs the example's own participants.
 */

/** The systems, in the order they run and appear in the table. */
export const SYSTEMS = ['dbos', 'restate', 'concordat-saga', 'concordat-tcc'] as const;
export type SystemName = (typeof SYSTEMS)[number];

export const SYSTEM_LABELS: Record<SystemName, string> = {
  dbos: 'DBOS',
  restate: 'Restate',
  'concordat-saga': 'Concordat saga',
  'concordat-tcc': 'Concordat TCC',
};

/** The rows Concordat is measured against. */
export const PEERS: readonly SystemName[] = ['dbos', 'restate'];

export interface Order {
  /** A UUID: also the DBOS workflow ID and, for the peers, the `global_tx_id` of the example's ledger rows (a uuid column). */
  orderId: string;
  accountId: string;
  sku: string;
  quantity: number;
  /** price × quantity, fixed when the order is made (no system looks the price up). */
  amountCents: number;
}

/** How many orders each phase takes from the front of {@link Workload.orders}. */
export interface Phases {
  warmup: number;
  idle: number;
  throughput: number;
}

/** Everything a system's process needs to run the orders: written once as JSON, read by each process. */
export interface Workload {
  products: Product[];
  accounts: Account[];
  /** The warm-up orders, then the idle ones, then the throughput ones: the same list, in the same order, for every system. */
  orders: Order[];
  phases: Phases;
}

/** Quantities drawn like examples/order-saga/data/orders.csv: 1 half the time, then 2, 3, 4, 6. */
const QUANTITIES = [1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 4, 6];
const MEAN_QUANTITY = QUANTITIES.reduce((a, b) => a + b, 0) / QUANTITIES.length;
/** Orders of the example's data set, whose balances the accounts are scaled from. */
const EXAMPLE_ORDERS = 1200;

/**
 * The example's 20 products (every order hits one of these 20 rows: hot
 * rows) and 200 accounts, scaled to `phases`' total orders: stock of 1.2×
 * the expected demand of a product (0.6× for the two the example has least
 * of, so some orders are cancelled for stock late in the run), balances as
 * the example's scaled by orders / 1,200, so that about one order in ten
 * finds its account short and is cancelled after its stock was taken: the
 * compensation runs. The orders are drawn from a seeded generator, so every
 * system gets the same ones.
 */
export function makeWorkload(products: readonly Product[], accounts: readonly Account[], phases: Phases, seed = 20_240_601): Workload {
  const total = phases.warmup + phases.idle + phases.throughput;
  const random = mulberry32(seed);
  const demand = (total * MEAN_QUANTITY) / products.length;
  const scarcest = new Set(
    [...products]
      .sort((a, b) => a.stock - b.stock)
      .slice(0, 2)
      .map((p) => p.sku),
  );
  const stocked = products.map((p) => ({ ...p, stock: Math.max(1, Math.round(demand * (scarcest.has(p.sku) ? 0.6 : 1.2))) }));
  const funded = accounts.map((a) => ({ ...a, balanceCents: Math.max(1, Math.round((a.balanceCents * total) / EXAMPLE_ORDERS)) }));
  const orders: Order[] = [];
  for (let i = 0; i < total; i++) {
    const product = stocked[Math.floor(random() * stocked.length)]!;
    const account = funded[Math.floor(random() * funded.length)]!;
    const quantity = QUANTITIES[Math.floor(random() * QUANTITIES.length)]!;
    orders.push({ orderId: uuidFrom(random), accountId: account.accountId, sku: product.sku, quantity, amountCents: product.priceCents * quantity });
  }
  return { products: stocked, accounts: funded, orders, phases };
}

/** A random (version 4 layout) UUID from the seeded generator. */
function uuidFrom(random: () => number): string {
  const bytes = new Uint8Array(16).map(() => Math.floor(random() * 256));
  bytes[6] = (bytes[6]! & 0x0f) | 0x40;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = Buffer.from(bytes).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** mulberry32: a small, fast seeded PRNG (public domain); returns values in [0, 1). */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** The result of a statement as node-postgres gives it (drizzle's node-postgres `execute` returns the same). */
export interface StatementResult {
  rows: unknown[];
  rowCount: number | null;
}

/** Runs one parameterized statement (`$1`, `$2`, …) in the caller's transaction. */
export type Execute = (text: string, params: readonly unknown[]) => Promise<StatementResult>;

export const OrderStatus = { PENDING: 'PENDING', CONFIRMED: 'CONFIRMED', CANCELLED: 'CANCELLED' } as const;
export type OrderStatus = (typeof OrderStatus)[keyof typeof OrderStatus];

/** Why an order was cancelled, in the words of the example's participants (the checks and the summary match on them). */
export const insufficientStock = (o: Order): string => `insufficient stock of ${o.sku} for ${o.quantity}`;
export const insufficientFunds = (o: Order): string => `insufficient funds in ${o.accountId} for ${o.amountCents} cents`;

/**
 * The peers' steps: the same statements as the example's saga participants
 * (services/inventory.saga.ts, services/payment.saga.ts) and order service
 * (services/order.modes.ts), each meant to run as one transaction of its
 * own, in the service split Concordat's run has: the order is written, the
 * inventory deducts, the payment captures, the inventory gives the stock
 * back if the capture was refused, the order is marked.
 */
export const steps = {
  /** orders: the order row, PENDING. */
  async createOrder(execute: Execute, o: Order): Promise<void> {
    await execute(
      `INSERT INTO orders.orders (order_id, account_id, sku, quantity, amount_cents, status, global_tx_id)
       VALUES ($1, $2, $3, $4, $5, 'PENDING', $6) ON CONFLICT (order_id) DO NOTHING`,
      [o.orderId, o.accountId, o.sku, o.quantity, o.amountCents, o.orderId],
    );
  },

  /** inventory: deducts the stock (available → sold) and records the deduction; false when there is not enough. */
  async reserveStock(execute: Execute, o: Order): Promise<boolean> {
    const { rowCount } = await execute(`UPDATE inventory.products SET available = available - $2, sold = sold + $2 WHERE sku = $1 AND available >= $2`, [
      o.sku,
      o.quantity,
    ]);
    if (rowCount === 0) return false;
    await execute(`INSERT INTO inventory.deductions (order_id, global_tx_id, sku, quantity) VALUES ($1, $2, $3, $4)`, [
      o.orderId,
      o.orderId,
      o.sku,
      o.quantity,
    ]);
    return true;
  },

  /** payment: captures the amount (balance → captured) and records the capture; false when the balance is short. */
  async charge(execute: Execute, o: Order): Promise<boolean> {
    const { rowCount } = await execute(`UPDATE payment.accounts SET balance = balance - $2, captured = captured + $2 WHERE account_id = $1 AND balance >= $2`, [
      o.accountId,
      o.amountCents,
    ]);
    if (rowCount === 0) return false;
    await execute(`INSERT INTO payment.captures (order_id, global_tx_id, account_id, amount_cents) VALUES ($1, $2, $3, $4)`, [
      o.orderId,
      o.orderId,
      o.accountId,
      o.amountCents,
    ]);
    return true;
  },

  /** inventory's compensation: gives the stock back and removes the deduction. */
  async releaseStock(execute: Execute, o: Order): Promise<void> {
    await execute(`UPDATE inventory.products SET sold = sold - $2, available = available + $2 WHERE sku = $1`, [o.sku, o.quantity]);
    await execute(`DELETE FROM inventory.deductions WHERE order_id = $1`, [o.orderId]);
  },

  /** orders: CONFIRMED or CANCELLED, once. */
  async finishOrder(execute: Execute, o: Order, status: OrderStatus, reason: string | null): Promise<void> {
    await execute(`UPDATE orders.orders SET status = $2, reason = $3, completed_at = clock_timestamp() WHERE order_id = $1 AND status = 'PENDING'`, [
      o.orderId,
      status,
      reason,
    ]);
  },
};

/**
 * The saga as both peers write it, over whatever runs a step exactly once
 * (a DBOS transaction, a Restate `ctx.run` with an idempotency row): the
 * order, the stock, the charge, and on a refused charge the stock given
 * back; the order marked last. @returns the order's final status
 */
export async function orderSaga(o: Order, step: <T>(name: string, work: (execute: Execute) => Promise<T>) => Promise<T>): Promise<OrderStatus> {
  await step('createOrder', (execute) => steps.createOrder(execute, o));
  const reserved = await step('reserveStock', (execute) => steps.reserveStock(execute, o));
  if (!reserved) {
    await step('cancelOrder', (execute) => steps.finishOrder(execute, o, OrderStatus.CANCELLED, insufficientStock(o)));
    return OrderStatus.CANCELLED;
  }
  const charged = await step('charge', (execute) => steps.charge(execute, o));
  if (!charged) {
    await step('releaseStock', (execute) => steps.releaseStock(execute, o));
    await step('cancelOrder', (execute) => steps.finishOrder(execute, o, OrderStatus.CANCELLED, insufficientFunds(o)));
    return OrderStatus.CANCELLED;
  }
  await step('confirmOrder', (execute) => steps.finishOrder(execute, o, OrderStatus.CONFIRMED, null));
  return OrderStatus.CONFIRMED;
}
