import { kafkaTransportOptionsFromEnv } from '../config/index.js';
import type { Logger } from '../observability/index.js';
import { EmbeddedTransport } from './embedded/index.js';
import { KafkaTransport } from './kafka/index.js';
import type { Transport } from './transport.js';

/**
 * The transport an app uses when it is given none: the kafkajs transport when
 * `KAFKA_BROKERS` is set (with the `KAFKA_*` variables of
 * `kafkaTransportOptionsFromEnv`), otherwise the embedded log in `logDir`.
 * @param logger parent of the transport's logger (an app's root). @default Concordat's own
 * @throws ConcordatError CONFIG_INVALID naming the bad variable
 */
export function defaultTransport(logDir: string, env: NodeJS.ProcessEnv = process.env, logger?: Logger): Transport {
  const kafka = kafkaTransportOptionsFromEnv(env);
  return kafka === undefined ? new EmbeddedTransport({ dataDir: logDir, ...(logger !== undefined && { logger }) }) : new KafkaTransport(kafka, logger);
}
