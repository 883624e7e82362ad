import { nonRetriable } from '../../../src/errors.js';
import { OnMessage, Service, type MessageContext } from '../../../src/runtime/index.js';
import type { GlobalTxOutcome } from '../../../src/transactions/index.js';
import { Topics, type OrderSubmitted } from './messages.js';
import { beginOrderTransaction, type Mode as OrderMode } from './modes.js';

/**
 * The order service for any mode: writes the order as PENDING and begins
 * its global transaction (TCC, 2PC or saga) in one database transaction,
 * and marks it CONFIRMED or CANCELLED when the outcome arrives. A factory
 * rather than a base class: handler decorators belong to the class they
 * decorate, and each app runs one order service (`deployment.ts` makes it).
 *
 * @param timeoutMs deadline for the participants to vote (or the steps to run), in ms.
 */
export function orderServiceFor(mode: OrderMode, timeoutMs = 30_000): Function {
  @Service('orders')
  class OrderService {
    @OnMessage(Topics.ORDER_SUBMITTED)
    async submit(context: MessageContext<OrderSubmitted>): Promise<void> {
      const order = context.data;
      const prices: Array<{ price_cents: string }> = await context.manager.query(`SELECT price_cents FROM orders.prices WHERE sku = $1`, [order.sku]);
      if (prices[0] === undefined) throw nonRetriable(new Error(`unknown SKU ${order.sku}`));
      const amountCents = Number(prices[0].price_cents) * order.quantity;
      const globalTxId = await beginOrderTransaction(context, mode, {
        orderId: order.orderId,
        stock: { orderId: order.orderId, sku: order.sku, quantity: order.quantity },
        payment: { orderId: order.orderId, accountId: order.accountId, amountCents },
        timeoutMs,
      });
      await context.manager.query(
        `INSERT INTO orders.orders (order_id, account_id, sku, quantity, amount_cents, status, global_tx_id)
         VALUES ($1, $2, $3, $4, $5, 'PENDING', $6)`,
        [order.orderId, order.accountId, order.sku, order.quantity, amountCents, globalTxId],
      );
    }

    @OnMessage(Topics.ORDER_TX_OUTCOME)
    async complete(context: MessageContext<GlobalTxOutcome<{ orderId: string }>>): Promise<void> {
      const outcome = context.data;
      const status = outcome.state === 'CONFIRMED' ? 'CONFIRMED' : 'CANCELLED';
      await context.manager.query(
        `UPDATE orders.orders SET status = $2, reason = $3, completed_at = clock_timestamp() WHERE order_id = $1 AND status = 'PENDING'`,
        [outcome.payload.orderId, status, outcome.reason],
      );
    }
  }
  Object.defineProperty(OrderService, 'name', { value: `OrderService(${mode})` });
  return OrderService;
}
