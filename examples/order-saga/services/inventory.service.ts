import { nonRetriable } from '../../../src/errors.js';
import { Service } from '../../../src/runtime/index.js';
import { Cancel, Confirm, TccParticipant, Try, type TccContext } from '../../../src/transactions/index.js';
import { Participants, type StockReservation } from './messages.js';

/**
 * Stock per SKU: available + reserved + sold = initial stock, always.
 * Try reserves (available → reserved), Confirm deducts (reserved → sold),
 * Cancel releases (reserved → available). The fence guarantees each runs at
 * most once per order, and Cancel only after a successful Try.
 */
@Service('inventory')
@TccParticipant(Participants.INVENTORY)
export class InventoryService {
  @Try()
  async reserve(context: TccContext<StockReservation>): Promise<void> {
    const { sku, quantity } = context.payload;
    // TypeORM returns [rows, affected] for an UPDATE.
    const [, reserved]: [unknown[], number] = await context.manager.query(
      `UPDATE inventory.products SET available = available - $2, reserved = reserved + $2
        WHERE sku = $1 AND available >= $2`,
      [sku, quantity],
    );
    if (reserved === 0) throw nonRetriable(new Error(`insufficient stock of ${sku} for ${quantity}`));
  }

  @Confirm()
  async deduct(context: TccContext<StockReservation>): Promise<void> {
    const { orderId, sku, quantity } = context.payload;
    await context.manager.query(`UPDATE inventory.products SET reserved = reserved - $2, sold = sold + $2 WHERE sku = $1`, [sku, quantity]);
    await context.manager.query(`INSERT INTO inventory.deductions (order_id, global_tx_id, sku, quantity) VALUES ($1, $2, $3, $4)`, [
      orderId,
      context.globalTxId,
      sku,
      quantity,
    ]);
  }

  @Cancel()
  async release(context: TccContext<StockReservation>): Promise<void> {
    const { sku, quantity } = context.payload;
    await context.manager.query(`UPDATE inventory.products SET reserved = reserved - $2, available = available + $2 WHERE sku = $1`, [sku, quantity]);
  }
}
