import { Kafka, logLevel, type Consumer } from 'kafkajs';

/**
 * One member of a kafkajs consumer group that processes each record, then
 * commits the offset after it, one record at a time, and reports both steps:
 * `processed` before the commit, `committed` once the broker accepted it.
 * A record reported `processed` but never `committed` was handed to another
 * member by a rebalance (or its member died) and may be processed again; a
 * `committed` record is in the group's committed view and must never be
 * processed by anyone else.
 *
 * Used in process by the tests and, through group-member-child.ts, as a
 * child process that a test can SIGKILL.
 */
export interface MemberEvent {
  event: 'assigned' | 'processed' | 'committed' | 'commit-failed';
  member: string;
  partition?: number;
  offset?: number;
  partitions?: number[];
}

export interface MemberOptions {
  bootstrap: string;
  topic: string;
  groupId: string;
  name: string;
  /** Time spent "processing" each record, in ms. */
  delayMs: number;
}

export interface Member {
  consumer: Consumer;
  /**
   * Stops taking records, waits for the one in hand to be committed, then
   * disconnects (LeaveGroup). kafkajs's commitOffsets resolves without
   * committing once disconnect has begun (runner.commitOffsets returns when
   * not running), so a member must finish its commits before disconnecting
   * for its `committed` reports to be true.
   */
  stop(): Promise<void>;
}

export async function startMember(options: MemberOptions, report: (event: MemberEvent) => void): Promise<Member> {
  const kafka = new Kafka({ brokers: [options.bootstrap], clientId: options.name, logLevel: logLevel.NOTHING });
  const consumer = kafka.consumer({
    groupId: options.groupId,
    sessionTimeout: 6000,
    rebalanceTimeout: 10_000,
    heartbeatInterval: 300,
    maxWaitTimeInMs: 200,
  });
  consumer.on(consumer.events.GROUP_JOIN, (e) => {
    const assigned = e.payload.memberAssignment[options.topic] ?? [];
    report({ event: 'assigned', member: options.name, partitions: [...assigned].sort((a, b) => a - b) });
  });
  let stopping = false;
  let inHand = 0;
  await consumer.connect();
  await consumer.subscribe({ topic: options.topic, fromBeginning: true });
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ partition, message, heartbeat }) => {
      // Stopping: leave the record unprocessed and uncommitted for the next owner.
      if (stopping) return;
      inHand += 1;
      try {
        await processAndCommit(partition, Number(message.offset));
      } finally {
        inHand -= 1;
      }
      await heartbeat();
    },
  });
  async function processAndCommit(partition: number, offset: number): Promise<void> {
    report({ event: 'processed', member: options.name, partition, offset });
    await new Promise((resolve) => setTimeout(resolve, options.delayMs));
    try {
      await consumer.commitOffsets([{ topic: options.topic, partition, offset: String(offset + 1) }]);
      report({ event: 'committed', member: options.name, partition, offset });
    } catch (error) {
      // Lost the partition to a rebalance: the next owner starts from the last committed offset.
      // kafkajs rejoins on the rebalance errors it gets back, so hand it the original one.
      report({ event: 'commit-failed', member: options.name, partition, offset });
      throw error;
    }
  }
  return {
    consumer,
    async stop() {
      stopping = true;
      while (inHand > 0) await new Promise((resolve) => setTimeout(resolve, 10));
      await consumer.disconnect();
    },
  };
}
