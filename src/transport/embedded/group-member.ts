import { ConcordatError, ErrorCode } from '../../errors.js';
import type { CompiledEmbeddedTransportOptions } from '../../config/index.js';
import {
  CONSUMER_PROTOCOL_TYPE,
  decodeAssignment,
  decodeSubscription,
  encodeAssignment,
  encodeSubscription,
  RangeAssignor,
  RoundRobinAssignor,
  type GroupCoordinator,
  type LogManager,
  type PartitionAssignor,
  type TopicPartitions,
} from '../../log/index.js';
import { faultPoint, type Logger } from '../../observability/index.js';
import { CONSUMER_STALLED_FAILURES, type SubscribeOptions, type Subscription } from '../transport.js';
import { reportConsumerFailure, type ChunkDelivery } from '../delivery.js';
import { transportClosed } from './errors.js';
import { PartitionWorker, type WorkerGeneration } from './partition-worker.js';
import { sleep } from '../../util/index.js';
import { restartBackoffMs } from './supervision.js';

const ASSIGNORS: Readonly<Record<'range' | 'roundrobin', PartitionAssignor>> = {
  range: new RangeAssignor(),
  roundrobin: new RoundRobinAssignor(),
};

/** The group moved on: the member rejoins (with a fresh member ID after UNKNOWN_MEMBER_ID), as Kafka's clients do. */
const REJOIN_CODES: ReadonlySet<string> = new Set([ErrorCode.UNKNOWN_MEMBER_ID, ErrorCode.ILLEGAL_GENERATION, ErrorCode.REBALANCE_IN_PROGRESS]);

/**
 * Refusals of the group coordinator that a configuration mistake causes and
 * that do not heal by themselves (the subscription's settings, the log's
 * groups limits, members of one group offering different assignors).
 */
const PERMANENT_CODES: ReadonlySet<string> = new Set([
  ErrorCode.INVALID_SESSION_TIMEOUT,
  ErrorCode.INCONSISTENT_GROUP_PROTOCOL,
  ErrorCode.INVALID_GROUP_ID,
  ErrorCode.GROUP_MAX_SIZE_REACHED,
  ErrorCode.UNSUPPORTED_VERSION,
]);

/** Why the member stopped waiting in its heartbeat loop. */
type WakeReason = 'rebalance' | 'close' | 'tick';

/**
 * One consumer-group member: the join/sync/heartbeat cycle, and the
 * partition workers of its current assignment.
 *
 * The cycle never ends on its own while the subscription is open (a member
 * that stopped would leave the app looking healthy and consuming nothing).
 * On any failure of joining, syncing or heartbeating, the member first stops
 * its workers, as a rebalance does (handlers in flight finish, positions
 * are committed), then:
 * - the group moved on (REBALANCE_IN_PROGRESS, ILLEGAL_GENERATION,
 *   UNKNOWN_MEMBER_ID — the last with a fresh member ID): it rejoins at
 *   once, logged at info and not reported, as Kafka's clients do; the same
 *   again before an assignment counts as a failure (below);
 * - a refusal that cannot heal by itself, a configuration mistake
 *   (INVALID_SESSION_TIMEOUT, INCONSISTENT_GROUP_PROTOCOL, INVALID_GROUP_ID,
 *   GROUP_MAX_SIZE_REACHED, UNSUPPORTED_VERSION; the embedded coordinator
 *   has no authorization, so no authorization failure): before the first
 *   assignment `subscribe` rejects with it; after that it is logged at error
 *   and reported `stalled` from the first time, and the member rejoins at
 *   the capped backoff for as long as the subscription is open — as the
 *   kafkajs transport keeps replacing a crashed consumer: the app holding
 *   the subscription learns of it through `onConsumerFailure` and the error
 *   log, and a member that stopped instead could only be told apart from a
 *   healthy one by those same two channels;
 * - anything else (the coordinator not available, a group being removed,
 *   the groups limit, an unexpected throw): logged at warn, at error from
 *   CONSUMER_STALLED_FAILURES consecutive failures (then reported
 *   `stalled`), reported, and the member rejoins after a backoff.
 * Reports name the group only (no topic, partition or offset: the failure is
 * the member's, not a partition's). The backoff doubles from
 * `retryBackoffMs` up to the lower of `retryBackoffMaxMs` and 30 s; closing
 * ends it at once. `failures` counts consecutive failures and restarts
 * after a successful heartbeat. The log closed (the coordinator answering
 * COORDINATOR_NOT_AVAILABLE because it is closed) ends the member, logged at
 * warn, as it ends the workers.
 *
 * Concurrency: one member loop per subscription; its partition workers run
 * beside it, each committing under the generation it was started in (the
 * member stops them before it joins again), and call {@link requestRejoin}
 * from anywhere. `close` may overlap everything, also itself: every call
 * waits for the one stop.
 */
