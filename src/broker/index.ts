/**
 * The Kafka wire protocol over Concordat's log (`concordat broker`).
 * See docs/broker.md for the APIs and versions served, limits and security.
 */
export { Broker, startBroker, type StartBrokerDependencies } from './server.js';
export { KafkaError, kafkaErrorCodeOf, kafkaErrorName, type KafkaErrorName } from './codec/error-codes.js';
export { describeTopicConfig, topicConfigFromKafka, TOPIC_CONFIG_NAMES, ConfigSource, type DescribedConfig, type KafkaConfigEntry } from './topic-configs.js';
