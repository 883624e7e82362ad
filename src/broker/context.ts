import type { CompiledBrokerOptions } from '../config/index.js';
import type { LogManager } from '../log/index.js';
import type { Logger } from '../observability/index.js';
import type { Authorizer } from './acl/index.js';
import type { AnyApi } from './apis/api.js';
import type { ByteBudget } from './byte-budget.js';
import type { BrokerMetrics } from './metrics.js';
import type { RequestHeader } from './codec/header.js';
import type { ReaderLimits } from './codec/reader.js';
import type { SaslSession } from './sasl/session.js';
import type { TopicAccess } from './topics.js';

/** What every request handler may use, shared by all connections of one broker. */
export interface BrokerContext {
  readonly logManager: LogManager;
  readonly options: CompiledBrokerOptions;
  readonly logger: Logger;
  /** Bounds applied to every decoded request. */
  readonly readerLimits: ReaderLimits;
  /** Host and port clients are told to use (known once listening). */
  readonly advertisedHost: string;
  readonly advertisedPort: number;
  /** The registration table, for ApiVersions. */
  readonly apis: ReadonlyMap<number, AnyApi>;
  /** Topic lookups with auto-creation when the options allow it. */
  readonly topics: TopicAccess;
  /** Bytes of request frames held at once across connections (requestBytesInFlightMax). */
  readonly requestBudget: ByteBudget;
  /** Aborted when the broker shuts down: long polls return at once. */
  readonly closing: AbortSignal;
  /** Request latencies and open connections (Prometheus). */
  readonly metrics: BrokerMetrics;
  /** ACL decisions, or null when the broker runs without an authorizer (every request is allowed, as before ACLs). */
  readonly authorizer: Authorizer | null;
}

/** The connection a request came on. */
export interface ConnectionContext {
  readonly id: number;
  /** `address:port` of the peer, for logs and DescribeGroups' client_host. */
  readonly remote: string;
  /**
   * Who the connection acts as, in Kafka's `Type:name` form: `User:<name>`
   * once SASL authenticated, else `User:<certificate subject>` with a
   * verified TLS client certificate, else `User:ANONYMOUS`.
   */
  readonly principal: string;
  /** The client's IP address (an IPv4-mapped IPv6 address as plain IPv4), which ACL hosts match. */
  readonly clientHost: string;
  /** SASL state, or null when the broker does not use SASL. */
  readonly sasl: SaslSession | null;
  /** Aborted when this connection closes: its long polls stop waiting. */
  readonly signal: AbortSignal;
  /** Closes the connection once the responses already queued (and this one) are written. */
  closeAfterResponse(reason: string): void;
  /** Closes the connection now, with a logged reason. */
  close(reason: string): void;
}

/** What an API handler is given with its request: the request's header, the broker's state and the connection it came on. */
export interface RequestContext {
  readonly header: RequestHeader;
  readonly broker: BrokerContext;
  readonly connection: ConnectionContext;
}
