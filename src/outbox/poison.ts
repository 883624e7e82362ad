import { ERROR_CODES, causeChain, errorCodeOfKafka, isErrorCode, kafkaErrorOf } from '../errors.js';

/**
 * Errors that say a record can never be written, whatever the retries: the
 * codes marked `poison` in the error table (ERROR_CODES: a record or batch
 * over the topic's limit, an illegal topic name, an invalid record). Looked
 * for in the error and its causes (up to 5 deep), as a ConcordatError
 * `code` (the embedded log) or a Kafka error a client library reports
 * (kafkajs's number or `type`, through Kafka's table).
 *
 * Deliberately a short list: anything else (a closed transport, a full
 * disk, a lost connection) may pass, and its rows must wait in the outbox.
 */
export function isPoisonRecordError(error: unknown): boolean {
  for (const current of causeChain(error, 5)) {
    const { code } = current as { code?: unknown };
    const concordat = isErrorCode(code) ? code : errorCodeOfKafka(kafkaErrorOf(current));
    if (concordat !== undefined && ERROR_CODES[concordat].poison === true) return true;
  }
  return false;
}
