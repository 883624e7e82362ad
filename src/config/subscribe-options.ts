import { z } from 'zod';
import { compileOptions, integerIn } from './compile.js';

/** Bounds of a subscription's `batchRecordsMax` (`SubscribeOptions` in `transport/transport.ts`). */
export const BATCH_RECORDS = { default: 64, max: 10_000 } as const;

/** Bounds of a subscription's `concurrency.perPartition` (`ConcurrencyOptions` in `transport/transport.ts`). */
export const PER_PARTITION_CONCURRENCY = { default: 1, max: 256 } as const;

/**
 * The part of a subscription's options that says how its records are handed
 * to the consumer. The options themselves are `SubscribeOptions`, part of the
 * Transport contract in `transport/transport.ts`; both transports validate
 * this part here.
 */
export interface SubscribeHandlerOptions {
  /** Consumer group, named in messages. */
  groupId: string;
  /** Called with one record at a time; give exactly one of `handler` and `batchHandler`. */
  handler?: unknown;
  /** Called with up to `batchRecordsMax` records of one partition at a time. */
  batchHandler?: unknown;
  /** Most records in one call of `batchHandler`. Range 1..10000. @default 64 */
  batchRecordsMax?: number;
  /** Calls in flight at once for one partition: one number for every topic, or one per topic (topics not listed: 1). Range 1..256. @default 1 */
  concurrency?: { perPartition?: number | Record<string, number> };
}

const perPartitionValue = integerIn(1, PER_PARTITION_CONCURRENCY.max);

/** One number, or one per topic; a bad topic's value is named by its topic: `perPartition['orders.v1']`. */
const perPartitionSchema = z.custom<number | Record<string, number>>().superRefine((value, context) => {
  const message = `must be an integer in 1..${PER_PARTITION_CONCURRENCY.max}`;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    if (!perPartitionValue.safeParse(value).success) context.addIssue({ code: 'custom', message });
    return;
  }
  for (const [topic, n] of Object.entries(value)) {
    if (!perPartitionValue.safeParse(n).success) context.addIssue({ code: 'custom', message, path: [topic] });
  }
});

const schema = z
  .object({
    groupId: z.string(),
    handler: z.unknown().optional(),
    batchHandler: z.unknown().optional(),
    batchRecordsMax: integerIn(1, BATCH_RECORDS.max).default(BATCH_RECORDS.default),
    concurrency: z
      .object({
        perPartition: perPartitionSchema.optional(),
      })
      .optional(),
  })
  .superRefine((options, context) => {
    if ((options.handler === undefined) === (options.batchHandler === undefined)) {
      context.addIssue({ code: 'custom', message: `give exactly one of handler and batchHandler (group '${options.groupId}')`, path: [] });
    }
  });

/** How a subscription's records are handed over, every default applied. */
export interface CompiledSubscribeHandlerOptions {
  /** Most records in one call: 1 for `handler`, `batchRecordsMax` for `batchHandler`. */
  recordsMax: number;
  /** `concurrency.perPartition` of `topic` (the default, 1, for a topic not listed). */
  perPartition: (topic: string) => number;
}

/**
 * Validates the handler options of a subscription and fills in the defaults.
 * @throws ConcordatError CONFIG_INVALID naming the option, when not exactly
 *   one of `handler` and `batchHandler` is given, `batchRecordsMax` is not an
 *   integer in 1..10000, or a `concurrency.perPartition` is not an integer in
 *   1..256: e.g. `invalid options: subscribe.batchRecordsMax: must be an
 *   integer in 1..10000 (got 0)`, `invalid options:
 *   subscribe.concurrency.perPartition['orders.v1']: must be an integer in 1..256 (got 300)`
 */
export function compileSubscribeHandlerOptions(options: SubscribeHandlerOptions): CompiledSubscribeHandlerOptions {
  const parsed = compileOptions(schema, options, 'subscribe');
  const recordsMax = parsed.handler !== undefined ? 1 : parsed.batchRecordsMax;
  const given = parsed.concurrency?.perPartition;
  if (given === undefined) return { recordsMax, perPartition: () => PER_PARTITION_CONCURRENCY.default };
  if (typeof given === 'number') return { recordsMax, perPartition: () => given };
  const byTopic = new Map(Object.entries(given));
  return { recordsMax, perPartition: (topic) => byTopic.get(topic) ?? PER_PARTITION_CONCURRENCY.default };
}
