import type { ConsumerSubscription, TopicPartitions } from '../consumer-protocol.js';

/** A member as the leader's assignor sees it. */
export interface AssignorMember {
  memberId: string;
  subscription: ConsumerSubscription;
}

/**
 * Client-side partition assignment, run by the group leader between
 * JoinGroup and SyncGroup (Kafka's `ConsumerPartitionAssignor`). `name` is
 * the protocol name members advertise in JoinGroup; members of one group
 * must share one, so these use Kafka's names (`range`, `roundrobin`).
 */
export interface PartitionAssignor {
  readonly name: string;
  /**
   * @param partitionsPerTopic partition count of every topic some member subscribes to;
   *   a topic missing here (unknown) is not assigned.
   * @returns every member ID, each with its partitions (possibly none), topics sorted.
   */
  assign(members: readonly AssignorMember[], partitionsPerTopic: ReadonlyMap<string, number>): Map<string, TopicPartitions[]>;
}

/** Collects (topic, partition) pairs per member into sorted TopicPartitions lists. */
export class AssignmentBuilder {
  private readonly byMember = new Map<string, Map<string, number[]>>();

  constructor(memberIds: Iterable<string>) {
    for (const memberId of memberIds) this.byMember.set(memberId, new Map());
  }

  /** Gives `partition` of `topic` to `memberId` (one of the IDs the builder was made with). */
  add(memberId: string, topic: string, partition: number): void {
    const topics = this.byMember.get(memberId)!;
    const partitions = topics.get(topic);
    if (partitions === undefined) topics.set(topic, [partition]);
    else partitions.push(partition);
  }

  /** Every member's partitions, topics sorted by name and partitions ascending; members given nothing get []. */
  build(): Map<string, TopicPartitions[]> {
    const result = new Map<string, TopicPartitions[]>();
    for (const [memberId, topics] of this.byMember) {
      const list = [...topics.entries()]
        .sort(([a], [b]) => compareStrings(a, b))
        .map(([topic, partitions]) => ({ topic, partitions: partitions.sort((x, y) => x - y) }));
      result.set(memberId, list);
    }
    return result;
  }
}

/** Code-unit order, like Java's String.compareTo (not locale order). */
export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
