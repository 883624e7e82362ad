import { BranchContext } from '../participant/context.js';

/**
 * What a saga participant's `@Step` and `@Compensate` methods receive: the
 * step's payload, the global transaction and branch IDs, and the delivery's
 * database transaction (`manager`) for the participant's own writes.
 * Messages published from a step that fails are discarded with its writes.
 */
export class SagaContext<P = unknown> extends BranchContext<P> {}
