import { OnMessage, Service, type MessageContext, type TransactionContext } from '../../src/runtime/index.js';
import {
  Cancel,
  Compensate,
  Confirm,
  Prepare,
  SagaParticipant,
  Step,
  TccParticipant,
  Try,
  XaParticipant,
  type GlobalTxOutcome,
  type SagaContext,
  type TccContext,
  type XaContext,
} from '../../src/transactions/index.js';

/**
 * The business of the benchmark: an order takes stock of one SKU
 * (inventory), money from one account (payment) and books a shipment
 * (shipping). The baseline does exactly these writes in one local
 * transaction; each mode spreads them over three participants.
 */
export interface Order {
  orderId: string;
  sku: number;
  account: number;
  quantity: number;
  cents: number;
}

export const SCHEMA = [
  `CREATE TABLE bench_orders (order_id uuid PRIMARY KEY, sku int NOT NULL, account int NOT NULL, quantity int NOT NULL, cents bigint NOT NULL)`,
  `CREATE TABLE bench_stock (sku int PRIMARY KEY, available bigint NOT NULL, reserved bigint NOT NULL DEFAULT 0, sold bigint NOT NULL DEFAULT 0)`,
  `CREATE TABLE bench_accounts (account int PRIMARY KEY, balance bigint NOT NULL, held bigint NOT NULL DEFAULT 0, captured bigint NOT NULL DEFAULT 0)`,
  `CREATE TABLE bench_shipments (order_id uuid PRIMARY KEY, sku int NOT NULL, quantity int NOT NULL, state text NOT NULL)`,
];

export const ROWS = 2000;

export function seed(): string[] {
  return [
    `INSERT INTO bench_stock (sku, available) SELECT g, 1000000000 FROM generate_series(1, ${ROWS}) g`,
    `INSERT INTO bench_accounts (account, balance) SELECT g, 1000000000000 FROM generate_series(1, ${ROWS}) g`,
  ];
}

/** The three direct writes, as the baseline and 2PC/saga participants do them. */
export const take = {
  stock: (ctx: { manager: TransactionContext['manager'] }, o: Order) =>
    ctx.manager.query(`UPDATE bench_stock SET available = available - $2, sold = sold + $2 WHERE sku = $1`, [o.sku, o.quantity]),
  money: (ctx: { manager: TransactionContext['manager'] }, o: Order) =>
    ctx.manager.query(`UPDATE bench_accounts SET balance = balance - $2, captured = captured + $2 WHERE account = $1`, [o.account, o.cents]),
  shipment: (ctx: { manager: TransactionContext['manager'] }, o: Order) =>
    ctx.manager.query(`INSERT INTO bench_shipments (order_id, sku, quantity, state) VALUES ($1, $2, $3, 'BOOKED')`, [o.orderId, o.sku, o.quantity]),
};

@Service('bench-inventory-tcc')
@TccParticipant('bench.inventory')
export class InventoryTcc {
  @Try()
  async reserve(c: TccContext<Order>): Promise<void> {
    await c.manager.query(`UPDATE bench_stock SET available = available - $2, reserved = reserved + $2 WHERE sku = $1`, [c.payload.sku, c.payload.quantity]);
  }
  @Confirm()
  async deduct(c: TccContext<Order>): Promise<void> {
    await c.manager.query(`UPDATE bench_stock SET reserved = reserved - $2, sold = sold + $2 WHERE sku = $1`, [c.payload.sku, c.payload.quantity]);
  }
  @Cancel()
  async release(c: TccContext<Order>): Promise<void> {
    await c.manager.query(`UPDATE bench_stock SET reserved = reserved - $2, available = available + $2 WHERE sku = $1`, [c.payload.sku, c.payload.quantity]);
  }
}

@Service('bench-payment-tcc')
@TccParticipant('bench.payment')
export class PaymentTcc {
  @Try()
  async hold(c: TccContext<Order>): Promise<void> {
    await c.manager.query(`UPDATE bench_accounts SET balance = balance - $2, held = held + $2 WHERE account = $1`, [c.payload.account, c.payload.cents]);
  }
  @Confirm()
  async capture(c: TccContext<Order>): Promise<void> {
    await c.manager.query(`UPDATE bench_accounts SET held = held - $2, captured = captured + $2 WHERE account = $1`, [c.payload.account, c.payload.cents]);
  }
  @Cancel()
  async release(c: TccContext<Order>): Promise<void> {
    await c.manager.query(`UPDATE bench_accounts SET held = held - $2, balance = balance + $2 WHERE account = $1`, [c.payload.account, c.payload.cents]);
  }
}

