/*
 * The global-transaction coordinator service: its reply handler, its scans (deadlines, resends, cleanup) and its
 * co-located replies; the state machine itself is protocol.ts. One concept.
 */
import { inject, optional } from 'inversify';
import { compileCoordinatorOptions, type CompiledCoordinatorOptions, type CoordinatorOptions } from '../../config/index.js';
import { describeError } from '../../errors.js';
import { createLogger, faultPoint, type Logger } from '../../observability/index.js';
import { quoteLiteral, runOutboxTransaction } from '../../outbox/index.js';
import {
  defineMessageHandler,
  MessageContext,
  Service,
  Tokens,
  type CommitStage,
  type ConcordatApp,
  type Deferred,
  type StageResult,
  type OnApplicationStart,
  type OnApplicationStop,
} from '../../runtime/index.js';
import { cleanupFences, cleanupHistory } from './cleanup.js';
import { driveGlobalTxs, planGlobalTxs, presumeAbort } from './driver.js';
import { GroupCommit } from './group-commit.js';
import { BranchAction, REPLY_TOPIC, type BranchReply } from './messages.js';
import type { Timing, Transition, TxInput } from './protocol.js';
import type { EntityManager } from 'typeorm';
import { TxEventKind, TxMode } from './states.js';
import { claimDue, inboxAndLockSql, isGlobalTxId, lockGlobalTxs, parseInboxAndLock, transitionsSql, type DueKind } from './store.js';
import { registerColocatedCoordinator, unregisterColocatedCoordinator } from './colocated.js';
import { txMetrics, withModes, type ModeStep } from './metrics.js';
import { publishReply } from '../participant/reply.js';

/** Service name (and consumer group) of the coordinator. */
export const COORDINATOR_SERVICE = 'concordat-coordinator';

/** inversify token for the coordinator's {@link CoordinatorOptions} (`config/coordinator-options.ts`). */
export const COORDINATOR_OPTIONS = Symbol.for('concordat.CoordinatorOptions');

/** The state machine's {@link Timing} from compiled options (the coordinator's and the operator commands'). */
export function timingOf(options: CompiledCoordinatorOptions): Timing {
  return {
    resendIntervalMs: options.resendIntervalMs,
    resendIntervalMaxMs: options.resendIntervalMaxMs,
    decisionResendsMax: options.decisionResendsMax,
    random: Math.random,
  };
}

/**
 * Named fault points of the coordinator (see `observability/fault-points.ts`):
 * - `coordinator.before-decide`: a decision is taken but not committed (written, or, for a co-located reply, about to be written with the participant's `COMMIT`);
 * - `coordinator.after-decide`: a decision and its commands are committed, the reply's offset is not;
 * - `coordinator.after-reply`: a reply that decided nothing is committed;
 * - `coordinator.after-end`: the end of a global transaction (and its outcome message) is committed;
 * - `coordinator.after-timeout`: a scan committed decisions taken at deadlines;
 * - `coordinator.after-resend`: a scan committed commands sent again.
 */
export const CoordinatorFault = {
  BEFORE_DECIDE: 'coordinator.before-decide',
  AFTER_DECIDE: 'coordinator.after-decide',
  AFTER_REPLY: 'coordinator.after-reply',
  AFTER_END: 'coordinator.after-end',
  AFTER_TIMEOUT: 'coordinator.after-timeout',
  AFTER_RESEND: 'coordinator.after-resend',
} as const;

/**
 * The global transaction coordinator, as a service: add it to the `services`
 * of the app (or apps) that should drive global transactions. The state
 * machine is `protocol.ts`; this class feeds it replies (from
 * `concordat.tx.replies`), deadlines and resends (from a scan on the
 * database clock), and runs the batched cleanup.
 *
 * Each step runs in one database transaction with the reply it consumed
 * (inbox row) and the commands it sends (outbox rows), so it happens once,
 * and a coordinator that crashes resumes from its tables: decided
 * transactions are sent their decision again by the resend scan, undecided
 * ones are cancelled by the deadline scan.
 *
 * Several instances share the work without driving one transaction twice:
 * - replies are keyed by the global transaction ID, so all replies of one
 *   transaction are in one partition of `concordat.tx.replies`, which the
 *   consumer group gives to one instance at a time;
 * - every step locks the global transaction row (`FOR UPDATE`) and decides
 *   from the state it reads under the lock, so even two instances holding
 *   the same partition during a rebalance, or a reply racing a scan, apply
 *   their steps one after the other and the second sees the first's result;
 * - the inbox row `(concordat-coordinator, reply ID)` makes a reply that two
 *   instances both received count once (the second blocks on the first's
 *   uncommitted row, then skips);
 * - scans claim due rows with `FOR UPDATE SKIP LOCKED`, so two scans never
 *   pick the same row, and a scan never waits for a reply in progress.
 */
