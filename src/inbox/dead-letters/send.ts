/**
 * What goes through the outbox for dead letters, each in one transaction
 * with its row in `concordat.dead_letter`: a dead letter to `<topic>.dlq`
 * ({@link sendDeadLetter}), a replay to its original topic
 * ({@link replayDeadLetters}).
 *
 * @module
 */

import type { DataSource } from 'typeorm';
import { runOutboxTransaction, type OutboxRecord } from '../../outbox/index.js';
import { REPLAY_FOR_HEADER, REPLAY_OF_HEADER } from './format.js';
import { deadLetterRecord } from './record.js';
import { markDeadLettersReplayed, recordDeadLetter, type DeadLetter, type DeadLetterFilter, type DeadLetterInput, type ReplayOptions } from './store.js';

/**
 * Records the dead letter `input` (built by `deadLetterInput`) and sends its
 * record to `<topic>.dlq` through the outbox, in one transaction, with what
 * `alsoSend` returns for the new row's ID (the dispatcher's failed reply to
 * a request). When this consumer has this message pending already (a
 * redelivered message that failed again), nothing is written.
 * @returns the new row's ID, or undefined when it was pending already
 * @throws the database's error (the transaction rolled back); the caller decides whether to wait and call again
 */
export async function sendDeadLetter(
  dataSource: DataSource,
  input: DeadLetterInput,
  alsoSend: (deadLetterId: string) => readonly OutboxRecord[] = () => [],
): Promise<string | undefined> {
  return runOutboxTransaction(dataSource, async ({ manager }) => {
    const id = await recordDeadLetter(manager, input);
    if (id === undefined) return { result: undefined, rollback: true as const };
    return { result: id, records: [deadLetterRecord(input, id), ...alsoSend(id)] };
  });
}

/**
 * Replays dead letters through the normal path: each is published again to
 * its original topic through the outbox, with its original key, headers
 * (message ID included) and bytes, plus `concordat_replay_of: <id>` and
 * `concordat_replay_for: <consumer group>`, and marked replayed in the same
 * transaction. So a dead letter is replayed exactly once even by concurrent
 * callers, and its consumer group processes it once (the inbox knows the
 * message ID from then on); the other consumer groups of the topic skip it
 * whatever their inbox remembers ({@link REPLAY_FOR_HEADER}).
 *
 * A dead letter that failed longer ago than its group's inbox dedup window
 * is refused unless `options.force` (see `markDeadLettersReplayed`).
 *
 * @returns the dead letters replayed, oldest first.
 * @throws ConcordatError DEAD_LETTER_TOO_OLD, nothing replayed
 */
export async function replayDeadLetters(dataSource: DataSource, filter: DeadLetterFilter, options: ReplayOptions = {}): Promise<DeadLetter[]> {
  return runOutboxTransaction(dataSource, async ({ manager }) => {
    const replayed = await markDeadLettersReplayed(manager, filter, options);
    const records: OutboxRecord[] = replayed.map((letter) => ({
      messageId: letter.messageId,
      topic: letter.topic,
      key: letter.key,
      payload: letter.payload,
      headers: { ...letter.headers, [REPLAY_OF_HEADER]: letter.id, [REPLAY_FOR_HEADER]: letter.consumer },
    }));
    return { result: replayed, records };
  });
}