export class EmbeddedSubscription implements Subscription {
  readonly groupId: string;
  private memberId = '';
  private generationId = -1;
  private readonly workers = new Map<string, PartitionWorker>();
  private closing = false;
  private running: Promise<void> | null = null;
  private wake: ((reason: WakeReason) => void) | null = null;
  private rebalanceHint = false;
  private unlisten: (() => void) | null = null;
  private firstAssignment: { resolve: () => void; reject: (error: unknown) => void } | null = null;
  /** Ends a backoff between membership failures when the subscription closes. */
  private readonly abort = new AbortController();
  /** Consecutive membership failures since the last successful heartbeat, for the backoff and the stalled report. */
  private failures = 0;
  /** Rejoins at once (the group moved on) since the last assignment; a second in a row counts as a failure. */
  private rejoins = 0;

  constructor(
    private readonly logManager: LogManager,
    private readonly options: SubscribeOptions,
    private readonly delivery: ChunkDelivery,
    private readonly settings: CompiledEmbeddedTransportOptions,
    private readonly logger: Logger,
    private readonly onClosed: () => void,
  ) {
    this.groupId = options.groupId;
  }

  private get coordinator(): GroupCoordinator {
    return this.logManager.groups;
  }

  /** Starts the member; resolves after the first successful join and sync. */
  start(): Promise<void> {
    const first = new Promise<void>((resolve, reject) => {
      this.firstAssignment = { resolve, reject };
    });
    this.unlisten = this.coordinator.onRebalance(this.groupId, () => {
      this.rebalanceHint = true;
      this.wake?.('rebalance');
    });
    this.running = this.run();
    return first;
  }

  /** Stops the workers (in-flight handlers finish, offsets are committed), leaves the group. Idempotent. */
  async close(): Promise<void> {
    if (this.closing) {
      await this.running;
      return;
    }
    this.closing = true;
    this.abort.abort();
    this.wake?.('close');
    await this.running;
    this.onClosed();
  }

  private async run(): Promise<void> {
    while (!this.closing) {
      try {
        this.rebalanceHint = false;
        await this.joinAndSync();
        this.rejoins = 0;
        this.firstAssignment?.resolve();
        this.firstAssignment = null;
        await this.heartbeatUntilRebalance();
      } catch (error) {
        if (this.closing) break;
        // As a rebalance would: the workers finish their handlers and commit (under the generation they had) before anything else.
        await this.stopWorkers();
        const next = await this.membershipFailed(error);
        if (next === 'stop') break;
        if (next > 0) await sleep(next, this.abort.signal);
        continue;
      }
      await this.stopWorkers();
    }
    await this.stopWorkers();
    this.unlisten?.();
    await this.leave();
    this.firstAssignment?.reject(transportClosed());
  }

  /**
   * Decides what follows a failure of joining, syncing or heartbeating (the
   * workers are already stopped): 'stop' (the log is closed; or, before the
   * first assignment, a refusal that cannot heal, which fails `subscribe`),
   * 0 (rejoin at once: the group moved on), or a backoff in ms before
   * rejoining, after logging and reporting the failure.
   */
  private async membershipFailed(error: unknown): Promise<'stop' | number> {
    const code = error instanceof ConcordatError ? error.code : null;
    const { groupId } = this;
    if (code === ErrorCode.LOG_CLOSED || (code === ErrorCode.COORDINATOR_NOT_AVAILABLE && (await this.coordinatorClosed()))) {
      this.logger.warn({ groupId, err: error }, 'consumer stopped: the log is closed');
      this.firstAssignment?.reject(error);
      this.firstAssignment = null;
      return 'stop';
    }
    if (code === ErrorCode.UNKNOWN_MEMBER_ID) this.memberId = '';
    if (code !== null && REJOIN_CODES.has(code) && this.rejoins === 0) {
      this.rejoins += 1;
      this.logger.info({ groupId, err: error }, 'the group moved on; rejoining');
      return 0;
    }
    const permanent = code !== null && PERMANENT_CODES.has(code);
    if (permanent && this.firstAssignment !== null) {
      this.logger.error({ groupId, err: error }, 'consumer failed: the group coordinator refused it');
      this.firstAssignment.reject(error);
      this.firstAssignment = null;
      return 'stop';
    }
    this.failures += 1;
    const failures = this.failures;
    const stalled = permanent || failures >= CONSUMER_STALLED_FAILURES;
    const retryInMs = restartBackoffMs(this.settings.consumer, permanent ? Infinity : failures);
    const fields = { groupId, memberId: this.memberId, generationId: this.generationId, failures, stalled, retryInMs, err: error };
    if (permanent)
      this.logger.error(fields, 'consumer stalled: the group coordinator refuses it and it cannot heal by itself; rejoining at the capped backoff');
    else if (stalled) this.logger.error(fields, 'consumer stalled: its group membership keeps failing; rejoining after a backoff');
    else this.logger.warn(fields, 'group membership failed; rejoining after a backoff');
    reportConsumerFailure(this.options, this.logger, { groupId, failures, stalled, retryInMs, error });
    return retryInMs;
  }

  /** Whether the coordinator is closed (the log closing): it then answers every request COORDINATOR_NOT_AVAILABLE. */
  private async coordinatorClosed(): Promise<boolean> {
    try {
      await this.coordinator.fetchOffsets({ groupId: this.groupId, topics: [] });
      return false;
    } catch (error) {
      return error instanceof ConcordatError && (error.code === ErrorCode.COORDINATOR_NOT_AVAILABLE || error.code === ErrorCode.LOG_CLOSED);
    }
  }

