import { z } from 'zod';
import { compileOptions } from './compile.js';

/** Options of the global-transaction coordinator (`transactions/coordinator/coordinator.ts`; bind them to its `COORDINATOR_OPTIONS` token); every duration in ms. */
export interface CoordinatorOptions {
  /** How often the coordinator looks for expired deadlines and due resends, in ms. Range 10..60000. @default 250 */
  scanIntervalMs?: number;
  /** Wait before sending a decision again to a branch that has not acknowledged, in ms; doubles per resend. Range 10..3600000. @default 5000 */
  resendIntervalMs?: number;
  /** Longest wait between resends, in ms. Range 10..86400000. @default 60000 */
  resendIntervalMaxMs?: number;
  /**
   * Resends of a decision in a row that no branch still waited on
   * acknowledges before the coordinator gives up: those branches fail and
   * the global transaction ends FAILED, with a reason naming them, for an
   * operator (`concordat tx list --state FAILED`; `tx retry` sends it
   * again). Covers a participant that no running service declares (a typo)
   * and one down for good; a saga compensation counts from each of its
   * steps. With the default intervals, 60 resends take about an hour
   * (5 s, 10 s, 20 s, 40 s, then every 60 s). Range 1..1000000. @default 60
   */
  decisionResendsMax?: number;
  /** Most global transactions handled per scan. Range 1..10000. @default 200 */
  scanBatchMax?: number;
  /** How often fence rows and ended global transactions are cleaned up, in ms; 0 turns cleanup off. Range 0 or 1000..86400000. @default 60000 */
  cleanupIntervalMs?: number;
  /**
   * Age after which the fence row of an ended global transaction is deleted,
   * in ms. Must exceed how long a command can still be redelivered (log
   * retention, inbox dedup window); the coordinator warns at start when it
   * is shorter than its app's inbox dedup window. Range 60000..31536000000. @default 604800000 (7 days)
   */
  fenceRetentionMs?: number;
  /** Age after which an ended (not FAILED) global transaction, its branches and timeline are deleted, in ms; at least `fenceRetentionMs`. Range 60000..31536000000. @default 604800000 (7 days) */
  historyRetentionMs?: number;
  /** Rows deleted per cleanup batch (each batch is one short statement). Range 1..100000. @default 1000 */
  cleanupBatchRows?: number;
  /** Most replies handled in one database transaction (group commit, see `group-commit.ts`). Range 1..10000. @default 256 */
  replyBatchMax?: number;
}

const YEAR_MS = 365 * 24 * 3600 * 1000;
const WEEK_MS = 7 * 24 * 3600 * 1000;

const optionsSchema = z
  .strictObject({
    scanIntervalMs: z.number().int().min(10).max(60_000).default(250),
    resendIntervalMs: z.number().int().min(10).max(3_600_000).default(5000),
    resendIntervalMaxMs: z.number().int().min(10).max(86_400_000).default(60_000),
    decisionResendsMax: z.number().int().min(1).max(1_000_000).default(60),
    scanBatchMax: z.number().int().min(1).max(10_000).default(200),
    cleanupIntervalMs: z.union([z.literal(0), z.number().int().min(1000).max(86_400_000)]).default(60_000),
    fenceRetentionMs: z.number().int().min(60_000).max(YEAR_MS).default(WEEK_MS),
    historyRetentionMs: z.number().int().min(60_000).max(YEAR_MS).default(WEEK_MS),
    cleanupBatchRows: z.number().int().min(1).max(100_000).default(1000),
    replyBatchMax: z.number().int().min(1).max(10_000).default(256),
  })
  .refine((o) => o.resendIntervalMs <= o.resendIntervalMaxMs, { message: 'must not exceed resendIntervalMaxMs', path: ['resendIntervalMs'] })
  .refine((o) => o.historyRetentionMs >= o.fenceRetentionMs, {
    message: 'must be at least fenceRetentionMs (a fence outliving its global transaction could not tell it ended)',
    path: ['historyRetentionMs'],
  });
/** {@link CoordinatorOptions} with every field present and checked. */
export type CompiledCoordinatorOptions = z.output<typeof optionsSchema>;

/** Validates and fills in {@link CoordinatorOptions}. @throws ConcordatError CONFIG_INVALID naming the option */
export function compileCoordinatorOptions(options: CoordinatorOptions = {}): CompiledCoordinatorOptions {
  return compileOptions(optionsSchema, options, 'coordinator');
}
