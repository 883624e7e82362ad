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
  /** The branch's payload, as given at begin (validated and typed when the participant is a definition). */
  get payload(): ParticipantPayload<P> {
    return this.data.payload;
  }

  /** The global transaction's ID (a UUIDv7). */
  get globalTxId(): string {
    return this.data.globalTxId;
  }

  /** The branch's number within its global transaction: 1 for the first branch (or saga step) given at begin, in order. */
  get branchId(): number {
    return this.data.branchId;
  }

  /** The command this delivery carries (try, confirm, cancel, prepare, commit, rollback, execute, compensate). */
  get action(): BranchAction {
    return this.data.action;
  }
}
