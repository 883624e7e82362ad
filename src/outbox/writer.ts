import type { EntityManager } from 'typeorm';
import { envelopeHeaders, serializerFor, type Envelope } from '../messaging/index.js';
import { outboxNotifierFor, type OutboxNotifier } from './notifier.js';
import { shardFor } from './shard.js';

/**
 * When a scheduled message becomes due: at an instant, or `delayMs` after
 * its insert (which is written with the transaction's `COMMIT`), by the
 * database's clock.
 */
export type Schedule = { deliverAt: Date } | { delayMs: number };

/** A message to publish once the surrounding transaction commits (and, with `schedule`, once it is due). */
export interface OutboxMessage {
  topic: string;
  envelope: Envelope;
  schedule?: Schedule;
}

/** An outbox row as it will be published: binary-mode headers and value bytes. */
export interface OutboxRecord {
  /** The CloudEvent ID (`ce_id`). */
  messageId: string;
  topic: string;
  key: string | null;
  headers: Record<string, string>;
  payload: Buffer | null;
  /** Present for a message published for later: it goes to `concordat.outbox_scheduled` (see `scheduled.ts`). */
  schedule?: Schedule;
}

/**
 * Payload bytes up to which {@link outboxInsertSql} inlines records as
 * literals. Beyond it the hex text (twice the bytes) costs more to build and
 * parse than the round trip it saves.
 */
export const OUTBOX_INLINE_BYTES_MAX = 256 * 1024;

/**
 * The records of messages, serialized once, exactly as they will be
 * published.
 * @throws ConcordatError SERIALIZATION_FAILED when a message's data cannot be serialized.
 */
export function toOutboxRecords(messages: readonly OutboxMessage[]): OutboxRecord[] {
  return messages.map(({ topic, envelope, schedule }) => ({
    messageId: envelope.id,
    topic,
    key: envelope.partitionkey ?? null,
    headers: envelopeHeaders(envelope),
    payload: serializerFor(envelope.datacontenttype).serialize(envelope.data),
    ...(schedule !== undefined && { schedule }),
  }));
}

/**
 * Inserts messages into `concordat.outbox` through the caller's own
 * EntityManager, so they exist if and only if the caller's transaction
 * commits. The row holds the record exactly as it will be published (headers
 * in CloudEvents binary mode, value bytes), so the relay never re-serializes.
 *
 * Relays in this process are woken when the caller's transaction commits
 * (or at once when `manager` is not in a transaction); relays elsewhere by a
 * NOTIFY sent after that commit (see `notifier.ts`).
 *
 * @throws ConcordatError SERIALIZATION_FAILED when a message's data cannot be serialized;
 *   the caller's transaction then rolls back with it.
 */
export async function writeOutbox(manager: EntityManager, messages: readonly OutboxMessage[]): Promise<void> {
  await writeOutboxRecords(manager, toOutboxRecords(messages));
}

/**
 * Inserts ready-made records (a dead letter keeps its original headers and
 * bytes) into the outbox, in the caller's transaction. One statement
 * (`unnest` of arrays) whatever the number of records.
 */
export async function writeOutboxRecords(manager: EntityManager, records: readonly OutboxRecord[]): Promise<void> {
  if (records.length === 0) return;
  const { immediate, scheduled } = splitScheduled(records);
  if (immediate.length > 0) {
    const columns = toColumns(immediate);
    await manager.query(
      `INSERT INTO concordat.outbox (message_id, topic, partition_key, shard, headers, payload)
       SELECT id, topic, key, shard, headers, payload
         FROM unnest($1::text[], $2::text[], $3::text[], $4::smallint[], $5::jsonb[], $6::bytea[])
              WITH ORDINALITY AS r(id, topic, key, shard, headers, payload, n)
        ORDER BY n`,
      [columns.ids, columns.topics, columns.keys, columns.shards, columns.headers, columns.payloads],
    );
  }
  if (scheduled.length > 0) {
    const columns = toColumns(scheduled);
    await manager.query(
      `INSERT INTO concordat.outbox_scheduled (message_id, topic, partition_key, shard, headers, payload, deliver_at)
       SELECT id, topic, key, shard, headers, payload, coalesce(at, clock_timestamp() + delay * interval '1 millisecond')
         FROM unnest($1::text[], $2::text[], $3::text[], $4::smallint[], $5::jsonb[], $6::bytea[], $7::timestamptz[], $8::float8[])
              WITH ORDINALITY AS r(id, topic, key, shard, headers, payload, at, delay, n)
        ORDER BY n
       ON CONFLICT (message_id) DO NOTHING`,
      [
        columns.ids,
        columns.topics,
        columns.keys,
        columns.shards,
        columns.headers,
        columns.payloads,
        scheduled.map((r) => ('deliverAt' in r.schedule! ? r.schedule.deliverAt.toISOString() : null)),
        scheduled.map((r) => ('delayMs' in r.schedule! ? r.schedule.delayMs : null)),
      ],
    );
  }
  const wake = wakeUpOf(records);
  outboxNotifierFor(manager.dataSource).written(manager.queryRunner, wake.shards, wake.dueAtMs);
}

/**
 * What to tell the relays once `records` are committed: the shards of the
 * immediate ones, and (when some are scheduled) the earliest due time by
 * this process's clock, an estimate for waking a local relay's scheduler
 * early enough (the scheduler itself compares with the database's clock).
 */
