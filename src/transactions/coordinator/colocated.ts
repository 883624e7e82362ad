/**
 * Coordinators that run in this process, by the database they keep their
 * global transactions in.
 *
 * A participant whose handler runs in a dispatcher transaction on that same
 * database does not need to send its reply through the log to reach the
 * coordinator: the coordinator's transition can be applied in the
 * participant's own transaction, at its end (a {@link CommitStage}). The
 * reply then takes effect exactly when the participant's work commits, with
 * the same exactly-once guarantee the inbox gave the reply message (the
 * participant's inbox row for its command commits with both), and a global
 * transaction costs two messages fewer per branch: no reply to publish,
 * relay, append, fetch and handle in a transaction of its own. A global
 * transaction the database does not hold (begun by a coordinator elsewhere)
 * still gets its reply as a message (see `TransactionCoordinator`).
 *
 * @module
 */

import type { DataSource } from 'typeorm';
import type { CommitStage, TransactionContext } from '../../runtime/index.js';
import type { BranchReply } from './messages.js';

const coordinators = new WeakMap<DataSource, CommitStage<BranchReply>>();

/** Registers the reply stage of a coordinator working on `dataSource` (at its start). */
export function registerColocatedCoordinator(dataSource: DataSource, stage: CommitStage<BranchReply>): void {
  coordinators.set(dataSource, stage);
}

/** Removes it (at the coordinator's stop), if it is still the one registered. */
export function unregisterColocatedCoordinator(dataSource: DataSource, stage: CommitStage<BranchReply>): void {
  if (coordinators.get(dataSource) === stage) coordinators.delete(dataSource);
}

/**
 * Defers `reply` to the co-located coordinator's stage of `context`'s
 * transaction, if there is one for its database and the context belongs to
 * a dispatcher transaction. @returns whether it did (else the caller publishes the reply)
 */
export function deferToColocatedCoordinator(context: TransactionContext, reply: BranchReply): boolean {
  const stages = context.commitStages;
  if (stages === undefined) return false;
  const stage = coordinators.get(context.manager.connection);
  if (stage === undefined) return false;
  stages.defer(stage, reply, context);
  return true;
}
