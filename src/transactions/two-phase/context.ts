import { ConcordatError, ErrorCode } from '../../errors.js';
import type { PublishOptions, Topic } from '../../runtime/index.js';
import { BranchContext } from '../participant/context.js';

/**
 * What a 2PC participant's `@Prepare` method receives: the branch payload,
 * the IDs, and `manager`, the EntityManager of the branch's own connection,
 * whose transaction ends with `PREPARE TRANSACTION` when the method returns.
 * Every write that belongs to the branch goes through `manager` (its
 * repositories and nested `transaction()` calls included: those become
 * savepoints); work on another connection commits on its own and no
 * rollback of the global transaction undoes it.
 *
 * A branch cannot publish: its outbox rows would become visible only at
 * COMMIT PREPARED, possibly in another process after a crash, where no
 * relay is told of them (relays are woken by the commits they see). Publish
 * from a handler of the global transaction's outcome instead.
 */
export class XaContext<P = unknown> extends BranchContext<P> {
  /**
   * Refused: see the class comment.
   * @throws ConcordatError HANDLER_DEFINITION_INVALID, always
   */
  override publish(_topic: string | Topic, _data: unknown, _options?: PublishOptions): string {
    throw new ConcordatError(
      'a 2PC branch cannot publish messages: they would become visible only at COMMIT PREPARED, which no relay hears of; ' +
        'publish from a handler of the global transaction outcome instead',
      { code: ErrorCode.HANDLER_DEFINITION_INVALID },
    );
  }
}
