import { nonRetriable } from '../../../src/errors.js';
import { Service } from '../../../src/runtime/index.js';
import { Prepare, XaParticipant, type XaContext } from '../../../src/transactions/index.js';
import type { PaymentHold } from './messages.js';
import { ModeParticipants } from './modes.js';

/**
 * Payment as a 2PC participant: the capture (balance → captured, one
 * capture row) happens in a prepared transaction, committed or rolled back
 * by the coordinator's decision.
 */
@Service('payment')
@XaParticipant(ModeParticipants.PAYMENT)
export class PaymentTwoPhaseService {
  @Prepare()
  async capture(context: XaContext<PaymentHold>): Promise<void> {
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
}
