import { hostname } from 'node:os';
import { isIP } from 'node:net';
import { z } from 'zod';
import { compileOptions } from './compile.js';
import type { LogManagerOptions } from './log-options.js';
import { compileMetricsOptions, type CompiledMetricsOptions, type MetricsOptions } from './metrics-options.js';

/** SASL mechanisms `concordat broker` implements. */
export const SaslMechanism = { PLAIN: 'PLAIN', SCRAM_SHA_256: 'SCRAM-SHA-256', SCRAM_SHA_512: 'SCRAM-SHA-512' } as const;
/** One of the {@link SaslMechanism} values. */
export type SaslMechanism = (typeof SaslMechanism)[keyof typeof SaslMechanism];

/** One SASL user given inline (tests, embedding) instead of in a credentials file. */
export interface SaslUserOptions {
  username: string;
  password: string;
}

/** Client authentication with SASL (RFC 4422) inside Kafka's SaslHandshake/SaslAuthenticate. */
export interface BrokerSaslOptions {
  /**
   * JSON credentials file (see docs/broker.md): `{ "users": [{ "username", "password" }
   * | { "username", "scramSha256"?: { "salt", "iterations", "storedKey", "serverKey" },
   *     "scramSha512"?: { the same, 64-byte keys } }] }`.
   * Exactly one of `credentialsFile` and `users` is required.
   */
  credentialsFile?: string;
  /** Users given inline. */
  users?: SaslUserOptions[];
  /**
   * Mechanisms offered, in order (Kafka's `sasl.enabled.mechanisms`); a
   * client naming another one in SaslHandshake gets UNSUPPORTED_SASL_MECHANISM
   * with this list. @default ['SCRAM-SHA-256', 'SCRAM-SHA-512', 'PLAIN']
   */
  mechanisms?: SaslMechanism[];
}

/** Kafka's `ssl.client.auth`: whether the TLS listener asks clients for a certificate. */
export const TlsClientAuth = { NONE: 'none', REQUESTED: 'requested', REQUIRED: 'required' } as const;
/** One of the {@link TlsClientAuth} values. */
export type TlsClientAuth = (typeof TlsClientAuth)[keyof typeof TlsClientAuth];

/** TLS on the listener: PEM certificate chain and private key files, and mutual TLS. */
export interface BrokerTlsOptions {
  certFile: string;
  keyFile: string;
  /**
   * PEM file of the certificate authorities a client certificate must chain
   * to (Kafka's `ssl.truststore`). Required when `clientAuth` is not `none`.
   */
  caFile?: string;
  /**
   * Mutual TLS (Kafka's `ssl.client.auth`): `required` refuses a handshake
   * without a client certificate that chains to `caFile`; `requested` asks
   * for one and also accepts a client without, or with one that does not
   * verify, as `User:ANONYMOUS`. A verified certificate makes the connection's
   * principal `User:<subject>` in RFC 2253 order (`User:CN=alice,OU=eng,O=acme`,
   * Kafka's default `ssl.principal.mapping.rules`), unless SASL names one.
   * @default 'none'
   */
  clientAuth?: TlsClientAuth;
}

/**
 * The ACL authorizer (Kafka's `authorizer.class.name`): once given, every
 * request is checked against the ACLs (CreateAcls, DescribeAcls, DeleteAcls),
 * and what no ACL allows is refused.
 */
export interface BrokerAuthorizerOptions {
  /** Principals allowed everything without ACLs (Kafka's `super.users`), e.g. `User:admin`. @default [] */
  superUsers?: string[];
}

