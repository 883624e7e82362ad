/** Topics and message shapes of the order saga example. */

export const Topics = {
  /** An order arrives (from the CSV feeder, or any client). */
  ORDER_SUBMITTED: 'orders.submitted',
  /** The global transaction of an order ended. */
  ORDER_TX_OUTCOME: 'orders.tx-outcome',
  /** A customer who chose to pay later pays (`OrderSubmitted.payLater`). */
  ORDER_PAID: 'orders.paid',
  /**
   * An order's payment deadline: published for later (`delayMs`) when the
   * order is placed, cancelled when the order ends first (`order.modes.ts`).
   */
  ORDER_PAYMENT_DEADLINE: 'orders.payment-deadline',
} as const;

export const Participants = {
  INVENTORY: 'inventory.reserve',
  PAYMENT: 'payment.hold',
} as const;

export interface OrderSubmitted {
  orderId: string;
  accountId: string;
  sku: string;
  quantity: number;
  /**
   * The customer pays later (a bank transfer, say) rather than at checkout:
   * the order waits AWAITING_PAYMENT for an `orders.paid` message, and is
   * cancelled if its payment deadline comes first. Absent: paid at checkout.
   */
  payLater?: boolean;
}

/** A customer paid an order placed with `payLater`. */
export interface OrderPaid {
  orderId: string;
}

/** An order's payment deadline fell due. */
export interface PaymentDeadline {
  orderId: string;
  /** The deadline's distance from the order's placing, in ms (for the cancellation's reason). */
  timeoutMs: number;
}

/**
 * The message ID of an order's payment deadline: one per order, so the
 * order service can cancel it knowing only the order (no column to keep it
 * in), and a redelivered `orders.submitted` cannot schedule a second one.
 */
export function paymentDeadlineId(orderId: string): string {
  return `payment-deadline:${orderId}`;
}

/** Branch payload of the inventory participant. */
export interface StockReservation {
  orderId: string;
  sku: string;
  quantity: number;
}

/** Branch payload of the payment participant. */
export interface PaymentHold {
  orderId: string;
  accountId: string;
  amountCents: number;
}