@Service(COORDINATOR_SERVICE)
export class TransactionCoordinator implements OnApplicationStart, OnApplicationStop {
  readonly options: CompiledCoordinatorOptions;
  private readonly logger: Logger;
  private readonly timing: Timing;
  private timer: NodeJS.Timeout | undefined;
  private scanning: Promise<void> | undefined;
  private stopped = true;
  private lastCleanupMs = 0;
  private detachMetrics: (() => void) | undefined;
  private readonly replies: GroupCommit<MessageContext<BranchReply>, Transition | undefined>;
  /** Replies of participants that run in this process on this database, applied in their own transactions (`colocated.ts`). */
  private readonly colocatedReplies: CommitStage<BranchReply> = { beforeCommit: (manager, items) => this.applyColocatedReplies(manager, items) };

  constructor(
    @inject(Tokens.App) private readonly app: ConcordatApp,
    @inject(COORDINATOR_OPTIONS) @optional() options?: CoordinatorOptions,
  ) {
    // A child of the app's root logger: the user's, when `AppOptions.logger` gave one.
    this.logger = createLogger('coordinator', {}, app.logger);
    this.options = compileCoordinatorOptions(options ?? {});
    this.replies = new GroupCommit((batch) => this.handleReplies(batch), this.options.replyBatchMax);
    this.timing = timingOf(this.options);
  }

  /**
   * One reply (the handler of `concordat.tx.replies`, registered below the
   * class). Replies arriving together share one database transaction:
   * `BEGIN` with their inbox rows and the locked global transactions in one
   * round trip, every transition in one statement, the commands with
   * `COMMIT` in one (see `group-commit.ts`). "Together": the batch the
   * transport delivered from one partition ({@link onReplies}), and what
   * other partitions delivered while a transaction was in flight. The
   * handler is not `transactional` for that, and so that the fault points
   * after the commit sit where a crash is interesting (decided, not yet
   * told). It resolves after the commit; the offset is committed after.
   */
  async onReply(message: MessageContext<BranchReply>): Promise<void> {
    await this.replies.submit(message);
  }

  /** A batch of replies of one partition, queued for the group commit at once. */
  async onReplies(messages: Array<MessageContext<BranchReply>>): Promise<void> {
    await Promise.all(this.replies.submitAll(messages));
  }

  /** Handles a batch of replies in one transaction. @returns the transition of each (undefined: a duplicate or an unknown transaction). */
  private async handleReplies(batch: Array<MessageContext<BranchReply>>): Promise<Array<Transition | undefined>> {
    const consumer = batch[0]!.delivery.consumer;
    let committed: ModeStep[] = [];
    const results = await runOutboxTransaction(
      this.app.dataSource,
      async ({ manager, preludeResults }) => {
        const { claim, txs } = parseInboxAndLock(preludeResults);
        const contexts = new Map<string, MessageContext<BranchReply>>();
        for (const message of batch) {
          // take: a reply delivered twice in one batch runs once.
          if (claim.take(message.message.id)) {
            const context = new MessageContext(manager, message.source, message.message, message.delivery);
            // The reply's process span: the step it drives is its child (see tracing.ts).
            context.traceContext = message.traceContext;
            contexts.set(message.message.id, context);
          }
        }
        const items = [...contexts.values()].map((context) => ({
          id: context.data.globalTxId,
          input: { kind: 'reply', reply: context.data } as const,
          context,
        }));
        const steps = await driveGlobalTxs(manager, items, this.timing, txs);
        committed = withModes(
          items.map((item) => item.id),
          steps,
          txs,
        );
        steps.forEach((step, i) => {
          if (step === undefined) this.onUnknown(items[i]!.context, items[i]!.context.data);
        });
        if (steps.some((step) => step !== undefined && decided(step))) await faultPoint(CoordinatorFault.BEFORE_DECIDE);
        const byId = new Map(items.map((item, i) => [item.context.message.id, steps[i]]));
        return { result: batch.map((message) => byId.get(message.message.id)), records: items.flatMap((item) => item.context.takeRecords()) };
      },
      {
        prelude: (escape) =>
          inboxAndLockSql(
            consumer,
            batch.map((message) => message.message.id),
            batch.map((message) => message.data.globalTxId),
            escape,
          ),
      },
    );
    txMetrics().committed(committed);
    await this.repliesCommitted(results.filter((step): step is Transition => step !== undefined));
    return results;
  }