  private async joinAndSync(): Promise<void> {
    await faultPoint('embedded.before-join');
    const consumer = this.settings.consumer;
    const metadata = encodeSubscription({ topics: this.options.topics });
    const joined = await this.coordinator.joinGroup({
      groupId: this.groupId,
      memberId: this.memberId,
      protocolType: CONSUMER_PROTOCOL_TYPE,
      protocols: consumer.assignors.map((name) => ({ name, metadata })),
      sessionTimeoutMs: consumer.sessionTimeoutMs,
      rebalanceTimeoutMs: consumer.rebalanceTimeoutMs,
      clientId: this.settings.clientId,
      clientHost: 'in-process',
    });
    this.memberId = joined.memberId;
    this.generationId = joined.generationId;
    const assignments = joined.leader === joined.memberId ? this.assign(joined.protocolName!, joined.members) : [];
    const synced = await this.coordinator.syncGroup({
      groupId: this.groupId,
      generationId: this.generationId,
      memberId: this.memberId,
      assignments,
    });
    const assigned = decodeAssignment(synced.assignment).assignedPartitions;
    this.logger.debug({ groupId: this.groupId, memberId: this.memberId, generationId: this.generationId, assigned }, 'assigned');
    this.startWorkers(assigned);
  }

  /** The leader's part: run the chosen assignor over the members' subscriptions. */
  private assign(protocolName: string, members: { memberId: string; metadata: Buffer }[]): { memberId: string; assignment: Buffer }[] {
    const assignor = ASSIGNORS[protocolName as 'range' | 'roundrobin'];
    if (assignor === undefined) throw new Error(`the group chose protocol ${protocolName}, which this member did not offer`);
    const subscribed = members.map((m) => ({ memberId: m.memberId, subscription: decodeSubscription(m.metadata) }));
    const partitionsPerTopic = new Map<string, number>();
    for (const { subscription } of subscribed) {
      for (const topic of subscription.topics) {
        const count = this.logManager.partitionCount(topic);
        if (count !== undefined) partitionsPerTopic.set(topic, count);
      }
    }
    const plan = assignor.assign(subscribed, partitionsPerTopic);
    return [...plan].map(([memberId, assignedPartitions]) => ({ memberId, assignment: encodeAssignment({ assignedPartitions }) }));
  }

  /** Heartbeats until the group rebalances (or this member must rejoin) or the subscription closes. */
  private async heartbeatUntilRebalance(): Promise<void> {
    for (;;) {
      const reason = this.rebalanceHint ? 'rebalance' : await this.waitForWake(this.settings.consumer.heartbeatIntervalMs);
      if (reason === 'close' || this.closing) return;
      this.rebalanceHint = false;
      await faultPoint('embedded.before-heartbeat');
      try {
        await this.coordinator.heartbeat({ groupId: this.groupId, generationId: this.generationId, memberId: this.memberId });
        // A full cycle (assignment, heartbeat) went through: a later failure is a new one.
        this.failures = 0;
      } catch (error) {
        const code = error instanceof ConcordatError ? error.code : null;
        if (code === ErrorCode.REBALANCE_IN_PROGRESS || code === ErrorCode.ILLEGAL_GENERATION) return;
        throw error;
      }
    }
  }

  private waitForWake(timeoutMs: number): Promise<WakeReason> {
    return new Promise<WakeReason>((resolve) => {
      const timer = setTimeout(() => done('tick'), timeoutMs);
      const done = (reason: WakeReason): void => {
        clearTimeout(timer);
        this.wake = null;
        resolve(reason);
      };
      this.wake = done;
    });
  }

  /** A worker found that the group moved on (its commit was refused): rejoin now. */
  requestRejoin(): void {
    this.rebalanceHint = true;
    this.wake?.('rebalance');
  }

  /** Starts a worker per assigned partition, under this generation (the workers commit their positions themselves). */
  private startWorkers(assigned: readonly TopicPartitions[]): void {
    const generation: WorkerGeneration = { memberId: this.memberId, generationId: this.generationId, requestRejoin: () => this.requestRejoin() };
    for (const { topic, partitions } of assigned) {
      for (const partition of partitions) {
        const worker = new PartitionWorker(this.logManager, generation, topic, partition, this.options, this.delivery, this.settings.consumer, this.logger);
        this.workers.set(`${topic}\u0000${partition}`, worker);
        worker.start();
      }
    }
  }

  private async stopWorkers(): Promise<void> {
    const workers = [...this.workers.values()];
    this.workers.clear();
    await Promise.all(workers.map((worker) => worker.stop()));
  }

  private async leave(): Promise<void> {
    if (this.memberId === '') return;
    try {
      await this.coordinator.leaveGroup({ groupId: this.groupId, members: [{ memberId: this.memberId }] });
    } catch (error) {
      this.logger.debug({ groupId: this.groupId, err: error }, 'leaving the group failed (the log may be closed)');
    }
    this.memberId = '';
  }
}
