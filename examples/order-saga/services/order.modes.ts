import { ConcordatError, ErrorCode, nonRetriable } from '../../../src/errors.js';
import { OnMessage, Service, type MessageContext } from '../../../src/runtime/index.js';
import { compileCoordinatorOptions, driveGlobalTx, timingOf, type GlobalTxOutcome } from '../../../src/transactions/index.js';
import { paymentDeadlineId, Topics, type OrderPaid, type OrderSubmitted, type PaymentDeadline } from './messages.js';
import { beginOrderTransaction, type Mode as OrderMode } from './modes.js';

/** Options of {@link orderServiceFor}. */
export interface OrderServiceOptions {
  /** Deadline for the participants to vote (or the steps to run), in ms. @default 30000 */
  timeoutMs?: number;
  /**
   * How long after an order is placed its payment must have gone through,
   * in ms: past it, the order is cancelled (see {@link orderServiceFor}).
   * @default 5000
   */
  paymentTimeoutMs?: number;
}

export const PAYMENT_TIMEOUT_MS_DEFAULT = 5000;

/**
 * Order statuses. PENDING: the order's global transaction is taking its
 * stock and its payment. AWAITING_PAYMENT: placed with `payLater`, nothing
 * taken yet, waiting for `orders.paid`.
 */
export const OrderStatus = {
  AWAITING_PAYMENT: 'AWAITING_PAYMENT',
  PENDING: 'PENDING',
  CONFIRMED: 'CONFIRMED',
  CANCELLED: 'CANCELLED',
} as const;
export type OrderStatus = (typeof OrderStatus)[keyof typeof OrderStatus];

/** How every cancellation by the payment deadline's reason begins (the demo's summary and checks count them by it). */
export const PAYMENT_DEADLINE_REASON = 'payment deadline';

/**
 * The abort's resend timing: the coordinator's defaults. The abort only
 * sends the first Cancel (or rollback, or compensation); the coordinator's
 * own scan resends from then on with whatever options it runs with.
 */
const ABORT_TIMING = timingOf(compileCoordinatorOptions({}));

/**
 * The order service for any mode. A factory rather than a base class:
 * handler decorators belong to the class they decorate, and each app runs
 * one order service (`deployment.ts` makes it).
 *
 * **An order's life.** `orders.submitted` writes the order and, in the same
 * database transaction, publishes its payment deadline for `paymentTimeoutMs`
 * later (a scheduled message, `delayMs`). Paid at checkout (the default), the
 * order is PENDING and its global transaction (TCC, 2PC or saga) begins in
 * that transaction too; placed with `payLater`, it is AWAITING_PAYMENT until
 * `orders.paid` begins it. The outcome ends the order CONFIRMED or CANCELLED
 * and cancels the deadline (`cancelScheduled`) in the same transaction: one
 * scheduled insert and one cancel per order, in transactions that exist
 * anyway.
 *
 * **The deadline.** If it is delivered first, it cancels the order: one
 * AWAITING_PAYMENT (nothing taken yet) ends CANCELLED at once; one PENDING
 * has its global transaction aborted through the coordinator's own state
 * machine, so the normal compensation runs (TCC Cancel releases the stock
 * and the hold, 2PC rolls the prepared branches back, a saga gives the
 * stock back and refunds a capture), and the outcome ends the order.
 *
 * **Exactly one outcome, decided in the database.** Each race is decided on
 * one row under its lock:
 * - payment vs. deadline, on the order's row: `orders.paid` and the deadline
 *   both lock it and act only on AWAITING_PAYMENT, so whichever commits
 *   first wins and the other finds it PENDING or CANCELLED (a payment that
 *   comes too late begins nothing: no stock taken, no charge);
 * - the payment going through vs. deadline, on the global transaction's row:
 *   the coordinator decides CONFIRMING (the last yes vote) or CANCELLING (the
 *   deadline's abort) under its lock; an abort that finds it decided does
 *   nothing, and the decision's outcome ends the order;
 * - the order's end vs. the deadline's delivery, on the scheduled row: the
 *   cancel deletes it unless the relay moved it first (`cancelScheduled`
 *   then throws SCHEDULED_MESSAGE_DUE or _NOT_FOUND, and the deadline's
 *   handler will find the order ended).
 */
