import { nonRetriable } from '../../../src/errors.js';
import { Service } from '../../../src/runtime/index.js';
import { Cancel, Confirm, TccParticipant, Try, type TccContext } from '../../../src/transactions/index.js';
import { Participants, type PaymentHold } from './messages.js';

/**
 * Money per account: balance + held + captured = initial balance, always.
 * Try holds (balance → held), Confirm captures (held → captured), Cancel
 * releases the hold (held → balance).
 */
@Service('payment')
@TccParticipant(Participants.PAYMENT)
export class PaymentService {
  @Try()
  async hold(context: TccContext<PaymentHold>): Promise<void> {
    const { accountId, amountCents } = context.payload;
    // TypeORM returns [rows, affected] for an UPDATE.
    const [, held]: [unknown[], number] = await context.manager.query(
      `UPDATE payment.accounts SET balance = balance - $2, held = held + $2
        WHERE account_id = $1 AND balance >= $2`,
      [accountId, amountCents],
    );
    if (held === 0) throw nonRetriable(new Error(`insufficient funds in ${accountId} for ${amountCents} cents`));
  }

  @Confirm()
  async capture(context: TccContext<PaymentHold>): Promise<void> {
    const { orderId, accountId, amountCents } = context.payload;
    await context.manager.query(`UPDATE payment.accounts SET held = held - $2, captured = captured + $2 WHERE account_id = $1`, [accountId, amountCents]);
    await context.manager.query(`INSERT INTO payment.captures (order_id, global_tx_id, account_id, amount_cents) VALUES ($1, $2, $3, $4)`, [
      orderId,
      context.globalTxId,
      accountId,
      amountCents,
    ]);
  }

  @Cancel()
  async release(context: TccContext<PaymentHold>): Promise<void> {
    const { accountId, amountCents } = context.payload;
    await context.manager.query(`UPDATE payment.accounts SET held = held - $2, balance = balance + $2 WHERE account_id = $1`, [accountId, amountCents]);
  }
}
