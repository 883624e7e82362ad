import { readFile } from 'node:fs/promises';
import { createServer as createTcpServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { compileBrokerOptions, isLoopbackHost, TlsClientAuth, type BrokerOptions, type CompiledBrokerOptions } from '../config/index.js';
import { ConcordatError, ErrorCode } from '../errors.js';
import { attachLogMetrics, LogManager } from '../log/index.js';
import { createLogger, MetricsServer, type MetricsAddress, type Logger } from '../observability/index.js';
import { register as defaultRegistry } from 'prom-client';
import { AclStore, Authorizer } from './acl/index.js';
import { API_TABLE } from './apis/index.js';
import { ByteBudget } from './byte-budget.js';
import { Connection } from './connection.js';
import type { BrokerContext } from './context.js';
import { brokerMetrics } from './metrics.js';
import { CredentialStore } from './sasl/credentials.js';
import { TopicAccess } from './topics.js';

/** The broker's own view of its context: it learns the port it advertises once bound. */
type Writable<T> = { -readonly [K in keyof T]: T[K] };

/** What {@link Broker.start} may be given besides its options. */
export interface StartBrokerDependencies {
  /** Serve this already open log instead of opening `dataDir`; the caller keeps closing it. */
  logManager?: LogManager;
  /**
   * The former name of {@link StartBrokerDependencies.logManager}, read when
   * `logManager` is not given.
   * @deprecated Use `logManager`; `log` will be removed in the next release.
   */
  log?: LogManager;
  /** Where the broker logs. @default createLogger('broker') */
  logger?: Logger;
}

/**
 * `concordat broker`: a TCP (or TLS) listener that serves a {@link LogManager}
 * over Kafka's wire protocol.
 *
 * Start-up refuses a listener on a non-loopback address without SASL unless
 * `insecure` is set: a log reachable from the network must not be open to it
 * by accident. At most `connectionsMax` connections are served; one more is
 * closed on accept with a logged reason.
 *
 * Shutdown ({@link Broker.close}) stops accepting, wakes long polls, waits up
 * to `shutdownGraceMs` for in-flight requests to be answered, closes the
 * connections, then closes the log if the broker opened it.
 *
 * Concurrency: connections are served side by side, their requests
 * interleaving at every await on the one event loop; within a connection
 * handlers start in frame order and responses leave in that order
 * (connection.ts). Ordering across connections is the log's: appends to
 * one partition take offsets in the order their handlers reached the log.
 * The getters may be read at any time; `close` may be called at any time
 * and more than once, every call sharing the one shutdown.
 */
export class Broker {
  private readonly connections = new Set<Connection>();
  private nextConnectionId = 1;
  private closePromise: Promise<void> | null = null;
  private metricsServer: MetricsServer | null = null;
  private readonly detachMetrics: Array<() => void> = [];

  private constructor(
    private readonly server: Server,
    readonly options: CompiledBrokerOptions,
    private readonly context: Writable<BrokerContext>,
    private readonly credentials: CredentialStore | null,
    private readonly ownsLog: boolean,
    private readonly closing: AbortController,
    private readonly logger: Logger,
  ) {}

  /**
   * Opens the log (unless given one), binds, and starts serving.
   * @throws ConcordatError CONFIG_INVALID for bad options or credentials,
   *   INSECURE_LISTENER for a non-loopback host without SASL or `insecure`,
   *   and the log's own errors (LOG_DIR_LOCKED, ...).
   */
  static async start(input: BrokerOptions, dependencies: StartBrokerDependencies = {}): Promise<Broker> {
    const options = compileBrokerOptions(input);
    const logger = dependencies.logger ?? createLogger('broker');
    const mutualTls = options.tls?.clientAuth === TlsClientAuth.REQUIRED;
    if (!isLoopbackHost(options.host) && options.sasl === null && !mutualTls && !options.insecure) {
      throw new ConcordatError(
        `refusing to listen on ${options.host} without SASL: give SASL credentials, require TLS client certificates, listen on 127.0.0.1, or pass --insecure`,
        {
          code: ErrorCode.INSECURE_LISTENER,
          context: { host: options.host },
        },
      );
    }
    const given = dependencies.logManager ?? dependencies.log;
    if (given === undefined && options.dataDir === null) {
      throw new ConcordatError('invalid options: broker.dataDir: required when no log is given', { code: ErrorCode.CONFIG_INVALID });
    }
    const credentials = await loadCredentials(options);
    const server = await createListener(options);
    const logManager = given ?? (await LogManager.open({ dataDir: options.dataDir!, ...options.log }));
    let authorizer: Authorizer | null;
    try {
      authorizer = options.authorizer === null ? null : new Authorizer(await AclStore.open(logManager.options.dataDir), options.authorizer.superUsers);
    } catch (error) {
      server.close();
      if (given === undefined) await logManager.close();
      throw error;
    }
    const closing = new AbortController();
    const context = {
      logManager,
      options,
      logger,
      readerLimits: { stringBytesMax: options.stringBytesMax, arrayLengthMax: options.arrayLengthMax, taggedFieldsMax: 64 },
      advertisedHost: options.advertisedHost,
      advertisedPort: options.advertisedPort ?? options.port,
      apis: API_TABLE,
      topics: new TopicAccess(logManager, options),
      requestBudget: new ByteBudget(options.requestBytesInFlightMax),
      closing: closing.signal,
      metrics: brokerMetrics(options.metrics?.registry ?? defaultRegistry),
      authorizer,
    };
    const broker = new Broker(server, options, context, credentials, given === undefined, closing, logger);
    try {
      await broker.listen();
      await broker.serveMetrics();
    } catch (error) {
      await broker.metricsServer?.close();
      for (const detach of broker.detachMetrics.splice(0)) detach();
      broker.server.close();
      if (given === undefined) await logManager.close();
      throw error;
    }
    return broker;
  }

  /** Where `/metrics`, `/healthz` and `/readyz` listen, or null without the `metrics` option. */
  get metricsAddress(): MetricsAddress | null {
    return this.metricsServer?.address ?? null;
  }

  /** Records the log's and the connections' metrics, and serves them when `options.metrics` asks to. */
  private async serveMetrics(): Promise<void> {
    const registry = this.options.metrics?.registry ?? defaultRegistry;
    this.detachMetrics.push(
      attachLogMetrics(this.context.logManager, registry),
      this.context.metrics.attachConnections(() => this.connections.size),
    );
    if (this.options.metrics === null) return;
    this.metricsServer = await MetricsServer.start(
      this.options.metrics,
      {
        log: () => (this.context.logManager.isOpen ? null : 'the log is closed'),
        listener: () =>
          this.closePromise !== null ? 'the broker is shutting down' : this.server.listening ? null : 'the Kafka listener is not accepting connections',
      },
      'broker',
    );
  }

  /** The port bound (useful with `port: 0`). */
  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** The address listened on, as given (`host` option). */
  get host(): string {
    return this.options.host;
  }

  /** `host:port` clients should be given. */
  get bootstrap(): string {
    return `${this.context.advertisedHost}:${this.context.advertisedPort}`;
  }

  /** The log served (opened by the broker, or the one it was given). */
  get logManager(): LogManager {
    return this.context.logManager;
  }

  /**
   * The former name of {@link Broker.logManager}.
   * @deprecated Use `logManager`; `log` will be removed in the next release.
   */
  get log(): LogManager {
    return this.context.logManager;
  }

  /** Connections open right now. */
  get connectionCount(): number {
    return this.connections.size;
  }

  /**
   * Bytes of the request budget (`requestBytesInFlightMax`) reserved right
   * now: every frame announced by its size prefix and not yet answered.
   */
  get requestBytesInFlight(): number {
    return this.context.requestBudget.reserved;
  }

  /**
   * Request frames whose size prefix arrived but that do not fit the request
   * budget yet: their connections are paused until earlier requests are
   * answered. Above zero for long, `requestBytesInFlightMax` is too small for
   * the load (or a client sends frames faster than the log answers).
   */
  get requestsWaiting(): number {
    return this.context.requestBudget.waiting;
  }

  private async listen(): Promise<void> {
    const event = this.options.tls === null ? 'connection' : 'secureConnection';
    this.server.on(event, (socket: Socket) => this.accept(socket));
    this.server.on('tlsClientError', (error: Error, socket: Socket) => {
      this.logger.debug({ reason: error.message, remote: `${socket.remoteAddress}:${socket.remotePort}` }, 'TLS handshake failed');
    });
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.options.port, this.options.host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    this.server.on('error', (error) => this.logger.error({ err: error }, 'listener error'));
    if (this.options.advertisedPort === null) this.context.advertisedPort = this.port;
    this.logger.info(
      {
        host: this.options.host,
        port: this.port,
        advertised: this.bootstrap,
        tls: this.options.tls !== null,
        clientAuth: this.options.tls?.clientAuth ?? null,
        sasl: this.options.sasl !== null,
        authorizer: this.context.authorizer !== null,
      },
      'broker listening',
    );
  }

  private accept(socket: Socket): void {
    const remote = `${socket.remoteAddress}:${socket.remotePort}`;
    if (this.closePromise !== null) {
      socket.destroy();
      return;
    }
    if (this.connections.size >= this.options.connectionsMax) {
      this.logger.warn({ remote, connectionsMax: this.options.connectionsMax }, 'closing connection: connectionsMax reached');
      socket.destroy();
      return;
    }
    const connection = new Connection(
      socket,
      this.nextConnectionId,
      remote,
      this.context,
      this.credentials,
      (closed) => this.connections.delete(closed),
      this.options.tls === null ? null : certificatePrincipal(socket as TLSSocket),
    );
    this.nextConnectionId += 1;
    this.connections.add(connection);
  }

  /** Stops serving; see the class comment. Safe to call more than once. */
  close(): Promise<void> {
    this.closePromise ??= this.shutdown();
    return this.closePromise;
  }

  private async shutdown(): Promise<void> {
    this.logger.info({ connections: this.connections.size }, 'broker shutting down');
    const stopped = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.closing.abort(new ConcordatError('broker shutting down', { code: ErrorCode.LOG_CLOSED }));
    const deadline = Date.now() + this.options.shutdownGraceMs;
    while (Date.now() < deadline && [...this.connections].some((c) => c.pendingRequests > 0)) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    for (const connection of [...this.connections]) connection.close('broker shutting down', 'info');
    await stopped;
    if (this.ownsLog) await this.context.logManager.close();
    for (const detach of this.detachMetrics.splice(0)) detach();
    await this.metricsServer?.close();
    this.logger.info('broker stopped');
  }
}

/** Starts a broker; see {@link Broker.start}. */
export function startBroker(options: BrokerOptions, dependencies: StartBrokerDependencies = {}): Promise<Broker> {
  return Broker.start(options, dependencies);
}

async function loadCredentials(options: CompiledBrokerOptions): Promise<CredentialStore | null> {
  const sasl = options.sasl;
  if (sasl === null) return null;
  if (sasl.users !== null) return CredentialStore.fromPasswords(sasl.users);
  return CredentialStore.fromFile(sasl.credentialsFile!);
}

async function createListener(options: CompiledBrokerOptions): Promise<Server> {
  if (options.tls === null) return createTcpServer({ noDelay: true });
  const read = async (path: string, what: string) => {
    try {
      return await readFile(path);
    } catch (error) {
      throw new ConcordatError(`invalid options: broker.tls.${what}: cannot read ${path} (${(error as Error).message})`, {
        code: ErrorCode.CONFIG_INVALID,
        cause: error,
      });
    }
  };
  const tls = options.tls;
  const [cert, key, ca] = await Promise.all([
    read(tls.certFile, 'certFile'),
    read(tls.keyFile, 'keyFile'),
    tls.caFile === null ? undefined : read(tls.caFile, 'caFile'),
  ]);
  const requestCert = tls.clientAuth !== TlsClientAuth.NONE;
  try {
    // rejectUnauthorized refuses a certificate that does not chain to `ca`; with
    // `requested`, a client sending none is still accepted (Node sets no peer certificate).
    return createTlsServer({ cert, key, ca, requestCert, rejectUnauthorized: tls.clientAuth === TlsClientAuth.REQUIRED, minVersion: 'TLSv1.2' });
  } catch (error) {
    throw new ConcordatError(`invalid options: broker.tls: ${(error as Error).message}`, { code: ErrorCode.CONFIG_INVALID, cause: error });
  }
}

/**
 * `User:<subject>` of the verified client certificate of a TLS connection,
 * or null without one. The subject is written as RFC 2253 does (Java's
 * `X500Principal.getName()`, Kafka's default principal): the relative
 * distinguished names from the last to the first, comma-separated
 * (`CN=alice,OU=eng,O=acme,C=DE`). With `clientAuth: requested` a
 * certificate that does not verify gives no principal.
 */
export function certificatePrincipal(socket: TLSSocket): string | null {
  if (!socket.authorized) return null;
  const certificate = socket.getPeerX509Certificate();
  if (certificate === undefined) return null;
  return `User:${rfc2253Subject(certificate.subject)}`;
}

/** Node's subject (one `KEY=value` per line, first RDN first) in RFC 2253 order, with `,`, `+`, `"`, `\\`, `<`, `>`, `;` escaped. */
function rfc2253Subject(subject: string): string {
  return subject
    .split('\n')
    .filter((line) => line.length > 0)
    .reverse()
    .map((line) => {
      const equals = line.indexOf('=');
      return `${line.slice(0, equals)}=${line.slice(equals + 1).replace(/([,+"\\<>;])/g, '\\$1')}`;
    })
    .join(',');
}
