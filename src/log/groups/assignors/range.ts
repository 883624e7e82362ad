import type { TopicPartitions } from '../consumer-protocol.js';
import { AssignmentBuilder, compareStrings, type AssignorMember, type PartitionAssignor } from './assignor.js';

/**
 * Kafka's RangeAssignor: per topic, the members subscribed to it in member-ID
 * order each take a contiguous range of partitions; the first
 * `partitions % members` take one extra. With topics of equal partition
 * counts, partition i of every topic goes to the same member (what joins
 * of co-partitioned topics want).
 */
export class RangeAssignor implements PartitionAssignor {
  readonly name = 'range';

  assign(members: readonly AssignorMember[], partitionsPerTopic: ReadonlyMap<string, number>): Map<string, TopicPartitions[]> {
    const builder = new AssignmentBuilder(members.map((member) => member.memberId));
    const subscribers = new Map<string, string[]>();
    for (const member of members) {
      for (const topic of new Set(member.subscription.topics)) {
        const list = subscribers.get(topic);
        if (list === undefined) subscribers.set(topic, [member.memberId]);
        else list.push(member.memberId);
      }
    }
    for (const [topic, memberIds] of subscribers) {
      const partitions = partitionsPerTopic.get(topic);
      if (partitions === undefined) continue;
      memberIds.sort(compareStrings);
      const perMember = Math.floor(partitions / memberIds.length);
      const withExtra = partitions % memberIds.length;
      memberIds.forEach((memberId, i) => {
        const start = perMember * i + Math.min(i, withExtra);
        const length = perMember + (i < withExtra ? 1 : 0);
        for (let partition = start; partition < start + length; partition++) builder.add(memberId, topic, partition);
      });
    }
    return builder.build();
  }
}
