import { nonRetriable } from '../../../src/errors.js';
import { Service } from '../../../src/runtime/index.js';
import { Compensate, SagaParticipant, Step, type SagaContext } from '../../../src/transactions/index.js';
import type { PaymentHold } from './messages.js';
import { ModeParticipants } from './modes.js';

/**
 * Payment as the last saga step: captures at once (balance → captured, one
 * capture row). Insufficient funds fails the step for good, and the saga
 * compensates inventory. Its compensation (a refund) runs only if a later
 * step could fail or the deadline passes while it is in flight.
 */
@Service('payment')
@SagaParticipant(ModeParticipants.PAYMENT)
export class PaymentSagaService {
  @Step()
  async capture(context: SagaContext<PaymentHold>): Promise<void> {
    const { orderId, accountId, amountCents } = context.payload;
    const [, captured]: [unknown[], number] = await context.manager.query(
      `UPDATE payment.accounts SET balance = balance - $2, captured = captured + $2 WHERE account_id = $1 AND balance >= $2`,
      [accountId, amountCents],
    );
    if (captured === 0) throw nonRetriable(new Error(`insufficient funds in ${accountId} for ${amountCents} cents`));
    await context.manager.query(`INSERT INTO payment.captures (order_id, global_tx_id, account_id, amount_cents) VALUES ($1, $2, $3, $4)`, [
      orderId,
      context.globalTxId,
      accountId,
      amountCents,
    ]);
  }

  @Compensate()
  async refund(context: SagaContext<PaymentHold>): Promise<void> {
    const { orderId, accountId, amountCents } = context.payload;
    await context.manager.query(`UPDATE payment.accounts SET captured = captured - $2, balance = balance + $2 WHERE account_id = $1`, [accountId, amountCents]);
    await context.manager.query(`DELETE FROM payment.captures WHERE order_id = $1 AND global_tx_id = $2`, [orderId, context.globalTxId]);
  }
}
