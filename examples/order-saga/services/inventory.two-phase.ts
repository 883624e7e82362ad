import { nonRetriable } from '../../../src/errors.js';
import { Service } from '../../../src/runtime/index.js';
import { Prepare, XaParticipant, type XaContext } from '../../../src/transactions/index.js';
import type { StockReservation } from './messages.js';
import { ModeParticipants } from './modes.js';

/**
 * Inventory as a 2PC participant: the deduction (available → sold, one
 * deduction row) happens in a transaction that is prepared, and becomes
 * real only if the coordinator commits it; a rollback leaves no trace. The
 * prepared transaction holds the product row's lock until then, which is
 * 2PC's price for having no reserved column.
 */
@Service('inventory')
@XaParticipant(ModeParticipants.INVENTORY)
export class InventoryTwoPhaseService {
  @Prepare()
  async deduct(context: XaContext<StockReservation>): Promise<void> {
    const { orderId, sku, quantity } = context.payload;
    // TypeORM returns [rows, affected] for an UPDATE.
    const [, deducted]: [unknown[], number] = await context.manager.query(
      `UPDATE inventory.products SET available = available - $2, sold = sold + $2 WHERE sku = $1 AND available >= $2`,
      [sku, quantity],
    );
    if (deducted === 0) throw nonRetriable(new Error(`insufficient stock of ${sku} for ${quantity}`));
    await context.manager.query(`INSERT INTO inventory.deductions (order_id, global_tx_id, sku, quantity) VALUES ($1, $2, $3, $4)`, [
      orderId,
      context.globalTxId,
      sku,
      quantity,
    ]);
  }
}