/** Options of `concordat broker` (and of `startBroker` in process). */
export interface BrokerOptions {
  /** Directory of the log the broker serves. Required unless a log is handed to `startBroker`. */
  dataDir?: string;
  /** Address to listen on. Anything but loopback needs SASL or `insecure`. @default '127.0.0.1' */
  host?: string;
  /** TCP port; 0 picks a free one. Range 0..65535. @default 9092 */
  port?: number;
  /**
   * Host clients are told to connect to (Metadata, FindCoordinator).
   * @default `host`, or the machine's hostname when `host` is a wildcard (0.0.0.0, ::)
   */
  advertisedHost?: string;
  /** Port clients are told to connect to. @default the port actually bound */
  advertisedPort?: number;
  /** This broker's node ID, also reported as the controller. Range 0..2^31-1. @default 1 */
  nodeId?: number;
  /** Cluster ID reported by Metadata v2+. @default 'concordat' */
  clusterId?: string;
  /** Create unknown topics named by Metadata or Produce. @default false */
  autoCreateTopics?: boolean;
  /** Partitions of an auto-created topic (and of CreateTopics with -1). Range 1..10000. @default 1 */
  defaultPartitions?: number;
  /** Allow a non-loopback listener without SASL. @default false */
  insecure?: boolean;
  sasl?: BrokerSaslOptions;
  tls?: BrokerTlsOptions;
  /** Enables ACLs with deny by default; absent, every request is allowed (no authorizer). */
  authorizer?: BrokerAuthorizerOptions;
  /** Open connections at once; more are closed on accept. Range 1..100000. @default 1024 */
  connectionsMax?: number;
  /** Largest request frame, in bytes (Kafka's socket.request.max.bytes). Range 1024..2^31-1. @default 104857600 */
  requestBytesMax?: number;
  /**
   * Bytes of request frames held at once across all connections (Kafka's
   * `queued.max.request.bytes`): a frame is counted from its size prefix until
   * its request is answered; a connection whose next frame does not fit pauses.
   * At least requestBytesMax. Range 1024..2^40. @default 536870912 (512 MiB)
   */
  requestBytesInFlightMax?: number;
  /** Longest string field, in bytes. Range 1..32767. @default 32767 */
  stringBytesMax?: number;
  /** Most elements in any array field. Range 1..10^7. @default 100000 */
  arrayLengthMax?: number;
  /** Requests of one connection being processed or awaiting their turn to answer; reading pauses beyond. Range 1..10000. @default 100 */
  inFlightRequestsMax?: number;
  /** Bytes of responses queued on one connection before reading pauses. Range 64 KiB..2^31-1. @default 67108864 */
  queuedResponseBytesMax?: number;
  /** A connection with nothing in flight is closed after this long, in ms (connections.max.idle.ms). Range 1000..86400000. @default 600000 */
  connectionIdleMs?: number;
  /** With SASL on, a connection must authenticate within this time, in ms. Range 100..600000. @default 30000 */
  authenticationTimeoutMs?: number;
  /**
   * With SASL on, how long an authentication lasts, in ms (Kafka's
   * `connections.max.reauth.ms`, KIP-368): SaslAuthenticate v1 tells the
   * client this session lifetime, the client authenticates again on the same
   * connection before it ends (as the same principal, with the same
   * mechanism), and a connection whose session ended is closed on its next
   * request other than SaslHandshake, SaslAuthenticate or ApiVersions.
   * 0: sessions never end. Range 0..2^53-1. @default 0
   */
  connectionsMaxReauthMs?: number;
  /** Upper bound on a Fetch's maxWaitMs, in ms. Range 0..600000. @default 30000 */
  fetchWaitMsMax?: number;
  /** Upper bound on the bytes of one Fetch response (the request's maxBytes is lowered to it). Range 1 KiB..2^31-1. @default 52428800 */
  fetchResponseBytesMax?: number;
  /**
   * Options of the log the broker opens (not used when a log is handed to
   * `startBroker`). One default differs from the log's own: the broker's
   * consumer groups wait `groups.initialRebalanceDelayMs` =
   * {@link BROKER_INITIAL_REBALANCE_DELAY_MS} (3000 ms, Kafka's
   * `group.initial.rebalance.delay.ms`) before an empty group's first
   * rebalance, as Kafka clients expect; the in-process log defaults to 0.
   * @default { groups: { initialRebalanceDelayMs: 3000 } }
   */
  log?: Omit<LogManagerOptions, 'dataDir'>;
  /** Time a graceful shutdown waits for in-flight requests before closing connections, in ms. Range 0..600000. @default 5000 */
  shutdownGraceMs?: number;
  /**
   * Serve `/metrics`, `/healthz` and `/readyz` (ready: the log is open and the
   * listener accepts) on this address (`--metrics-port`, `--metrics-host`).
   * @default none: no HTTP endpoint (metrics are still recorded in the registry)
   */
  metrics?: MetricsOptions;
}

