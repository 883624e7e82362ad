import { nonRetriable } from '../../../src/errors.js';
import { Service } from '../../../src/runtime/index.js';
import { Compensate, SagaParticipant, Step, type SagaContext } from '../../../src/transactions/index.js';
import type { StockReservation } from './messages.js';
import { ModeParticipants } from './modes.js';

/**
 * Inventory as a saga step: deducts at once (available → sold, one
 * deduction row); its compensation gives the stock back and removes the
 * deduction, so a cancelled order ends with neither. The fence runs each at
 * most once and never compensates a step that did not run.
 */
@Service('inventory')
@SagaParticipant(ModeParticipants.INVENTORY)
export class InventorySagaService {
  @Step()
  async deduct(context: SagaContext<StockReservation>): Promise<void> {
    const { orderId, sku, quantity } = context.payload;
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

  @Compensate()
  async giveBack(context: SagaContext<StockReservation>): Promise<void> {
    const { orderId, sku, quantity } = context.payload;
    await context.manager.query(`UPDATE inventory.products SET sold = sold - $2, available = available + $2 WHERE sku = $1`, [sku, quantity]);
    await context.manager.query(`DELETE FROM inventory.deductions WHERE order_id = $1 AND global_tx_id = $2`, [orderId, context.globalTxId]);
  }
}