export function wakeUpOf(records: readonly OutboxRecord[]): { shards: number[]; dueAtMs: number | undefined } {
  const shards: number[] = [];
  let dueAtMs: number | undefined;
  for (const record of records) {
    if (record.schedule === undefined) {
      shards.push(shardFor(record.key ?? record.messageId));
      continue;
    }
    const at = 'deliverAt' in record.schedule ? record.schedule.deliverAt.getTime() : Date.now() + record.schedule.delayMs;
    dueAtMs = dueAtMs === undefined ? at : Math.min(dueAtMs, at);
  }
  return { shards, dueAtMs };
}

/** Wakes the relays for `records`, committed just now (outside a TypeORM transaction event). */
export function notifyCommitted(notifier: OutboxNotifier, records: readonly OutboxRecord[]): void {
  if (records.length === 0) return;
  const wake = wakeUpOf(records);
  notifier.committed(wake.shards, wake.dueAtMs);
}

function splitScheduled(records: readonly OutboxRecord[]): { immediate: OutboxRecord[]; scheduled: OutboxRecord[] } {
  const immediate: OutboxRecord[] = [];
  const scheduled: OutboxRecord[] = [];
  for (const record of records) (record.schedule === undefined ? immediate : scheduled).push(record);
  return { immediate, scheduled };
}

/**
 * The same insert as {@link writeOutboxRecords} as one SQL statement with the
 * values inlined as escaped literals, so that it can travel in one simple
 * query with `COMMIT` (one round trip instead of two). Returns undefined when
 * the payloads exceed {@link OUTBOX_INLINE_BYTES_MAX}: then use the
 * parameterized insert.
 *
 * Escaping: text and JSON through `escapeLiteral` (PostgreSQL's quoting rules:
 * quotes doubled, an `E''` literal with doubled backslashes when a backslash
 * occurs, so the result does not depend on `standard_conforming_strings`);
 * bytes as a hex `bytea` literal, which contains only `\x` and hex digits.
 */
export function outboxInsertSql(records: readonly OutboxRecord[], escapeLiteral: (value: string) => string): string | undefined {
  if (records.length === 0) return '';
  let bytes = 0;
  for (const record of records) bytes += record.payload?.length ?? 0;
  if (bytes > OUTBOX_INLINE_BYTES_MAX) return undefined;
  const { immediate, scheduled } = splitScheduled(records);
  const statements: string[] = [];
  if (immediate.length > 0) {
    const rows = immediate.map((record) => rowLiteral(record, escapeLiteral));
    statements.push(`INSERT INTO concordat.outbox (message_id, topic, partition_key, shard, headers, payload) VALUES ${rows.join(',')}`);
  }
  if (scheduled.length > 0) {
    const rows = scheduled.map((record) => `${rowLiteral(record, escapeLiteral).slice(0, -1)},${dueLiteral(record.schedule!)})`);
    statements.push(
      `INSERT INTO concordat.outbox_scheduled (message_id, topic, partition_key, shard, headers, payload, deliver_at) VALUES ${rows.join(',')} ` +
        `ON CONFLICT (message_id) DO NOTHING`,
    );
  }
  return statements.join('; ');
}

/** `(id, topic, key, shard, headers, payload)` as literals. */
function rowLiteral(record: OutboxRecord, escapeLiteral: (value: string) => string): string {
  const key = record.key === null ? 'NULL' : escapeLiteral(record.key);
  const payload = record.payload === null ? 'NULL' : `'\\x${record.payload.toString('hex')}'::bytea`;
  return (
    `(${escapeLiteral(record.messageId)},${escapeLiteral(record.topic)},${key},` +
    `${shardFor(record.key ?? record.messageId)},${escapeLiteral(JSON.stringify(record.headers))}::jsonb,${payload})`
  );
}

/** The due time as SQL: an ISO instant, or the insert's clock plus the delay (a finite number, checked at publish). */
function dueLiteral(schedule: Schedule): string {
  if ('deliverAt' in schedule) return `'${schedule.deliverAt.toISOString()}'::timestamptz`;
  return `clock_timestamp() + ${Number(schedule.delayMs)} * interval '1 millisecond'`;
}

/**
 * PostgreSQL's string-literal quoting, as node-postgres's `escapeLiteral`
 * does it (quotes doubled; with a backslash, an `E''` literal with
 * backslashes doubled), with native string replacement instead of a
 * character loop: the outbox insert quotes four strings per message.
 */
export function quoteLiteral(value: string): string {
  const quoted = value.includes("'") ? value.replace(/'/g, "''") : value;
  return value.includes('\\') ? ` E'${quoted.replace(/\\/g, '\\\\')}'` : `'${quoted}'`;
}

/** The shard of each record, in order. */
export function shardsOf(records: readonly OutboxRecord[]): number[] {
  return records.map((record) => shardFor(record.key ?? record.messageId));
}

function toColumns(records: readonly OutboxRecord[]): {
  ids: string[];
  topics: string[];
  keys: Array<string | null>;
  shards: number[];
  headers: string[];
  payloads: Array<Buffer | null>;
} {
  const columns = {
    ids: [] as string[],
    topics: [] as string[],
    keys: [] as Array<string | null>,
    shards: [] as number[],
    headers: [] as string[],
    payloads: [] as Array<Buffer | null>,
  };
  for (const record of records) {
    columns.ids.push(record.messageId);
    columns.topics.push(record.topic);
    columns.keys.push(record.key);
    columns.shards.push(shardFor(record.key ?? record.messageId));
    columns.headers.push(JSON.stringify(record.headers));
    columns.payloads.push(record.payload);
  }
  return columns;
}
