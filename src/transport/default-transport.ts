import { kafkaTransportOptionsFromEnv } from '../config/index.js';
import { EmbeddedTransport } from './embedded.js';
import { KafkaTransport } from './kafka.js';
import type { Transport } from './transport.js';

/**
 * The transport an app uses when it is given none: the kafkajs transport when
 * `KAFKA_BROKERS` is set (with the `KAFKA_*` variables of
 * `kafkaTransportOptionsFromEnv`), otherwise the embedded log in `logDir`.
 * @throws ConcordatError CONFIG_INVALID naming the bad variable
 */
export function defaultTransport(logDir: string, env: NodeJS.ProcessEnv = process.env): Transport {
  const kafka = kafkaTransportOptionsFromEnv(env);
  return kafka === undefined ? new EmbeddedTransport({ dataDir: logDir }) : new KafkaTransport(kafka);
}
