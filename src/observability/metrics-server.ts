import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { register as defaultRegistry, type Registry, type RegistryContentType } from 'prom-client';
import type { CompiledMetricsOptions } from '../config/index.js';
import { ConcordatError, describeError, ErrorCode } from '../errors.js';
import { createLogger, type Logger } from './logger.js';

/**
 * One readiness condition of `/readyz`: resolves to null when it holds, or
 * to a sentence saying what is not ready (`"consumer group 'orders' has no
 * assignment yet"`). A check that throws or outlasts `readyTimeoutMs` counts
 * as not ready, with the error or the timeout as its reason.
 */
export type ReadinessCheck = (signal: AbortSignal) => Promise<string | null> | string | null;

/** The body of `/readyz`: `checks` maps every check's name to `"ok"` or its reason. */
export interface ReadinessReport {
  status: 'ready' | 'not ready';
  /** Names of the checks that failed, with their reasons (empty when ready). */
  notReady: Record<string, string>;
  checks: Record<string, string>;
}

/** `host` and `port` actually bound. */
export interface MetricsAddress {
  host: string;
  port: number;
}

/**
 * The HTTP endpoints of one process, on `node:http` (three fixed paths need
 * no router):
 * - `GET /metrics`: the registry in Prometheus text format 0.0.4 (gauges
 *   computed on scrape run their queries now);
 * - `GET /healthz`: 200 `{"status":"ok"}` while the process serves requests
 *   (liveness: restart the process when it stops answering);
 * - `GET /readyz`: 200 when every {@link ReadinessCheck} holds, else 503;
 *   the JSON body is a {@link ReadinessReport} naming what is not ready.
 * Other paths answer 404, other methods 405. HEAD is served like GET
 * without a body.
 *
 * Concurrency: scrapes may overlap; each runs its own checks. `close`
 * stops accepting and ends open keep-alive connections.
 */
export class MetricsServer {
  private constructor(
    private readonly server: Server,
    private readonly registry: Registry<RegistryContentType>,
    private readonly checks: Readonly<Record<string, ReadinessCheck>>,
    private readonly readyTimeoutMs: number,
    private readonly logger: Logger,
  ) {}

  /**
   * Binds `options.host:options.port` and starts serving.
   * @param checks readiness conditions by name (`database`, `consumer-groups`, ...).
   * @throws ConcordatError CONFIG_INVALID when the address cannot be bound (port in use, unknown host), naming it.
   */
  static async start(options: CompiledMetricsOptions, checks: Readonly<Record<string, ReadinessCheck>>, component: string): Promise<MetricsServer> {
    const logger = createLogger('metrics', { of: component });
    const server = createServer();
    const metrics = new MetricsServer(server, options.registry ?? defaultRegistry, checks, options.readyTimeoutMs, logger);
    server.on('request', (request: IncomingMessage, response: ServerResponse) => void metrics.serve(request, response));
    await new Promise<void>((resolve, reject) => {
      server.once('error', (error) =>
        reject(
          new ConcordatError(`cannot serve metrics on ${options.host}:${options.port}: ${describeError(error)}; choose another metrics port or host`, {
            code: ErrorCode.CONFIG_INVALID,
            cause: error,
            context: { host: options.host, port: options.port },
          }),
        ),
      );
      server.listen(options.port, options.host, () => resolve());
    });
    server.on('error', (error) => logger.error({ err: describeError(error) }, 'metrics listener error'));
    logger.info(metrics.address, 'serving /metrics, /healthz and /readyz');
    return metrics;
  }

  /** The address bound (the real port when 0 was asked). */
  get address(): MetricsAddress {
    const address = this.server.address() as AddressInfo;
    return { host: address.address, port: address.port };
  }

  /** Runs every readiness check (concurrently, each bounded by `readyTimeoutMs`). */
  async readiness(): Promise<ReadinessReport> {
    const names = Object.keys(this.checks);
    const results = await Promise.all(names.map((name) => this.runCheck(this.checks[name]!)));
    const checks: Record<string, string> = {};
    const notReady: Record<string, string> = {};
    names.forEach((name, i) => {
      const problem = results[i]!;
      checks[name] = problem ?? 'ok';
      if (problem !== null) notReady[name] = problem;
    });
    return { status: Object.keys(notReady).length === 0 ? 'ready' : 'not ready', notReady, checks };
  }

  /** Stops accepting and closes open connections. Idempotent. */
  async close(): Promise<void> {
    if (!this.server.listening) return;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }

  private async runCheck(check: ReadinessCheck): Promise<string | null> {
    const abort = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<string>((resolve) => {
      timer = setTimeout(() => {
        abort.abort();
        resolve(`no answer within ${this.readyTimeoutMs} ms`);
      }, this.readyTimeoutMs);
    });
    try {
      return await Promise.race([Promise.resolve().then(() => check(abort.signal)), timeout]);
    } catch (error) {
      return describeError(error);
    } finally {
      clearTimeout(timer);
    }
  }

  private async serve(request: IncomingMessage, response: ServerResponse): Promise<void> {
    try {
      if (request.method !== 'GET' && request.method !== 'HEAD') {
        send(response, request, 405, 'text/plain; charset=utf-8', 'only GET and HEAD are served\n', { allow: 'GET, HEAD' });
        return;
      }
      const path = new URL(request.url ?? '/', 'http://localhost').pathname;
      if (path === '/metrics') {
        send(response, request, 200, this.registry.contentType, await this.registry.metrics());
      } else if (path === '/healthz') {
        send(response, request, 200, JSON_TYPE, JSON.stringify({ status: 'ok' }) + '\n');
      } else if (path === '/readyz') {
        const report = await this.readiness();
        send(response, request, report.status === 'ready' ? 200 : 503, JSON_TYPE, JSON.stringify(report) + '\n');
      } else {
        send(response, request, 404, 'text/plain; charset=utf-8', 'not found: the paths are /metrics, /healthz and /readyz\n');
      }
    } catch (error) {
      this.logger.warn({ err: describeError(error), url: request.url }, 'metrics request failed');
      if (!response.headersSent) send(response, request, 500, 'text/plain; charset=utf-8', `${describeError(error)}\n`);
      else response.destroy();
    }
  }
}

const JSON_TYPE = 'application/json; charset=utf-8';

function send(response: ServerResponse, request: IncomingMessage, status: number, type: string, body: string, headers: Record<string, string> = {}): void {
  response.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store', ...headers });
  response.end(request.method === 'HEAD' ? undefined : body);
}