/**
 * The broker's default `group.initial.rebalance.delay.ms`, in ms: Kafka's
 * broker default. Kafka clients' group tests (librdkafka's 0113, 0118)
 * count on several consumers that start together landing in one generation.
 */
export const BROKER_INITIAL_REBALANCE_DELAY_MS = 3000;

const INT32_MAX = 2 ** 31 - 1;
const WILDCARDS = new Set(['0.0.0.0', '::', '']);

const userSchema = z.strictObject({ username: z.string().min(1).max(1024), password: z.string().min(1).max(1024) });

const saslSchema = z
  .strictObject({
    credentialsFile: z.string().min(1).optional(),
    users: z.array(userSchema).min(1).max(10_000).optional(),
    mechanisms: z
      .array(z.enum([SaslMechanism.PLAIN, SaslMechanism.SCRAM_SHA_256, SaslMechanism.SCRAM_SHA_512]))
      .min(1)
      .default([SaslMechanism.SCRAM_SHA_256, SaslMechanism.SCRAM_SHA_512, SaslMechanism.PLAIN]),
  })
  .refine((sasl) => (sasl.credentialsFile === undefined) !== (sasl.users === undefined), {
    message: 'give exactly one of credentialsFile and users',
  });

const schema = z
  .strictObject({
    dataDir: z.string().min(1).optional(),
    host: z.string().default('127.0.0.1'),
    port: z.number().int().min(0).max(65_535).default(9092),
    advertisedHost: z.string().min(1).optional(),
    advertisedPort: z.number().int().min(1).max(65_535).optional(),
    nodeId: z.number().int().min(0).max(INT32_MAX).default(1),
    clusterId: z.string().min(1).max(255).default('concordat'),
    autoCreateTopics: z.boolean().default(false),
    defaultPartitions: z.number().int().min(1).max(10_000).default(1),
    insecure: z.boolean().default(false),
    sasl: saslSchema.optional(),
    tls: z
      .strictObject({
        certFile: z.string().min(1),
        keyFile: z.string().min(1),
        caFile: z.string().min(1).optional(),
        clientAuth: z.enum([TlsClientAuth.NONE, TlsClientAuth.REQUESTED, TlsClientAuth.REQUIRED]).default(TlsClientAuth.NONE),
      })
      .refine((tls) => tls.clientAuth === TlsClientAuth.NONE || tls.caFile !== undefined, {
        message: 'clientAuth requested or required needs caFile (the CA certificates client certificates must chain to)',
        path: ['caFile'],
      })
      .optional(),
    authorizer: z
      .strictObject({
        superUsers: z.array(z.string().regex(/^[^:]+:.+$/, 'a principal is Type:name, e.g. User:admin')).default([]),
      })
      .optional(),
    connectionsMax: z.number().int().min(1).max(100_000).default(1024),
    requestBytesMax: z
      .number()
      .int()
      .min(1024)
      .max(INT32_MAX)
      .default(100 * 1024 * 1024),
    requestBytesInFlightMax: z
      .number()
      .int()
      .min(1024)
      .max(2 ** 40)
      .default(512 * 1024 * 1024),
    stringBytesMax: z.number().int().min(1).max(32_767).default(32_767),
    arrayLengthMax: z.number().int().min(1).max(10_000_000).default(100_000),
    inFlightRequestsMax: z.number().int().min(1).max(10_000).default(100),
    queuedResponseBytesMax: z
      .number()
      .int()
      .min(65_536)
      .max(INT32_MAX)
      .default(64 * 1024 * 1024),
    connectionIdleMs: z.number().int().min(1000).max(86_400_000).default(600_000),
    authenticationTimeoutMs: z.number().int().min(100).max(600_000).default(30_000),
    connectionsMaxReauthMs: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).default(0),
    fetchWaitMsMax: z.number().int().min(0).max(600_000).default(30_000),
    fetchResponseBytesMax: z
      .number()
      .int()
      .min(1024)
      .max(INT32_MAX)
      .default(50 * 1024 * 1024),
    shutdownGraceMs: z.number().int().min(0).max(600_000).default(5000),
    // Validated in full by compileMetricsOptions, which names the bad option as `broker.metrics.<name>`.
    metrics: z.custom<MetricsOptions>((value) => typeof value === 'object' && value !== null && !Array.isArray(value), 'must be an object').optional(),
    // Validated in full by LogManager.open, which names the bad option as `log.<name>`.
    log: z
      .custom<Omit<LogManagerOptions, 'dataDir'>>(
        (value) => typeof value === 'object' && value !== null && !Array.isArray(value) && !('dataDir' in value),
        'must be log options without dataDir (give broker.dataDir)',
      )
      .default({}),
  })
  .refine((options) => options.requestBytesInFlightMax >= options.requestBytesMax, {
    message: 'requestBytesInFlightMax must be at least requestBytesMax, or a largest frame could never be read',
    path: ['requestBytesInFlightMax'],
  });

