import { BranchContext } from '../participant/context.js';

/**
 * What a participant's `@Try`, `@Confirm` and `@Cancel` methods receive: the
 * branch payload, the global transaction and branch IDs, and the delivery's
 * database transaction (`manager`) for the participant's own writes.
 *
 * Messages published from a Try that fails are discarded with its writes.
 */
export class TccContext<P = unknown> extends BranchContext<P> {}
