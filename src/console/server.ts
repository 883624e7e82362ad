import { existsSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import fastifyFormbody from '@fastify/formbody';
import fastifyView from '@fastify/view';
import { Eta } from 'eta';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { DataSource } from 'typeorm';
import type { CompiledConsoleOptions } from '../config/index.js';
import { ConcordatError, describeError, ErrorCode } from '../errors.js';
import { createLogger, type Logger } from '../observability/index.js';
import type { CoordinatorOptions } from '../transactions/index.js';
import type { Transport } from '../transport/index.js';
import type { LogAdmin } from '../admin/index.js';
import { adminForTransport } from './cluster.js';
import { LiveViews } from './live.js';
import { registerClusterPages } from './pages/cluster.js';
import { registerOutboxPage } from './pages/outbox.js';
import { registerDeadLetterPages } from './pages/dead-letters.js';
import { registerTransactionPages } from './pages/transactions.js';
import { ConsoleGuard, cookie, OPERATOR_COOKIE } from './security.js';
import { CONSOLE_SCRIPT, CONSOLE_STYLE } from './static.js';

/** What the console shows and operates on. */
export interface ConsoleSources {
  /** Concordat's database: global transactions, dead letters, the outbox. */
  dataSource: DataSource;
  /** Topics and consumer groups (`admin/`'s LogAdmin over a log directory, a broker or Kafka); the console leaves it open on close. */
  admin?: LogAdmin;
  /** The app's transport, when the console runs inside an app and no `admin` is given: topics and groups are shown through it (see `adminForTransport`). */
  transport?: Transport;
  /** Coordinator timing for retry and abort (resend interval); the defaults otherwise. */
  coordinator?: CoordinatorOptions;
  /** Shown in the header: which app or database this is. */
  title?: string;
  /** Root of the console's component logger (an app passes its own). */
  logger?: Logger;
}

/** `host` and `port` actually bound. */
export interface ConsoleAddress {
  host: string;
  port: number;
}

/** What every page handler gets. */
export interface PageContext {
  sources: ConsoleSources;
  guard: ConsoleGuard;
  live: LiveViews;
  logger: Logger;
  /** Renders `template` inside the layout, with what every page needs (CSRF token, operator name, title). */
  page(request: FastifyRequest, reply: FastifyReply, template: string, data: Record<string, unknown>): Promise<void>;
  /** Renders a fragment (a live view's body) to a string. */
  fragment(template: string, data: Record<string, unknown>): Promise<string>;
  /** Who an action is recorded as: the name given in the form, marked as from the console and the client's address. */
  operatorOf(request: FastifyRequest, body: Record<string, unknown>): string;
  /** 303 to `path` with a message for the next page (`done` or `error`). */
  redirect(reply: FastifyReply, path: string, message: { done?: string; error?: string }, request?: FastifyRequest, operatorName?: string): FastifyReply;
}

const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};

/**
 * The operator console: server-rendered pages (Fastify, @fastify/view with
 * Eta templates from `views/`, forms through @fastify/formbody) over
 * Concordat's tables and the cluster's admin API:
 *
 * - `/transactions`, `/transactions/:id` — global transactions; retry,
 *   abort, end by hand (the coordinator's operator functions, as `concordat
 *   tx` runs them);
 * - `/dead-letters`, `/dead-letters/:id` — list, inspect, replay (as
 *   `concordat dlq replay`);
 * - `/outbox` — backlog and oldest age per shard, relays and their leases;
 * - `/groups`, `/groups/:id`, `/topics`, `/topics/:name` — consumer groups
 *   (members, assignment, lag; reset offsets of an empty group) and topics;
 * - `/live/:view` — the pages' live regions (Server-Sent Events, see {@link LiveViews}).
 *
 * Every action is a POST with a CSRF token and a confirmation, recorded
 * with who did it (see {@link ConsoleGuard} for the security model). Big
 * tables are read a page at a time by keyset; nothing scans a table whole.
 */
export class ConsoleServer {
  private closed = false;

  private constructor(
    private readonly app: FastifyInstance,
    private readonly live: LiveViews,
    readonly logger: Logger,
    private readonly ownedAdmin: LogAdmin | undefined,
  ) {}

