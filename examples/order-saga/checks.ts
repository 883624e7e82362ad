import type { DataSource } from 'typeorm';
import { TxMode } from '../../src/transactions/index.js';
import { paymentDeadlineId } from './services/messages.js';
import { Mode } from './services/modes.js';
import { PAYMENT_DEADLINE_REASON } from './services/order.modes.js';

export interface Check {
  name: string;
  ok: boolean;
  /** What was found when the check failed (or a short confirmation). */
  detail: string;
}

/**
 * The demo's invariants, read straight from each service's tables and
 * Concordat's coordinator table after every order has finished. The first
 * eight hold in every mode (a 2PC or saga participant never uses the
 * reserved and held columns, so they must be 0 there too). An order never
 * paid has no global transaction: it must have been cancelled by its payment
 * deadline, and taken nothing (the stock, money and cancelled-order checks
 * cover that). Given the `mode`
 * the demo ran in, two more: every order's global transaction ran in that
 * mode, and in 2PC, where a prepared transaction holds its row locks until
 * the coordinator's decision reaches it, none is left.
 */
export async function runChecks(dataSource: DataSource, mode?: Mode): Promise<Check[]> {
  const rows = async <T>(sql: string): Promise<T[]> => dataSource.query(sql);
  const checks: Check[] = [];
  const add = (name: string, offending: unknown[], detail: string): void => {
    checks.push({ name, ok: offending.length === 0, detail: offending.length === 0 ? detail : JSON.stringify(offending.slice(0, 5)) });
  };

  add(
    'stock conserved: available + reserved + sold = initial stock, nothing left reserved',
    await rows(`SELECT sku, initial_stock, available, reserved, sold FROM inventory.products
                 WHERE available + reserved + sold <> initial_stock OR reserved <> 0`),
    'every SKU balances',
  );
  add(
    'money conserved: balance + held + captured = initial balance, nothing left held',
    await rows(`SELECT account_id, initial_balance, balance, held, captured FROM payment.accounts
                 WHERE balance + held + captured <> initial_balance OR held <> 0`),
    'every account balances',
  );
  add(
    'every confirmed order has exactly one deduction and one capture, of the right size',
    await rows(`SELECT o.order_id,
                       (SELECT count(*) FROM inventory.deductions d WHERE d.order_id = o.order_id AND d.quantity = o.quantity AND d.sku = o.sku) AS deductions,
                       (SELECT count(*) FROM payment.captures c WHERE c.order_id = o.order_id AND c.amount_cents = o.amount_cents AND c.account_id = o.account_id) AS captures
                  FROM orders.orders o
                 WHERE o.status = 'CONFIRMED'
                   AND ((SELECT count(*) FROM inventory.deductions d WHERE d.order_id = o.order_id) <> 1
                     OR (SELECT count(*) FROM payment.captures c WHERE c.order_id = o.order_id) <> 1
                     OR NOT EXISTS (SELECT 1 FROM inventory.deductions d WHERE d.order_id = o.order_id AND d.quantity = o.quantity AND d.sku = o.sku)
                     OR NOT EXISTS (SELECT 1 FROM payment.captures c WHERE c.order_id = o.order_id AND c.amount_cents = o.amount_cents AND c.account_id = o.account_id))`),
    'all confirmed orders deducted and captured once',
  );
  add(
    'every cancelled order has no deduction and no capture',
    await rows(`SELECT o.order_id FROM orders.orders o
                 WHERE o.status = 'CANCELLED'
                   AND (EXISTS (SELECT 1 FROM inventory.deductions d WHERE d.order_id = o.order_id)
                     OR EXISTS (SELECT 1 FROM payment.captures c WHERE c.order_id = o.order_id))`),
    'no cancelled order deducted or captured',
  );
  add(
    'sold and captured totals equal the confirmed orders',
    await rows(`SELECT 'sold' AS what, p.sku AS id, p.sold AS ledger, COALESCE(sum(o.quantity), 0) AS orders
                  FROM inventory.products p LEFT JOIN orders.orders o ON o.sku = p.sku AND o.status = 'CONFIRMED'
                 GROUP BY p.sku, p.sold HAVING p.sold <> COALESCE(sum(o.quantity), 0)
                UNION ALL
                SELECT 'captured', a.account_id, a.captured, COALESCE(sum(o.amount_cents), 0)
                  FROM payment.accounts a LEFT JOIN orders.orders o ON o.account_id = a.account_id AND o.status = 'CONFIRMED'
                 GROUP BY a.account_id, a.captured HAVING a.captured <> COALESCE(sum(o.amount_cents), 0)`),
    'ledgers match the orders',
  );
  add(
    'no global transaction left unfinished, no order left pending',
    await rows(`SELECT 'global transaction' AS what, id::text AS id, state FROM concordat.global_transaction WHERE ended_at IS NULL
                UNION ALL
                SELECT 'order', order_id, status FROM orders.orders WHERE status NOT IN ('CONFIRMED', 'CANCELLED')`),
    'all ended',
  );
  add(
    "each order's status matches its global transaction's end state (an order never paid: cancelled by its payment deadline)",
    await rows(`SELECT o.order_id, o.status, o.reason, g.state FROM orders.orders o
                  LEFT JOIN concordat.global_transaction g ON g.id = o.global_tx_id
                 WHERE (o.global_tx_id IS NOT NULL AND g.state IS DISTINCT FROM o.status)
                    OR (o.global_tx_id IS NULL AND (o.status <> 'CANCELLED' OR o.reason IS NULL OR o.reason NOT LIKE '${PAYMENT_DEADLINE_REASON}:%'))`),
    'orders and global transactions agree',
  );
  // Every order has ended: a deadline not yet due is one its order's end failed to cancel. (A due one may
  // still be waiting for the relay's move: the order ended just as it fell due, and its handler will find
  // the order ended.) The ID prefix of every order's deadline (services/messages.ts), escaped for LIKE.
  const deadlinePrefix = paymentDeadlineId('').replace(/[\\%_]/g, (c) => `\\${c}`);
  add(
    "no payment deadline still ahead: each order's end cancelled its deadline, or it was delivered",
    await rows(`SELECT message_id, deliver_at FROM concordat.outbox_scheduled WHERE message_id LIKE '${deadlinePrefix}%' AND deliver_at > now()`),
    'none left ahead',
  );
  if (mode === undefined) return checks;
  const txMode = TX_MODES[mode];
  add(
    `every paid order ran as one ${txMode} global transaction, and every global transaction is an order's`,
    await rows(`SELECT 'order' AS what, o.order_id AS id, g.mode FROM orders.orders o LEFT JOIN concordat.global_transaction g ON g.id = o.global_tx_id
                 WHERE o.global_tx_id IS NOT NULL AND g.mode IS DISTINCT FROM '${txMode}'
                UNION ALL
                SELECT 'global transaction', g.id::text, g.mode FROM concordat.global_transaction g
                 WHERE NOT EXISTS (SELECT 1 FROM orders.orders o WHERE o.global_tx_id = g.id)`),
    `one ${txMode} global transaction per order`,
  );
  if (mode === Mode.TWO_PHASE) {
    add(
      'no prepared transaction left in the demo database',
      await rows(`SELECT gid, prepared FROM pg_prepared_xacts WHERE database = current_database()`),
      'pg_prepared_xacts is empty',
    );
  }
  return checks;
}

const TX_MODES: Record<Mode, TxMode> = { [Mode.TCC]: TxMode.TCC, [Mode.TWO_PHASE]: TxMode.TWO_PHASE, [Mode.SAGA]: TxMode.SAGA };
