import { DEDUP_WINDOW_MS_FALLBACK, type CompiledInboxOptions } from '../config/index.js';
import { ConcordatError, describeError, ErrorCode } from '../errors.js';
import { createLogger, type Logger } from '../observability/index.js';
import type { DataSource } from 'typeorm';
import type { Transport } from '../transport/index.js';

/** The dedup window the app runs with, and where it came from. */
export interface DedupWindow {
  /** In ms; Infinity keeps inbox rows forever. */
  windowMs: number;
  /** Retention of each consumed topic as the transport reported it (ms, Infinity for forever), when it could. */
  retentionMs: Record<string, number>;
  /** Whether `windowMs` was derived (not set by `inbox.dedupWindowMs`). */
  derived: boolean;
  /**
   * What start-up warned about (and logged): retention the transport could
   * not report, or a window shorter than a topic's retention accepted with
   * `inbox.allowShorterThanLogRetention`. Empty when the window was checked
   * against every consumed topic and covers them all.
   */
  warnings: string[];
}

/**
 * Resolves the inbox dedup window against the log's retention of the topics
 * the app consumes, and refuses a window that is too short.
 *
 * The redelivery horizon of a record is its retention: a consumer group
 * whose committed offset is lost, expired or reset reads every record the
 * log still holds. If the inbox forgot a message ID before the log forgot the
 * record, that record would be processed a second time.
 *
 * When the transport cannot report a topic's retention (it has no
 * `retentionMs`, or asking failed: a broker without DescribeConfigs, a
 * principal without the right to describe the topic), the window cannot be
 * checked against it: a warning says so and start-up goes on; a derived
 * window is then at least 7 days (Kafka's default retention).
 *
 * @throws ConcordatError DEDUP_WINDOW_TOO_SHORT naming `inbox.dedupWindowMs`,
 *   the topic, both durations and the options that fix it, unless
 *   `inbox.allowShorterThanLogRetention` is set (then it is a warning).
 * @param parentLogger parent of its logger (the app's root). @default Concordat's own
 */
export async function resolveDedupWindow(
  transport: Transport,
  topics: readonly string[],
  options: CompiledInboxOptions,
  parentLogger?: Logger,
): Promise<DedupWindow> {
  const logger = createLogger('inbox', {}, parentLogger);
  const warnings: string[] = [];
  const warn = (fields: Record<string, unknown>, message: string): void => {
    warnings.push(message);
    logger.warn(fields, message);
  };
  const { retentionMs, unreported } = await reportedRetention(transport, topics);
  if (unreported.length > 0) {
    const configured = options.dedupWindowMs ?? DEDUP_WINDOW_MS_FALLBACK;
    const why =
      transport.retentionMs === undefined
        ? `the ${transport.kind} transport does not report topic retention`
        : `the retention of ${list(unreported.map((u) => u.topic))} could not be read (${describeError(unreported[0]!.error)})`;
    warn(
      { transport: transport.kind, topics: unreported.map((u) => u.topic), dedupWindowMs: configured },
      `${why}, so inbox.dedupWindowMs (${configured} ms, ${human(configured)}) cannot be checked against it; make sure it is at least the retention of every consumed topic`,
    );
  }
  if (options.dedupWindowMs === undefined) {
    const known = Object.values(retentionMs);
    const candidates = unreported.length > 0 ? [...known, DEDUP_WINDOW_MS_FALLBACK] : known;
    const windowMs = candidates.length === 0 ? DEDUP_WINDOW_MS_FALLBACK : Math.max(...candidates);
    return { windowMs, retentionMs, derived: true, warnings };
  }
  const windowMs = options.dedupWindowMs;
  const longest = Object.entries(retentionMs).sort(([, a], [, b]) => b - a)[0];
  if (longest !== undefined && longest[1] > windowMs) {
    const [topic, retention] = longest;
    const context = { option: 'inbox.dedupWindowMs', windowMs, topic, retentionMs: retention };
    if (options.allowShorterThanLogRetention) {
      warn(
        context,
        `inbox.dedupWindowMs is ${windowMs} ms (${human(windowMs)}) but the log ${kept(retention)} for topic '${topic}', ` +
          'accepted because inbox.allowShorterThanLogRetention is set: a record redelivered after its inbox row is deleted ' +
          '(a consumer group reset or rewound past the window) will be processed twice',
      );
      return { windowMs, retentionMs, derived: false, warnings };
    }
    throw new ConcordatError(
      `inbox.dedupWindowMs is ${windowMs} ms (${human(windowMs)}) but the log ${kept(retention)} for topic '${topic}': ` +
        `a record redelivered after its inbox row is deleted would be processed twice. To fix it, ${fix(topic, retention)}; ` +
        'or, to accept duplicates after a reset or rewind past the window, set inbox.allowShorterThanLogRetention: true.',
      { code: ErrorCode.DEDUP_WINDOW_TOO_SHORT, context },
    );
  }
  return { windowMs, retentionMs, derived: false, warnings };
}

/**
 * Records the window `consumers` run with in `concordat.inbox_window`, where
 * `concordat dlq replay` reads it (it runs without the app's options) to
 * refuse replaying a dead letter older than its group's window.
 */
export async function recordDedupWindow(dataSource: DataSource, consumers: readonly string[], windowMs: number): Promise<void> {
  if (consumers.length === 0) return;
  await dataSource.query(
    `INSERT INTO concordat.inbox_window (consumer, window_ms)
     SELECT consumer, $2::double precision FROM unnest($1::text[]) AS consumer
     ON CONFLICT (consumer) DO UPDATE SET window_ms = excluded.window_ms, recorded_at = now()`,
    [[...new Set(consumers)].sort(), windowMs === Infinity ? 'Infinity' : windowMs],
  );
}

/** Each topic's retention as the transport reports it; the topics it could not report, with why. */
async function reportedRetention(
  transport: Transport,
  topics: readonly string[],
): Promise<{ retentionMs: Record<string, number>; unreported: Array<{ topic: string; error: unknown }> }> {
  const retentionMs: Record<string, number> = {};
  const unreported: Array<{ topic: string; error: unknown }> = [];
  for (const topic of topics) {
    if (transport.retentionMs === undefined) {
      unreported.push({ topic, error: undefined });
      continue;
    }
    try {
      retentionMs[topic] = await transport.retentionMs(topic);
    } catch (error) {
      unreported.push({ topic, error });
    }
  }
  return { retentionMs, unreported };
}

function kept(retention: number): string {
  return retention === Infinity ? 'keeps records forever (no retention)' : `keeps records for ${retention} ms (${human(retention)})`;
}

function fix(topic: string, retention: number): string {
  return retention === Infinity
    ? `set inbox.dedupWindowMs to Infinity (or leave it unset), or give topic '${topic}' a retention`
    : `raise inbox.dedupWindowMs to at least ${retention} (or leave it unset to follow the log), or lower the retention of topic '${topic}'`;
}

function list(topics: readonly string[]): string {
  const shown = topics
    .slice(0, 5)
    .map((topic) => `'${topic}'`)
    .join(', ');
  return topics.length > 5 ? `${shown} and ${topics.length - 5} more` : shown;
}

/** `90000` → `1.5 min`, for messages. */
export function human(ms: number): string {
  if (ms === Infinity) return 'forever';
  const units: Array<[string, number]> = [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['min', 60_000],
    ['s', 1000],
  ];
  for (const [unit, size] of units) if (ms >= size) return `${Number((ms / size).toFixed(1))} ${unit}`;
  return `${ms} ms`;
}
