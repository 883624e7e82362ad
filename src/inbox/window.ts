import { DEDUP_WINDOW_MS_FALLBACK, type CompiledInboxOptions } from '../config/index.js';
import { ConcordatError, ErrorCode } from '../errors.js';
import { createLogger } from '../observability/index.js';
import type { Transport } from '../transport/index.js';

/** The dedup window the app runs with, and where it came from. */
export interface DedupWindow {
  /** In ms; Infinity keeps inbox rows forever. */
  windowMs: number;
  /** Retention of each consumed topic as the transport reported it (ms, Infinity for forever), when it could. */
  retentionMs: Record<string, number>;
  /** Whether `windowMs` was derived (not set by `inbox.dedupWindowMs`). */
  derived: boolean;
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
 * @throws ConcordatError DEDUP_WINDOW_TOO_SHORT naming `inbox.dedupWindowMs`,
 *   the topic and both durations.
 */
export async function resolveDedupWindow(transport: Transport, topics: readonly string[], options: CompiledInboxOptions): Promise<DedupWindow> {
  const retentionMs: Record<string, number> = {};
  if (transport.retentionMs !== undefined) {
    for (const topic of topics) retentionMs[topic] = await transport.retentionMs(topic);
  }
  const known = Object.values(retentionMs);
  if (transport.retentionMs === undefined && topics.length > 0) {
    createLogger('inbox').warn(
      { transport: transport.kind, dedupWindowMs: options.dedupWindowMs ?? DEDUP_WINDOW_MS_FALLBACK },
      'the transport does not report topic retention, so inbox.dedupWindowMs cannot be checked against it; make sure it is at least the retention of every consumed topic',
    );
  }
  if (options.dedupWindowMs === undefined) {
    const windowMs = known.length === 0 ? DEDUP_WINDOW_MS_FALLBACK : Math.max(...known);
    return { windowMs, retentionMs, derived: true };
  }
  const windowMs = options.dedupWindowMs;
  const longest = Object.entries(retentionMs).sort(([, a], [, b]) => b - a)[0];
  if (longest !== undefined && longest[1] > windowMs) {
    const [topic, retention] = longest;
    const kept = retention === Infinity ? 'keeps records forever (no retention)' : `keeps records for ${retention} ms (${human(retention)})`;
    const fix =
      retention === Infinity
        ? `set inbox.dedupWindowMs to Infinity (or leave it unset), or give topic '${topic}' a retention`
        : `raise inbox.dedupWindowMs to at least ${retention} (or leave it unset to follow the log), or lower the retention of topic '${topic}'`;
    throw new ConcordatError(
      `inbox.dedupWindowMs is ${windowMs} ms (${human(windowMs)}) but the log ${kept} for topic '${topic}': ` +
        `a record redelivered after its inbox row is deleted would be processed twice. To fix it, ${fix}.`,
      { code: ErrorCode.DEDUP_WINDOW_TOO_SHORT, context: { option: 'inbox.dedupWindowMs', windowMs, topic, retentionMs: retention } },
    );
  }
  return { windowMs, retentionMs, derived: false };
}

/** `90000` → `1.5 min`, for messages. */
export function human(ms: number): string {
  if (ms === Infinity) return 'forever';
  const units: Array<[string, number]> = [['d', 86_400_000], ['h', 3_600_000], ['min', 60_000], ['s', 1000]];
  for (const [unit, size] of units) if (ms >= size) return `${Number((ms / size).toFixed(1))} ${unit}`;
  return `${ms} ms`;
}
