import { MessageContext } from '../../runtime/index.js';
import type { BranchAction, BranchCommand } from '../coordinator/messages.js';

/**
 * What a participant's methods receive, in every mode: the branch payload,
 * the global transaction and branch IDs, the action, and a database
 * transaction (`manager`) for the participant's own writes.
 */
export class BranchContext<P = unknown> extends MessageContext<BranchCommand<P>> {
  get payload(): P {
    return this.data.payload;
  }

  get globalTxId(): string {
    return this.data.globalTxId;
  }

  get branchId(): number {
    return this.data.branchId;
  }

  get action(): BranchAction {
    return this.data.action;
  }
}
