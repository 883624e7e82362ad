import { z } from 'zod';
import { compileOptions } from './compile.js';

/** Ten years, in ms: the longest finite dedup window. */
const WINDOW_MS_MAX = 10 * 365 * 24 * 3600 * 1000;

/** Thirty days, in ms: how long a replayed dead letter is kept by default. */
export const DEAD_LETTER_RETENTION_MS_DEFAULT = 30 * 24 * 3600 * 1000;

/** How long the inbox remembers processed messages, and how it forgets them (`inbox/`). */
export interface InboxOptions {
  /**
   * How long a processed message's ID is remembered, in ms. A record
   * redelivered after its ID was forgotten would be processed twice, so the
   * app refuses to start when this is shorter than the log's retention of a
   * topic it consumes (the longest a record can come back).
   * `Infinity` keeps IDs forever (no cleanup).
   * Range 60000..315360000000, or Infinity.
   * @default the longest retention among the consumed topics (Infinity when
   *   one keeps records forever); 7 days when the transport cannot tell
   */
  dedupWindowMs?: number;
  /**
   * Start even when `dedupWindowMs` is shorter than the retention of a
   * consumed topic, logging a warning instead of failing with
   * DEDUP_WINDOW_TOO_SHORT. The price: a record redelivered after its inbox
   * row was deleted — a consumer group reset or rewound (or whose committed
   * offset expired) past the window, while the log still holds the record —
   * is processed a second time. For deployments that bound the inbox's size
   * on purpose and never rewind that far. @default false
   */
  allowShorterThanLogRetention?: boolean;
  /**
   * How long a dead letter is kept after it was replayed (`concordat dlq
   * replay`), in ms; the cleanup deletes it then, for this app's consumer
   * groups. Dead letters not yet replayed are never deleted automatically:
   * they are the operator's work list (`concordat dlq list`).
   * `Infinity` keeps replayed dead letters forever.
   * Range 3600000..315360000000, or Infinity. @default 30 days
   */
  deadLetterRetentionMs?: number;
  /** Time between cleanup runs, in ms. Range 1000..86400000. @default 60000 */
  cleanupIntervalMs?: number;
  /** Rows deleted per statement (each its own short transaction). Range 100..100000. @default 5000 */
  cleanupBatchRowsMax?: number;
  /** Statements per cleanup run at most; the rest waits for the next run. Range 1..100000. @default 200 */
  cleanupBatchesMax?: number;
}

const schema = z.strictObject({
  dedupWindowMs: z
    .union([z.number().int().min(60_000).max(WINDOW_MS_MAX), z.literal(Infinity)], {
      error: `must be a whole number of ms in 60000..${WINDOW_MS_MAX}, or Infinity`,
    })
    .optional(),
  allowShorterThanLogRetention: z.boolean().default(false),
  deadLetterRetentionMs: z
    .union([z.number().int().min(3_600_000).max(WINDOW_MS_MAX), z.literal(Infinity)], {
      error: `must be a whole number of ms in 3600000..${WINDOW_MS_MAX}, or Infinity`,
    })
    .default(DEAD_LETTER_RETENTION_MS_DEFAULT),
  cleanupIntervalMs: z.number().int().min(1000).max(86_400_000).default(60_000),
  cleanupBatchRowsMax: z.number().int().min(100).max(100_000).default(5000),
  cleanupBatchesMax: z.number().int().min(1).max(100_000).default(200),
});

/** Inbox options with defaults; `dedupWindowMs` stays optional until the app resolves it from the log's retention. */
export type CompiledInboxOptions = z.output<typeof schema>;

/** Dedup window when the transport cannot report retention: Kafka's default `retention.ms`. */
export const DEDUP_WINDOW_MS_FALLBACK = 7 * 24 * 3600 * 1000;

/** Validates and fills in {@link InboxOptions}. @throws ConcordatError CONFIG_INVALID naming the option */
export function compileInboxOptions(options: InboxOptions = {}): CompiledInboxOptions {
  return compileOptions(schema, options, 'inbox');
}
