/**
 * The invariants every system's run must leave in its database, read in
 * SQL by the orchestrator after the system's process exited: the example's
 * checks (examples/order-saga/checks.ts) over the tables all systems share,
 * plus, for Concordat, its coordinator's own table. And the stall figures
 * Concordat's coordinator leaves in its timeline.
 */

/** Runs a query on the system's database and returns its rows. */
export type Query = <T = Record<string, unknown>>(text: string, params?: unknown[]) => Promise<T[]>;

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

/** How the orders ended. */
export interface Outcomes {
  orders: number;
  confirmed: number;
  cancelledForStock: number;
  cancelledForFunds: number;
  /** Cancelled for another reason (a deadline, a failed step): the commonest reasons, numbers masked. */
  cancelledOther: number;
  otherReasons: string[];
}

export async function outcomes(query: Query): Promise<Outcomes> {
  const [row] = await query<{ orders: number; confirmed: number; stock: number; funds: number; other: number }>(`
    SELECT count(*)::int AS orders,
           count(*) FILTER (WHERE status = 'CONFIRMED')::int AS confirmed,
           count(*) FILTER (WHERE status = 'CANCELLED' AND reason LIKE '%insufficient stock%')::int AS stock,
           count(*) FILTER (WHERE status = 'CANCELLED' AND reason LIKE '%insufficient funds%')::int AS funds,
           count(*) FILTER (WHERE status = 'CANCELLED' AND COALESCE(reason, '') NOT LIKE '%insufficient stock%'
                                                   AND COALESCE(reason, '') NOT LIKE '%insufficient funds%')::int AS other
      FROM orders.orders`);
  const reasons = await query<{ reason: string; n: number }>(`
    SELECT left(regexp_replace(COALESCE(reason, 'no reason'), '[0-9a-f]{8}-[0-9a-f-]{27}|[0-9]+', '#', 'g'), 120) AS reason, count(*)::int AS n
      FROM orders.orders
     WHERE status = 'CANCELLED' AND COALESCE(reason, '') NOT LIKE '%insufficient stock%' AND COALESCE(reason, '') NOT LIKE '%insufficient funds%'
     GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 3`);
  return {
    orders: row!.orders,
    confirmed: row!.confirmed,
    cancelledForStock: row!.stock,
    cancelledForFunds: row!.funds,
    cancelledOther: row!.other,
    otherReasons: reasons.map((r) => `${r.n}× ${r.reason}`),
  };
}

/**
 * The checks. `expectedOrders`: how many orders were placed. `concordat`:
 * also check the coordinator's global transactions.
 */
