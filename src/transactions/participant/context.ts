import { MessageContext } from '../../runtime/index.js';
import type { BranchAction, BranchCommand } from '../coordinator/messages.js';
import type { ParticipantPayload } from './definition.js';

/**
 * What a participant's methods receive, in every mode: the branch payload,
 * the global transaction and branch IDs, the action, and a database
 * transaction (`manager`) for the participant's own writes.
 *
 * `P` is the payload type, or a participant definition (`typeof inventory`,
 * see `defineParticipant`), whose schema's output is then the payload type.
 */
export class BranchContext<P = unknown> extends MessageContext<BranchCommand<ParticipantPayload<P>>> {
  get payload(): ParticipantPayload<P> {
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