  /**
   * Binds `options.host:options.port` and starts serving.
   * @throws ConcordatError CONFIG_INVALID when the address cannot be bound (port in use, unknown host), naming it.
   */
  static async start(options: CompiledConsoleOptions, sources: ConsoleSources): Promise<ConsoleServer> {
    const logger = createLogger('console', {}, sources.logger);
    let ownedAdmin: LogAdmin | undefined;
    if (sources.admin === undefined && sources.transport !== undefined) {
      const derived = await adminForTransport(sources.transport).catch((error: unknown) => {
        logger.warn({ err: describeError(error) }, 'topics and consumer groups are not shown: no admin for the transport');
        return undefined;
      });
      if (derived !== undefined) {
        sources = { ...sources, admin: derived.admin };
        if (derived.owned) ownedAdmin = derived.admin;
      }
    }
    const guard = new ConsoleGuard(options);
    const live = new LiveViews(options.refreshMs, options.liveViewsMax, logger);
    const app = Fastify({ logger: false, bodyLimit: 64 * 1024, forceCloseConnections: true });
    await app.register(fastifyFormbody);
    await app.register(fastifyView, { engine: { eta: new Eta({ views: viewsDir(), cache: true }) }, root: viewsDir(), viewExt: 'eta', production: true });
    const context = pageContext(app, sources, guard, live, logger);
    installGuards(app, guard);
    installStatic(app);
    installErrors(app, context);
    live.route(app, SECURITY_HEADERS);
    app.get('/', (_request, reply) => reply.redirect('/transactions', 303));
    registerTransactionPages(app, context);
    registerDeadLetterPages(app, context);
    registerOutboxPage(app, context);
    registerClusterPages(app, context);
    try {
      await app.listen({ port: options.port, host: options.host });
    } catch (error) {
      await ownedAdmin?.close().catch(() => undefined);
      throw new ConcordatError(`cannot serve the console on ${options.host}:${options.port}: ${describeError(error)}; choose another console port or host`, {
        code: ErrorCode.CONFIG_INVALID,
        cause: error,
        context: { host: options.host, port: options.port },
      });
    }
    const server = new ConsoleServer(app, live, logger, ownedAdmin);
    logger.info({ ...server.address, token: guard.tokenRequired }, `console at ${server.url}`);
    return server;
  }

  /** The address bound (the real port when 0 was asked). */
  get address(): ConsoleAddress {
    const address = this.app.server.address() as AddressInfo;
    return { host: address.address, port: address.port };
  }