export async function runChecks(query: Query, expectedOrders: number, concordat: boolean): Promise<Check[]> {
  const checks: Check[] = [];
  const add = (name: string, offending: unknown[], detail: string): void => {
    checks.push({ name, ok: offending.length === 0, detail: offending.length === 0 ? detail : JSON.stringify(offending.slice(0, 5)) });
  };
  add(
    'stock conserved: available + reserved + sold = initial stock, nothing left reserved',
    await query(`SELECT sku, initial_stock, available, reserved, sold FROM inventory.products
                  WHERE available + reserved + sold <> initial_stock OR reserved <> 0`),
    'every SKU balances',
  );
  add(
    'money conserved: balance + held + captured = initial balance, nothing left held',
    await query(`SELECT account_id, initial_balance, balance, held, captured FROM payment.accounts
                  WHERE balance + held + captured <> initial_balance OR held <> 0`),
    'every account balances',
  );
  add(
    'every confirmed order has exactly one charge and one deduction, of the right size',
    await query(`SELECT o.order_id FROM orders.orders o
                  WHERE o.status = 'CONFIRMED'
                    AND ((SELECT count(*) FROM payment.captures c WHERE c.order_id = o.order_id) <> 1
                      OR (SELECT count(*) FROM inventory.deductions d WHERE d.order_id = o.order_id) <> 1
                      OR NOT EXISTS (SELECT 1 FROM payment.captures c WHERE c.order_id = o.order_id AND c.amount_cents = o.amount_cents AND c.account_id = o.account_id)
                      OR NOT EXISTS (SELECT 1 FROM inventory.deductions d WHERE d.order_id = o.order_id AND d.quantity = o.quantity AND d.sku = o.sku))`),
    'all confirmed orders charged and deducted once',
  );
  add(
    'no cancelled order has a charge or a deduction',
    await query(`SELECT o.order_id FROM orders.orders o
                  WHERE o.status = 'CANCELLED'
                    AND (EXISTS (SELECT 1 FROM payment.captures c WHERE c.order_id = o.order_id)
                      OR EXISTS (SELECT 1 FROM inventory.deductions d WHERE d.order_id = o.order_id))`),
    'no cancelled order charged or deducted',
  );
  add(
    'no charge or deduction without its order',
    await query(`SELECT 'charge' AS what, c.order_id FROM payment.captures c WHERE NOT EXISTS (SELECT 1 FROM orders.orders o WHERE o.order_id = c.order_id)
                 UNION ALL
                 SELECT 'deduction', d.order_id FROM inventory.deductions d WHERE NOT EXISTS (SELECT 1 FROM orders.orders o WHERE o.order_id = d.order_id)`),
    'none',
  );
  add(
    'sold and captured totals equal the confirmed orders',
    await query(`SELECT 'sold' AS what, p.sku AS id, p.sold AS ledger, COALESCE(sum(o.quantity), 0) AS orders
                   FROM inventory.products p LEFT JOIN orders.orders o ON o.sku = p.sku AND o.status = 'CONFIRMED'
                  GROUP BY p.sku, p.sold HAVING p.sold <> COALESCE(sum(o.quantity), 0)
                 UNION ALL
                 SELECT 'captured', a.account_id, a.captured, COALESCE(sum(o.amount_cents), 0)
                   FROM payment.accounts a LEFT JOIN orders.orders o ON o.account_id = a.account_id AND o.status = 'CONFIRMED'
                  GROUP BY a.account_id, a.captured HAVING a.captured <> COALESCE(sum(o.amount_cents), 0)`),
    'ledgers match the orders',
  );
  const [count] = await query<{ n: number }>(`SELECT count(*)::int AS n FROM orders.orders`);
  add(
    `every order placed is there (${expectedOrders}) and none is left pending`,
    [
      ...(count!.n === expectedOrders ? [] : [{ orders: count!.n, placed: expectedOrders }]),
      ...(await query(`SELECT order_id, status FROM orders.orders WHERE status NOT IN ('CONFIRMED', 'CANCELLED')`)),
    ],
    'all ended',
  );
  const [funds] = await query<{ n: number }>(`SELECT count(*)::int AS n FROM orders.orders WHERE status = 'CANCELLED' AND reason LIKE '%insufficient funds%'`);
  add(
    'the compensation ran: some orders were cancelled for funds after their stock was taken',
    funds!.n > 0 ? [] : [{ cancelledForFunds: 0 }],
    `${funds!.n} orders`,
  );
  if (!concordat) return checks;
  add(
    'no global transaction left unfinished, each order matches its global transaction',
    await query(`SELECT 'global transaction' AS what, id::text AS id, state FROM concordat.global_transaction WHERE ended_at IS NULL
                 UNION ALL
                 SELECT 'order', o.order_id, g.state FROM orders.orders o LEFT JOIN concordat.global_transaction g ON g.id = o.global_tx_id
                  WHERE g.state IS DISTINCT FROM o.status`),
    'all ended and agree',
  );
  return checks;
}

/**
 * Commands Concordat's coordinator sent again from its timer, from its
 * timeline (`concordat.global_tx_event`, kept 7 days by default): a
 * decision re-sent to branches that had not acknowledged it (RESENT, one
 * command per branch its detail names) and a saga step or compensation
 * tried again after a failure (RETRY_SCHEDULED, one command each).
 */
export async function coordinatorResends(query: Query): Promise<{ resent: number; retried: number }> {
  const rows = await query<{ kind: string; events: number; commands: number }>(`
    SELECT kind, count(*)::int AS events,
           COALESCE(sum(array_length(string_to_array(split_part(detail, '→ branch ', 2), ','), 1)), 0)::int AS commands
      FROM concordat.global_tx_event
     WHERE kind IN ('RESENT', 'RETRY_SCHEDULED')
     GROUP BY kind`);
  const of = (kind: string) => rows.find((r) => r.kind === kind);
  return { resent: of('RESENT')?.commands ?? 0, retried: of('RETRY_SCHEDULED')?.events ?? 0 };
}
