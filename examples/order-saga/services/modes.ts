import type { TransactionContext } from '../../../src/runtime/index.js';
import { beginSaga, beginTcc, beginTwoPhase } from '../../../src/transactions/index.js';
import { Participants, Topics, type PaymentHold, type StockReservation } from './messages.js';

/**
 * The order saga in each of Concordat's three modes, for `--mode tcc|2pc|saga`:
 * the same orders, the same tables and the same checks; only how inventory
 * and payment take part changes.
 *
 * - tcc: inventory reserves then deducts or releases; payment holds then
 *   captures or releases (`inventory.service.ts`, `payment.service.ts`).
 * - 2pc: each deducts or captures at once inside a transaction that is
 *   prepared, then committed or rolled back (`*.two-phase.ts`).
 * - saga: inventory deducts, then payment captures; a refused capture makes
 *   inventory give the stock back (`*.saga.ts`).
 */
export const Mode = { TCC: 'tcc', TWO_PHASE: '2pc', SAGA: 'saga' } as const;
export type Mode = (typeof Mode)[keyof typeof Mode];

/** Participant names of the 2PC and saga variants (TCC's are in `messages.ts`). */
export const ModeParticipants = {
  INVENTORY: 'inventory.deduct',
  PAYMENT: 'payment.capture',
} as const;

export interface OrderTransaction {
  orderId: string;
  stock: StockReservation;
  payment: PaymentHold;
  timeoutMs: number;
}

/**
 * Begins an order's global transaction in `mode`, in the order service's
 * transaction, with the outcome sent to `orders.tx-outcome` keyed by the order.
 * @returns the global transaction ID.
 */
export async function beginOrderTransaction(context: TransactionContext, mode: Mode, order: OrderTransaction): Promise<string> {
  const common = {
    name: 'place-order',
    timeoutMs: order.timeoutMs,
    outcomeTopic: Topics.ORDER_TX_OUTCOME,
    outcomeKey: order.orderId,
    payload: { orderId: order.orderId },
  };
  switch (mode) {
    case Mode.TCC:
      return beginTcc(context, {
        ...common,
        branches: [
          { participant: Participants.INVENTORY, payload: order.stock },
          { participant: Participants.PAYMENT, payload: order.payment },
        ],
      });
    case Mode.TWO_PHASE:
      return beginTwoPhase(context, {
        ...common,
        // Inventory prepares first, payment once inventory voted yes: every order takes its product row
        // before its account row, so two orders can never each hold what the other waits for across the
        // two branches (with parallel prepares such a cycle held both until the 2 s lock timeout).
        prepare: 'sequential',
        branches: [
          { participant: ModeParticipants.INVENTORY, payload: order.stock },
          { participant: ModeParticipants.PAYMENT, payload: order.payment },
        ],
      });
    case Mode.SAGA:
      return beginSaga(context, {
        ...common,
        steps: [
          { participant: ModeParticipants.INVENTORY, payload: order.stock },
          // Insufficient funds is final (non-retriable); a database hiccup is retried.
          { participant: ModeParticipants.PAYMENT, payload: order.payment, retry: { maxAttempts: 3 } },
        ],
      });
  }
}