type Parsed = z.output<typeof schema>;

/** {@link BrokerOptions} with every default applied; `advertisedPort` null means "the port bound". */
export type CompiledBrokerOptions = Omit<Parsed, 'dataDir' | 'advertisedHost' | 'advertisedPort' | 'sasl' | 'tls' | 'authorizer' | 'metrics'> & {
  dataDir: string | null;
  advertisedHost: string;
  advertisedPort: number | null;
  sasl:
    | (Omit<NonNullable<Parsed['sasl']>, 'credentialsFile' | 'users'> & {
        credentialsFile: string | null;
        users: SaslUserOptions[] | null;
      })
    | null;
  tls: (Omit<NonNullable<Parsed['tls']>, 'caFile'> & { caFile: string | null }) | null;
  /** Null without an authorizer (no ACLs: every request is allowed). */
  authorizer: { superUsers: string[] } | null;
  /** Null when no metrics endpoint is asked for. */
  metrics: CompiledMetricsOptions | null;
};

/** Whether `host` names only this machine (127.0.0.0/8, ::1, localhost). */
export function isLoopbackHost(host: string): boolean {
  if (host === 'localhost' || host === '::1' || host === '[::1]') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host.toLowerCase().startsWith('::ffff:127.');
}

/** Validates and fills in {@link BrokerOptions}. @throws ConcordatError CONFIG_INVALID naming the option */
export function compileBrokerOptions(options: BrokerOptions = {}): CompiledBrokerOptions {
  const parsed = compileOptions(schema, options, 'broker');
  const sasl = parsed.sasl;
  return {
    ...parsed,
    dataDir: parsed.dataDir ?? null,
    advertisedHost: parsed.advertisedHost ?? (WILDCARDS.has(parsed.host) ? hostname() : parsed.host),
    advertisedPort: parsed.advertisedPort ?? null,
    sasl: sasl === undefined ? null : { mechanisms: sasl.mechanisms, credentialsFile: sasl.credentialsFile ?? null, users: sasl.users ?? null },
    tls: parsed.tls === undefined ? null : { ...parsed.tls, caFile: parsed.tls.caFile ?? null },
    authorizer: parsed.authorizer ?? null,
    log: { ...parsed.log, groups: { initialRebalanceDelayMs: BROKER_INITIAL_REBALANCE_DELAY_MS, ...parsed.log.groups } },
    metrics: parsed.metrics === undefined ? null : compileMetricsOptions(parsed.metrics, 'broker.metrics'),
  };
}
