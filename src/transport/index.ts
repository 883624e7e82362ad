export type {
  ConcurrencyOptions,
  ConsumerFailureEvent,
  ConsumerLag,
  Delivery,
  DeliveryBatchHandler,
  DeliveryHandler,
  OutgoingRecord,
  PublishAck,
  SubscribeOptions,
  Subscription,
  TopicSpec,
  Transport,
} from './transport.js';
export { BATCH_RECORDS, CONSUMER_STALLED_FAILURES, OffsetReset, PER_PARTITION_CONCURRENCY } from './transport.js';
export { EmbeddedTransport, type EmbeddedTransportOptions } from './embedded/index.js';
export type { EmbeddedConsumerOptions, EmbeddedProducerOptions, EmbeddedTransportOverLogOptions, OffsetResetEvent } from '../config/index.js';
export { KafkaTransport } from './kafka/index.js';
export { defaultTransport } from './default-transport.js';