  /**
   * The stage of a co-located participant's transaction (see `colocated.ts`):
   * locks the global transactions its replies are for, in ID order, all at
   * once (so that two participants' transactions cannot deadlock on them),
   * and drives each the way a reply message would. A reply for a global
   * transaction this database does not hold is published as a message
   * instead, for whichever coordinator consumes replies to decide on it
   * (presumed abort, see `onUnknown`). Commands go out through the
   * participant's message context, in its transaction.
   */
  private async applyColocatedReplies(manager: EntityManager, items: ReadonlyArray<Deferred<BranchReply>>): Promise<StageResult> {
    const states = await lockGlobalTxs(
      manager,
      items.map(({ item }) => item.globalTxId),
    );
    const known: Array<Deferred<BranchReply>> = [];
    for (const deferred of items) {
      if (states.has(deferred.item.globalTxId)) known.push(deferred);
      else publishReply(deferred.context, deferred.item);
    }
    const { results, writes } = planGlobalTxs(
      known.map(({ item, context }) => ({ id: item.globalTxId, input: { kind: 'reply', reply: item } as const, context })),
      this.timing,
      states,
    );
    const done = results.filter((step): step is Transition => step !== undefined);
    if (done.some(decided)) await faultPoint(CoordinatorFault.BEFORE_DECIDE);
    // The transitions travel with the COMMIT: the locked rows are held one round trip less.
    const sql = transitionsSql(writes, quoteLiteral);
    const committed = withModes(
      known.map(({ item }) => item.globalTxId),
      results,
      states,
    );
    const afterCommit = (): Promise<void> => {
      txMetrics().committed(committed);
      return this.repliesCommitted(done);
    };
    return { ...(sql !== undefined && { commitStatements: [sql] }), afterCommit };
  }

  /** After a commit that applied replies: logs, and the fault points it passed. */
  private async repliesCommitted(steps: readonly Transition[]): Promise<void> {
    this.logSteps(steps);
    // Every point the batch passed, not only the furthest: with batched
    // delivery one commit often holds a first vote and another transaction's
    // decision, and a crash there is a crash after either.
    if (steps.some((step) => !step.ended && !decided(step))) await faultPoint(CoordinatorFault.AFTER_REPLY);
    if (steps.some((step) => !step.ended && decided(step))) await faultPoint(CoordinatorFault.AFTER_DECIDE);
    if (steps.some((step) => step.ended)) await faultPoint(CoordinatorFault.AFTER_END);
  }

  /** Starts the deadline and resend scans and takes co-located replies; warns when `fenceRetentionMs` is shorter than the inbox's dedup window. */
  onApplicationStart(): void {
    const dedupWindowMs = this.app.dedupWindow.windowMs;
    const warning = fenceRetentionWarning(this.options.fenceRetentionMs, dedupWindowMs, this.app.name);
    if (warning !== undefined)
      this.logger.warn(
        { fenceRetentionMs: this.options.fenceRetentionMs, dedupWindowMs: Number.isFinite(dedupWindowMs) ? dedupWindowMs : 'Infinity' },
        warning,
      );
    this.stopped = false;
    registerColocatedCoordinator(this.app.dataSource, this.colocatedReplies);
    this.detachMetrics = txMetrics().attachStates(this.app.dataSource);
    this.schedule();
  }

  /** Stops the scans (the scan in flight finishes) and stops taking co-located replies. */
  async onApplicationStop(): Promise<void> {
    this.stopped = true;
    unregisterColocatedCoordinator(this.app.dataSource, this.colocatedReplies);
    this.detachMetrics?.();
    clearTimeout(this.timer);
    await this.scanning;
  }

