import { causeChain } from '../errors.js';

/** Kafka error names of a record that can never be written (see {@link isPoisonRecordError}). */
const POISON = new Set(['MESSAGE_TOO_LARGE', 'RECORD_LIST_TOO_LARGE', 'INVALID_TOPIC_EXCEPTION', 'INVALID_RECORD']);

/**
 * Errors that say a record can never be written, whatever the retries:
 * Kafka's names for a record or batch over the topic's limit, an illegal
 * topic name, an invalid record. Looked for in the error and its causes,
 * as a ConcordatError `code` (the embedded log) or a kafkajs `type`.
 *
 * Deliberately a short list: anything else (a closed transport, a full
 * disk, a lost connection) may pass, and its rows must wait in the outbox.
 */
export function isPoisonRecordError(error: unknown): boolean {
  for (const current of causeChain(error, 5)) {
    const { code, type } = current as { code?: unknown; type?: unknown };
    if ((typeof code === 'string' && POISON.has(code)) || (typeof type === 'string' && POISON.has(type))) return true;
  }
  return false;
}
