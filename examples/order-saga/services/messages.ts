/** Topics and message shapes of the order saga example. */

export const Topics = {
  /** An order arrives (from the CSV feeder, or any client). */
  ORDER_SUBMITTED: 'orders.submitted',
  /** The global transaction of an order ended. */
  ORDER_TX_OUTCOME: 'orders.tx-outcome',
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
