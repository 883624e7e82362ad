import type { TopicPartitions } from '../consumer-protocol.js';
import { AssignmentBuilder, compareStrings, type AssignorMember, type PartitionAssignor } from './assignor.js';

/**
 * Kafka's RoundRobinAssignor: every partition of every subscribed topic,
 * sorted by topic then partition, is dealt in turn to the members (in
 * member-ID order), skipping a member not subscribed to that topic. With
 * identical subscriptions, member partition counts differ by at most one.
 */
export class RoundRobinAssignor implements PartitionAssignor {
  readonly name = 'roundrobin';

  assign(members: readonly AssignorMember[], partitionsPerTopic: ReadonlyMap<string, number>): Map<string, TopicPartitions[]> {
    const sorted = [...members].sort((a, b) => compareStrings(a.memberId, b.memberId));
    const builder = new AssignmentBuilder(sorted.map((member) => member.memberId));
    const subscribed = sorted.map((member) => new Set(member.subscription.topics));
    const topics = [...new Set(sorted.flatMap((member) => member.subscription.topics))].filter((topic) => partitionsPerTopic.has(topic)).sort(compareStrings);
    let next = 0;
    for (const topic of topics) {
      const partitions = partitionsPerTopic.get(topic)!;
      for (let partition = 0; partition < partitions; partition++) {
        while (!subscribed[next % sorted.length]!.has(topic)) next += 1;
        builder.add(sorted[next % sorted.length]!.memberId, topic, partition);
        next += 1;
      }
    }
    return builder.build();
  }
}
