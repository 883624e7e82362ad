import { z } from 'zod';
import { compileOptions } from './compile.js';

/**
 * How the outbox relay claims and publishes rows (`outbox/relay.ts` owns the shards and lanes, `outbox/lane.ts` claims,
 * publishes and deletes a batch).
 *
 * Memory is bounded by `lanes × batchBytesMax` (each lane has at most one
 * batch in flight); the backlog itself waits in PostgreSQL.
 */
export interface RelayOptions {
  /** Most rows published in one batch. Range 1..10000. @default 500 */
  batchRowsMax?: number;
  /** Most payload bytes in one batch (a single larger row still goes alone). Range 1 KiB..64 MiB. @default 4194304 (4 MiB) */
  batchBytesMax?: number;
  /**
   * Batches published concurrently by one relay: its shards are split over
   * this many lanes, each with one batch in flight. One lane's batch already
   * takes rows of every shard it owns (up to `batchRowsMax`), so more lanes
   * help only where the log's acknowledgement is slow against the database
   * round trip (a remote Kafka cluster); in one process they split what one
   * claim would take into several claims and appends (measured on the order
   * demo: 4 lanes cost 19% more round trips and 8% of the throughput).
   * Range 1..64. @default 1
   */
  lanes?: number;
  /**
   * Fallback poll of every owned shard when no wake-up arrives (a writer
   * died between its commit and its NOTIFY, rows inserted by hand), in ms.
   * Range 10..60000. @default 1000
   */
  pollIntervalMs?: number;
  /**
   * Writers' NOTIFY to relays in other processes: at most one per this many
   * ms per process (the first at once). Relays in the writer's own process
   * are woken in memory regardless. Range 1..10000. @default 10
   */
  notifyIntervalMs?: number;
  /** First delay after a failed batch, in ms; doubles per failure up to `retryBackoffMaxMs`. Range 1..60000. @default 100 */
  retryBackoffMs?: number;
  /** Longest delay between retries of a failed batch, in ms. Range 1..600000. @default 5000 */
  retryBackoffMaxMs?: number;
  /**
   * Longest wait for the log's durable acknowledgement of one batch, in ms;
   * past it the batch counts as failed and is published again after a
   * backoff (a late acknowledgement then yields duplicates, which consumers'
   * inboxes absorb). Range 100..600000. @default 30000
   */
  publishTimeoutMs?: number;
  /**
   * How long a relay's ownership of its outbox shards lasts without renewal,
   * in ms: a relay that dies gives its shards to the others within
   * `leaseMs + leaseRenewIntervalMs`. Range 500..600000. @default 10000
   */
  leaseMs?: number;
  /** Time between lease renewals (and rebalancing), in ms; at most a third of `leaseMs`. Range 50..200000. @default 2000 */
  leaseRenewIntervalMs?: number;
  /** Name of this relay in `concordat.outbox_shard` and in metrics. 1..200 characters. @default `<host>:<pid>:<random>` */
  relayId?: string;
  /** Partitions of a topic the relay creates because it does not exist yet. Range 1..1024. @default 8 */
  defaultPartitions?: number;
  /**
   * Shortest time between two passes that move due scheduled messages into
   * the outbox, in ms (`outbox/scheduled.ts`): the most a scheduled message
   * waits for others due just after it, so that they are moved together.
   * Range 1..1000. @default 10
   */
  scheduleTickMs?: number;
}

const schema = z
  .strictObject({
    batchRowsMax: z.number().int().min(1).max(10_000).default(500),
    batchBytesMax: z
      .number()
      .int()
      .min(1024)
      .max(64 * 1024 * 1024)
      .default(4 * 1024 * 1024),
    lanes: z.number().int().min(1).max(64).default(1),
    pollIntervalMs: z.number().int().min(10).max(60_000).default(1000),
    notifyIntervalMs: z.number().int().min(1).max(10_000).default(10),
    retryBackoffMs: z.number().int().min(1).max(60_000).default(100),
    retryBackoffMaxMs: z.number().int().min(1).max(600_000).default(5000),
    publishTimeoutMs: z.number().int().min(100).max(600_000).default(30_000),
    leaseMs: z.number().int().min(500).max(600_000).default(10_000),
    leaseRenewIntervalMs: z.number().int().min(50).max(200_000).default(2000),
    relayId: z.string().min(1).max(200).optional(),
    defaultPartitions: z.number().int().min(1).max(1024).default(8),
    scheduleTickMs: z.number().int().min(1).max(1000).default(10),
  })
  .refine((o) => o.leaseRenewIntervalMs * 3 <= o.leaseMs, {
    message: 'leaseRenewIntervalMs must be at most a third of leaseMs, so that a late renewal does not lose the lease',
    path: ['leaseRenewIntervalMs'],
  });

/** {@link RelayOptions} with every field present and checked (durations in ms, sizes in bytes). */
export type CompiledRelayOptions = z.output<typeof schema>;

/** Validates and fills in {@link RelayOptions}. @throws ConcordatError CONFIG_INVALID naming the option */
export function compileRelayOptions(options: RelayOptions = {}): CompiledRelayOptions {
  return compileOptions(schema, options, 'relay');
}
