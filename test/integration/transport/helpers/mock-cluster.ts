import { connect, disconnect, loadRdKafka, metadata, type RdProducer } from '../../../support/rdkafka.js';
import { requireTool } from '../../../support/tools.js';

/**
 * librdkafka's mock cluster (librdkafka 2.12, through node-rdkafka), hosted
 * in this process by an idle producer created with
 * `test.mock.num.brokers=N`: a Kafka-protocol cluster of N brokers on
 * loopback, written by librdkafka's authors, not by us. It runs on
 * librdkafka's own threads, so a busy event loop does not stall it, and it
 * lives as long as that producer. Its brokers are the ones the producer's
 * first Metadata lists.
 *
 * Its topics are created with 4 partitions by a Metadata request that allows
 * auto-creation ({@link MockCluster.createTopics}; kafkajs's admin client
 * does not allow it, its producer and consumer do). Its Metadata names a
 * controller (ID 0) that is not one of its brokers, so kafkajs's
 * CreateTopics, InitProducerId and DescribeConfigs (all sent to the
 * controller) fail against it.
 */
export interface MockCluster {
  /** `host:port` of each mock broker. */
  brokers: string[];
  /** Creates each topic not there yet, with 4 partitions (the mock's default), one Metadata request per topic. */
  createTopics(topics: readonly string[]): Promise<void>;
  /** Destroys the cluster (closes its listeners). */
  stop(): Promise<void>;
}

/** Starts a mock cluster of `brokers` brokers. @throws when node-rdkafka is missing, or the cluster does not answer within `timeoutMs` */
export async function startMockCluster(brokers = 3, timeoutMs = 10_000): Promise<MockCluster> {
  requireTool('node-rdkafka');
  const { Producer } = loadRdKafka();
  // The bootstrap address is ignored: librdkafka replaces it with the mock brokers'.
  const host: RdProducer = new Producer({ 'bootstrap.servers': '127.0.0.1:1', 'test.mock.num.brokers': brokers });
  const listed = await connect(host, timeoutMs);
  return {
    brokers: listed.brokers.sort((a, b) => a.id - b.id).map((b) => `${b.host}:${b.port}`),
    async createTopics(topics) {
      for (const topic of topics) await metadata(host, topic, timeoutMs);
    },
    stop: () => disconnect(host),
  };
}