  /** One scan: cancel what passed its deadline, send again what is due, clean up when it is time. Exposed for tests and tools. */
  async scan(): Promise<void> {
    await this.scanDue('deadline', { kind: 'deadline' }, CoordinatorFault.AFTER_TIMEOUT);
    await this.scanDue('resend', { kind: 'resend' }, CoordinatorFault.AFTER_RESEND);
    if (this.options.cleanupIntervalMs > 0 && Date.now() - this.lastCleanupMs >= this.options.cleanupIntervalMs) {
      this.lastCleanupMs = Date.now();
      await this.cleanup();
    }
  }

  /** Deletes old fence rows and ended global transactions, in batches. @returns what was deleted */
  async cleanup(): Promise<{ fences: number; transactions: number }> {
    const limits = { batchRowsMax: this.options.cleanupBatchRows, batchesMax: 100 };
    const fences = await cleanupFences(this.app.dataSource, this.options.fenceRetentionMs, limits);
    const transactions = await cleanupHistory(this.app.dataSource, this.options.historyRetentionMs, limits);
    if (fences + transactions > 0) this.logger.info({ fences, transactions }, 'cleaned up ended global transactions');
    return { fences, transactions };
  }

  private async scanDue(kind: DueKind, input: TxInput, point: string): Promise<void> {
    let committed: ModeStep[] = [];
    const steps = await this.app.transaction(async (context) => {
      const ids = await claimDue(context.manager, kind, this.options.scanBatchMax);
      const states = await lockGlobalTxs(context.manager, ids);
      const results = await driveGlobalTxs(
        context.manager,
        ids.map((id) => ({ id, input, context })),
        this.timing,
        states,
      );
      committed = withModes(ids, results, states);
      const done = results.filter((step): step is Transition => step !== undefined);
      if (done.some(decided)) await faultPoint(CoordinatorFault.BEFORE_DECIDE);
      return done;
    });
    txMetrics().committed(committed);
    this.logSteps(steps);
    if (steps.length > 0) await faultPoint(point);
  }

  private logSteps(steps: readonly Transition[]): void {
    for (const step of steps) {
      if (step.events.some((e) => e.kind === TxEventKind.BRANCH_FAILED)) {
        this.logger.error({ events: step.events }, 'a branch could not finish; an operator must look (concordat tx show)');
      }
      if (step.ended && step.tx?.state === 'FAILED') this.logger.error({ reason: step.tx.reason }, 'global transaction FAILED');
    }
  }

  /**
   * A reply for a global transaction this database does not hold. A yes to
   * phase one means the branch holds something that nobody would ever
   * release — a TCC reservation, a 2PC prepared transaction and its locks, a
   * saga step's effect: presumed abort, the branch is told to roll back
   * (Cancel, rollback, the step's compensation; see `presumeAbort`).
   *
   * A saga step is compensated only when its ok says the step ran in that
   * delivery (not `repeated`) and echoes the payload the compensation needs.
   * Why not a repeated ok: saga participants are never told that their saga
   * ended CONFIRMED (sagas have no commit action), so the fence of a step of
   * a confirmed saga holds TRIED, the same as a step that nobody decided on.
   * If that saga's history was cleaned up and the step is delivered again,
   * the fence answers it as a duplicate (`repeated`), and a compensation sent
   * for it would undo a confirmed step. A step that did run in the delivery
   * inserted its fence row just then: either no saga this database held ever
   * counted it, or its earlier run's fence row was cleaned up with its
   * history, so it ran twice; either way undoing this run leaves the confirmed
   * effect, if any, as it was. The compensation then finds that fence row
   * TRIED and undoes it once (a redelivered step is refused after it).
   * What this does not cover: the first (not repeated) ok of a confirmed
   * saga's step redelivered to the coordinator itself after its inbox row
   * and the saga's history were both deleted — the inbox window must exceed
   * the log's redelivery horizon for that not to happen.
   */
  private onUnknown(context: MessageContext, reply: BranchReply): void {
    const about = { globalTxId: reply.globalTxId, branchId: reply.branchId, participant: reply.participant, action: reply.action, ok: reply.ok };
    const mode =
      reply.action === BranchAction.PREPARE
        ? TxMode.TWO_PHASE
        : reply.action === BranchAction.TRY
          ? TxMode.TCC
          : reply.action === BranchAction.EXECUTE && reply.repeated !== true && reply.payload !== undefined
            ? TxMode.SAGA
            : undefined;
    const answerable = reply.ok && reply.participant !== undefined && isGlobalTxId(reply.globalTxId) && Number.isSafeInteger(reply.branchId);
    if (mode === TxMode.TCC && answerable && reply.payload === undefined) {
      // A participant of a version that does not echo the payload: a Cancel would reach @Cancel with none to release.
      this.logger.error(
        about,
        'a tried TCC branch of an unknown global transaction, but its yes carries no payload (a participant not yet upgraded?): ' +
          'it cannot be cancelled automatically and its reservation stays; an operator must release it by hand ' +
          "(what the participant's @Cancel would do) and set its fence row (concordat.fence) to CANCELLED",
      );
      return;
    }
    if (mode !== undefined && answerable) {
      const payload = mode === TxMode.TWO_PHASE ? null : reply.payload;
      presumeAbort(context, mode, { globalTxId: reply.globalTxId, branchId: reply.branchId, participant: reply.participant!, payload }, context.message.id);
      this.logger.warn(about, PRESUMED_ABORT[mode]);
      return;
    }
    if (reply.action === BranchAction.COMPENSATE && !reply.ok) {
      // Nobody sends it again: the step's effect stays until an operator undoes it.
      this.logger.error({ ...about, error: reply.error }, 'the compensation of a step of an unknown saga failed; its effect stays, an operator must look');
      return;
    }
    this.logger.warn(about, 'reply for an unknown global transaction; ignored');
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.scanning = this.scan()
        .catch((error: unknown) => this.logger.warn({ err: describeError(error) }, 'coordinator scan failed; will retry'))
        .finally(() => {
          this.scanning = undefined;
          this.schedule();
        });
    }, this.options.scanIntervalMs);
  }
}