  /** `http://host:port` of the console. */
  get url(): string {
    const { host, port } = this.address;
    return `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  }

  /** Ends the live views, stops accepting and closes open connections. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.live.close();
    await this.app.close();
    await this.ownedAdmin?.close();
  }
}

/** An error's message as an operator reads it on a page (a ConcordatError's message says what to do). */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** `views/` beside this file (under `src/`), also when running from `dist/` (the package ships `src/`). */
function viewsDir(): string {
  const beside = join(import.meta.dirname, 'views');
  return existsSync(beside) ? beside : join(import.meta.dirname, '..', '..', 'src', 'console', 'views');
}

function pageContext(app: FastifyInstance, sources: ConsoleSources, guard: ConsoleGuard, live: LiveViews, logger: Logger): PageContext {
  const common = (request: FastifyRequest): Record<string, unknown> => {
    const q = request.query as Record<string, string | undefined>;
    return {
      csrf: guard.csrf,
      operator: cookie(request, OPERATOR_COOKIE) ?? '',
      title: sources.title ?? 'Concordat',
      path: request.url.split('?')[0],
      done: q.done ?? '',
      error: q.error ?? '',
    };
  };
  return {
    sources,
    guard,
    live,
    logger,
    async page(request, reply, template, data) {
      const html = await app.view(template, { ...common(request), ...data });
      await reply.type('text/html; charset=utf-8').send(html);
    },
    async fragment(template, data) {
      return app.view(template, data);
    },
    operatorOf(request, body) {
      const name = typeof body.by === 'string' ? body.by.trim().slice(0, 100) : '';
      if (name === '')
        throw new ConcordatError('say who you are (the "your name" field): actions are recorded with who did them', { code: ErrorCode.CONFIG_INVALID });
      return `${name} (console, ${request.ip})`;
    },
    redirect(reply, path, message, _request, operatorName) {
      const search = new URLSearchParams();
      if (message.done !== undefined) search.set('done', message.done);
      if (message.error !== undefined) search.set('error', message.error);
      if (operatorName !== undefined) reply.header('set-cookie', `${OPERATOR_COOKIE}=${encodeURIComponent(operatorName)}; Path=/; SameSite=Strict`);
      const text = search.toString();
      return reply.redirect(`${path}${text === '' ? '' : `${path.includes('?') ? '&' : '?'}${text}`}`, 303);
    },
  };
}

function installGuards(app: FastifyInstance, guard: ConsoleGuard): void {
  app.addHook('onRequest', async (request, reply) => {
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) reply.header(name, value);
    reply.header('cache-control', 'no-store');
    const path = request.url.split('?')[0] ?? '';
    if (path === '/sign-in' || path.startsWith('/static/')) {
      if (!guard.tokenRequired) {
        const problem = guard.readProblem(request);
        if (problem !== null) return reply.code(problem.status).type('text/plain; charset=utf-8').send(`${problem.message}\n`);
      }
      return;
    }
    const problem = guard.readProblem(request);
    if (problem === null) return;
    if (problem.status === 401 && request.method === 'GET' && request.headers.accept?.includes('text/html') === true) {
      return reply.redirect(`/sign-in?next=${encodeURIComponent(request.url)}`, 303);
    }
    return reply.code(problem.status).type('text/plain; charset=utf-8').send(`${problem.message}\n`);
  });
  app.addHook('preHandler', async (request, reply) => {
    if (request.method !== 'POST' || request.url.split('?')[0] === '/sign-in') return;
    const problem = guard.actProblem(request, (request.body ?? {}) as Record<string, unknown>);
    if (problem !== null) return reply.code(403).type('text/plain; charset=utf-8').send(`${problem}\n`);
  });
  app.get('/sign-in', async (request, reply) => {
    const next = safeNext((request.query as Record<string, string | undefined>).next);
    const failed = (request.query as Record<string, string | undefined>).failed === '1';
    return reply.type('text/html; charset=utf-8').send(await app.view('sign-in', { next, failed, title: 'Concordat' }));
  });
  app.post('/sign-in', async (request, reply) => {
    const body = (request.body ?? {}) as Record<string, unknown>;
    const next = safeNext(typeof body.next === 'string' ? body.next : undefined);
    if (!guard.tokenRequired) return reply.redirect(next, 303);
    if (!guard.isToken(typeof body.token === 'string' ? body.token : undefined))
      return reply.redirect(`/sign-in?failed=1&next=${encodeURIComponent(next)}`, 303);
    guard.signIn(reply);
    return reply.redirect(next, 303);
  });
}

/** Only a path of this console (not `//evil.example`) is followed after signing in. */
function safeNext(next: string | undefined): string {
  return next !== undefined && next.startsWith('/') && !next.startsWith('//') ? next : '/transactions';
}

function installStatic(app: FastifyInstance): void {
  app.get('/static/console.js', (_request, reply) => reply.type('text/javascript; charset=utf-8').header('cache-control', 'max-age=300').send(CONSOLE_SCRIPT));
  app.get('/static/console.css', (_request, reply) => reply.type('text/css; charset=utf-8').header('cache-control', 'max-age=300').send(CONSOLE_STYLE));
  app.get('/favicon.ico', (_request, reply) => reply.code(204).send());
}

function installErrors(app: FastifyInstance, context: PageContext): void {
  app.setNotFoundHandler(async (request, reply) => {
    reply.code(404);
    await context.page(request, reply, 'error', { status: 404, message: `no page at ${request.url}` });
  });
  app.setErrorHandler(async (error, request, reply) => {
    const status =
      error instanceof ConcordatError ? (error.code === ErrorCode.GLOBAL_TX_NOT_FOUND ? 404 : 409) : ((error as { statusCode?: number }).statusCode ?? 500);
    if (status >= 500) context.logger.warn({ err: describeError(error), url: request.url }, 'console request failed');
    reply.code(status);
    await context.page(request, reply, 'error', { status, message: messageOf(error) });
  });
}
