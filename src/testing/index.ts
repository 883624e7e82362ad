/**
 * `concordat/testing`: the fault-injection kit Concordat's own exactly-once
 * tests use, for proving your handlers under the same faults.
 *
 * - {@link FaultyTransport}: a seam around the real transport — the log
 *   unreachable, a connection dropped mid-batch, a lost acknowledgement,
 *   every record delivered twice, a connection dropped between the handler's
 *   commit and the offset commit.
 * - Fault points inside Concordat ({@link FaultPoint}), armed in process with
 *   {@link armFault} or in a child process with {@link runWithFaults}
 *   (`CONCORDAT_FAULTS`, SIGKILL at the point).
 * - {@link startRestartablePostgres}: an embedded PostgreSQL to stop and
 *   start under a running app.
 * - {@link EffectLedger}: records each handler effect in the handler's
 *   transaction and checks exactly once and per-key order.
 *
 * See docs/testing.md for a walk-through.
 *
 * @module
 */

export { armFault, disarmFaults, faultHits, InjectedFault, type FaultAction } from '../observability/index.js';
export { EffectLedger, type Effect, type LedgerReport } from './effect-ledger.js';
export { FaultyTransport, InjectedTransportFault, type FaultyTransportStats } from './faulty-transport.js';
export {
  faultSpec,
  runWithFaults,
  startRestartablePostgres,
  until,
  type ChildExit,
  type ChildRun,
  type RestartablePostgres,
  type RunWithFaultsOptions,
} from './processes.js';

/** Fault points in Concordat's own code where a test can kill, throw or pause. */
export const FaultPoint = {
  /** The log acknowledged an outbox batch; its rows are not deleted yet. A kill here yields duplicates, never a loss. */
  RELAY_AFTER_PUBLISH: 'relay.after-publish',
  /** A handler's transaction (effects, inbox row, outgoing messages) committed; the offset is not committed yet. A kill here yields a redelivery the inbox skips. */
  DISPATCHER_AFTER_COMMIT: 'dispatcher.after-commit',
} as const;
/** One of the {@link FaultPoint} values. */
export type FaultPoint = (typeof FaultPoint)[keyof typeof FaultPoint];