defineMessageHandler(TransactionCoordinator, {
  topic: REPLY_TOPIC,
  methodName: 'onReply',
  options: { retry: { maxAttempts: 10 }, transactional: false },
  invoke: (instance, context) => (instance as TransactionCoordinator).onReply(context as MessageContext<BranchReply>),
  invokeBatch: (instance, contexts) => (instance as TransactionCoordinator).onReplies(contexts as Array<MessageContext<BranchReply>>),
});

const PRESUMED_ABORT: Readonly<Record<TxMode, string>> = {
  [TxMode.TCC]: 'a tried TCC branch of an unknown global transaction: presumed abort, Cancel sent',
  [TxMode.TWO_PHASE]: 'a prepared branch of an unknown global transaction: presumed abort, rollback sent',
  [TxMode.SAGA]: 'a saga step that ran for an unknown saga: presumed abort, its compensation sent',
};

/**
 * Why the coordinator warns at start, or undefined: `fenceRetentionMs` is
 * shorter than the app's inbox dedup window. A fence row must outlive any
 * redelivery the inbox could still dedup: the inbox keeps a command's ID
 * (say, the Cancel that found no Try) for its window, and once the fence row
 * is gone a late Try reserves again while commands with IDs the inbox still
 * holds are skipped. Coordinator and participants share the database (and
 * the fence cleanup), so the coordinator's app's window is the one checked.
 */
export function fenceRetentionWarning(fenceRetentionMs: number, dedupWindowMs: number, appName: string): string | undefined {
  if (fenceRetentionMs >= dedupWindowMs) return undefined;
  const window = dedupWindowMs === Infinity ? 'Infinity (inbox rows kept for ever)' : `${dedupWindowMs} ms`;
  const fix =
    dedupWindowMs === Infinity
      ? 'bound the window (inbox.dedupWindowMs, which the log retention of the consumed topics must allow) to at most fenceRetentionMs'
      : `raise fenceRetentionMs (COORDINATOR_OPTIONS) to at least ${dedupWindowMs} (historyRetentionMs with it), or lower inbox.dedupWindowMs`;
  return (
    `coordinator option fenceRetentionMs (${fenceRetentionMs} ms) is shorter than the inbox dedup window of app '${appName}' ` +
    `(inbox.dedupWindowMs: ${window}): a fence row must outlive any redelivery the inbox could still dedup, or a command ` +
    `delivered late (a Try after its Cancel) can reserve what nobody releases; ${fix}`
  );
}

function decided(step: Transition): boolean {
  return step.events.some((e) => e.kind === TxEventKind.DECIDED);
}