export function orderServiceFor(mode: OrderMode, options: OrderServiceOptions = {}): Function {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const paymentTimeoutMs = options.paymentTimeoutMs ?? PAYMENT_TIMEOUT_MS_DEFAULT;
  if (!Number.isInteger(paymentTimeoutMs) || paymentTimeoutMs < 0) {
    throw new RangeError(`paymentTimeoutMs must be a whole number of ms, 0 or more; got ${paymentTimeoutMs}`);
  }

  @Service('orders')
  class OrderService {
    @OnMessage(Topics.ORDER_SUBMITTED)
    async submit(context: MessageContext<OrderSubmitted>): Promise<void> {
      const order = context.data;
      const prices: Array<{ price_cents: string }> = await context.manager.query(`SELECT price_cents FROM orders.prices WHERE sku = $1`, [order.sku]);
      if (prices[0] === undefined) throw nonRetriable(new Error(`unknown SKU ${order.sku}`));
      const amountCents = Number(prices[0].price_cents) * order.quantity;
      const payLater = order.payLater === true;
      const globalTxId = payLater
        ? null
        : await beginOrderTransaction(context, mode, {
            orderId: order.orderId,
            stock: { orderId: order.orderId, sku: order.sku, quantity: order.quantity },
            payment: { orderId: order.orderId, accountId: order.accountId, amountCents },
            timeoutMs,
          });
      await context.manager.query(
        `INSERT INTO orders.orders (order_id, account_id, sku, quantity, amount_cents, status, global_tx_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7)`,
        [order.orderId, order.accountId, order.sku, order.quantity, amountCents, payLater ? OrderStatus.AWAITING_PAYMENT : OrderStatus.PENDING, globalTxId],
      );
      const deadline: PaymentDeadline = { orderId: order.orderId, timeoutMs: paymentTimeoutMs };
      context.publish(Topics.ORDER_PAYMENT_DEADLINE, deadline, { key: order.orderId, id: paymentDeadlineId(order.orderId), delayMs: paymentTimeoutMs });
    }

    /** A pay-later customer paid: the order's global transaction begins, unless the deadline cancelled the order first. */
    @OnMessage(Topics.ORDER_PAID)
    async paid(context: MessageContext<OrderPaid>): Promise<void> {
      const { orderId } = context.data;
      const rows: Array<{ account_id: string; sku: string; quantity: number; amount_cents: string }> = await context.manager.query(
        `SELECT account_id, sku, quantity, amount_cents FROM orders.orders WHERE order_id = $1 AND status = $2 FOR UPDATE`,
        [orderId, OrderStatus.AWAITING_PAYMENT],
      );
      const order = rows[0];
      if (order === undefined) {
        const placed: unknown[] = await context.manager.query(`SELECT 1 FROM orders.orders WHERE order_id = $1`, [orderId]);
        // Not placed yet: orders.paid and orders.submitted are two topics, with no order between them. Retried until the
        // order is placed (then dead-lettered, for `concordat dlq replay`), never dropped: the order would wait for it and be
        // cancelled at its deadline, paid.
        if (placed.length === 0) throw new Error(`order ${orderId} is paid but not placed yet`);
        // Not awaiting payment: cancelled by its deadline (the payment came too late and takes nothing), or paid already.
        return;
      }
      const globalTxId = await beginOrderTransaction(context, mode, {
        orderId,
        stock: { orderId, sku: order.sku, quantity: order.quantity },
        payment: { orderId, accountId: order.account_id, amountCents: Number(order.amount_cents) },
        timeoutMs,
      });
      await context.manager.query(`UPDATE orders.orders SET status = $2, global_tx_id = $3 WHERE order_id = $1`, [orderId, OrderStatus.PENDING, globalTxId]);
    }

    @OnMessage(Topics.ORDER_TX_OUTCOME)
    async complete(context: MessageContext<GlobalTxOutcome<{ orderId: string }>>): Promise<void> {
      const outcome = context.data;
      const status = outcome.state === 'CONFIRMED' ? OrderStatus.CONFIRMED : OrderStatus.CANCELLED;
      const [, ended]: [unknown[], number] = await context.manager.query(
        `UPDATE orders.orders SET status = $2, reason = $3, completed_at = clock_timestamp() WHERE order_id = $1 AND status = $4`,
        [outcome.payload.orderId, status, outcome.reason, OrderStatus.PENDING],
      );
      if (ended === 1) await cancelDeadline(context, outcome.payload.orderId);
    }

    @OnMessage(Topics.ORDER_PAYMENT_DEADLINE)
    async deadline(context: MessageContext<PaymentDeadline>): Promise<void> {
      const { orderId, timeoutMs: waitedMs } = context.data;
      const rows: Array<{ status: OrderStatus; global_tx_id: string | null }> = await context.manager.query(
        `SELECT status, global_tx_id FROM orders.orders WHERE order_id = $1 FOR UPDATE`,
        [orderId],
      );
      const order = rows[0];
      if (order === undefined) return;
      if (order.status === OrderStatus.AWAITING_PAYMENT) {
        await context.manager.query(`UPDATE orders.orders SET status = $2, reason = $3, completed_at = clock_timestamp() WHERE order_id = $1`, [
          orderId,
          OrderStatus.CANCELLED,
          `${PAYMENT_DEADLINE_REASON}: not paid within ${waitedMs} ms`,
        ]);
        return;
      }
      // Ended first (its cancel of this message came too late), or PENDING without a global transaction (cannot happen).
      if (order.status !== OrderStatus.PENDING || order.global_tx_id === null) return;
      try {
        await driveGlobalTx(
          context,
          order.global_tx_id,
          { kind: 'abort', reason: `${PAYMENT_DEADLINE_REASON}: payment not through within ${waitedMs} ms`, by: 'orders (payment deadline)' },
          ABORT_TIMING,
        );
      } catch (error) {
        // Decided already: the payment went through (CONFIRMING) or a refusal came first. Its outcome ends the order.
        if (error instanceof ConcordatError && error.code === ErrorCode.GLOBAL_TX_STATE_INVALID) return;
        throw error;
      }
    }
  }
  Object.defineProperty(OrderService, 'name', { value: `OrderService(${mode})` });
  return OrderService;
}

/** Cancels an ended order's payment deadline; one already due is delivered, and its handler finds the order ended. */
async function cancelDeadline(context: MessageContext, orderId: string): Promise<void> {
  try {
    await context.cancelScheduled(paymentDeadlineId(orderId));
  } catch (error) {
    const late = error instanceof ConcordatError && (error.code === ErrorCode.SCHEDULED_MESSAGE_DUE || error.code === ErrorCode.SCHEDULED_MESSAGE_NOT_FOUND);
    if (!late) throw error;
  }
}