@Service('bench-shipping-tcc')
@TccParticipant('bench.shipping')
export class ShippingTcc {
  @Try()
  async book(c: TccContext<Order>): Promise<void> {
    await c.manager.query(`INSERT INTO bench_shipments (order_id, sku, quantity, state) VALUES ($1, $2, $3, 'TENTATIVE')`, [
      c.payload.orderId,
      c.payload.sku,
      c.payload.quantity,
    ]);
  }
  @Confirm()
  async confirm(c: TccContext<Order>): Promise<void> {
    await c.manager.query(`UPDATE bench_shipments SET state = 'BOOKED' WHERE order_id = $1`, [c.payload.orderId]);
  }
  @Cancel()
  async cancel(c: TccContext<Order>): Promise<void> {
    await c.manager.query(`DELETE FROM bench_shipments WHERE order_id = $1`, [c.payload.orderId]);
  }
}

@Service('bench-inventory-xa')
@XaParticipant('bench.inventory')
export class InventoryXa {
  @Prepare()
  async take(c: XaContext<Order>): Promise<void> {
    await take.stock(c, c.payload);
  }
}

@Service('bench-payment-xa')
@XaParticipant('bench.payment')
export class PaymentXa {
  @Prepare()
  async take(c: XaContext<Order>): Promise<void> {
    await take.money(c, c.payload);
  }
}

@Service('bench-shipping-xa')
@XaParticipant('bench.shipping')
export class ShippingXa {
  @Prepare()
  async take(c: XaContext<Order>): Promise<void> {
    await take.shipment(c, c.payload);
  }
}

@Service('bench-inventory-saga')
@SagaParticipant('bench.inventory')
export class InventorySaga {
  @Step()
  async take(c: SagaContext<Order>): Promise<void> {
    await take.stock(c, c.payload);
  }
  @Compensate()
  async giveBack(c: SagaContext<Order>): Promise<void> {
    await c.manager.query(`UPDATE bench_stock SET available = available + $2, sold = sold - $2 WHERE sku = $1`, [c.payload.sku, c.payload.quantity]);
  }
}

@Service('bench-payment-saga')
@SagaParticipant('bench.payment')
export class PaymentSaga {
  @Step()
  async take(c: SagaContext<Order>): Promise<void> {
    await take.money(c, c.payload);
  }
  @Compensate()
  async refund(c: SagaContext<Order>): Promise<void> {
    await c.manager.query(`UPDATE bench_accounts SET balance = balance + $2, captured = captured - $2 WHERE account = $1`, [
      c.payload.account,
      c.payload.cents,
    ]);
  }
}

@Service('bench-shipping-saga')
@SagaParticipant('bench.shipping')
export class ShippingSaga {
  @Step()
  async take(c: SagaContext<Order>): Promise<void> {
    await take.shipment(c, c.payload);
  }
  @Compensate()
  async cancel(c: SagaContext<Order>): Promise<void> {
    await c.manager.query(`DELETE FROM bench_shipments WHERE order_id = $1`, [c.payload.orderId]);
  }
}

/** Resolves the waiter of each global transaction when its outcome arrives. */
export const waiters = new Map<string, (state: string) => void>();

@Service('bench-outcomes')
export class Outcomes {
  @OnMessage('bench.outcome', { transactional: false })
  async done(context: MessageContext<GlobalTxOutcome>): Promise<void> {
    waiters.get(context.data.globalTxId)?.(context.data.state);
    waiters.delete(context.data.globalTxId);
  }
}

/**
 * The messaging floor: a chain of plain transactional handlers (inbox row,
 * one publish each) as long as a TCC global transaction's messages, with no
 * transaction protocol at all. What the log, relay and dispatcher cost per
 * message bounds every mode from above.
 */
export const chainWaiters = new Map<string, () => void>();

@Service('bench-chain')
export class Chain {
  @OnMessage('bench.chain')
  async hop(context: MessageContext<{ id: string; left: number }>): Promise<void> {
    if (context.data.left === 0) {
      chainWaiters.get(context.data.id)?.();
      chainWaiters.delete(context.data.id);
      return;
    }
    context.publish('bench.chain', { id: context.data.id, left: context.data.left - 1 }, { key: context.data.id });
  }
}
