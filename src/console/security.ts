import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { isLoopbackHost, type CompiledConsoleOptions } from '../config/index.js';

/** The cookie the sign-in page sets to the token: HttpOnly, SameSite=Strict, path `/`. */
export const TOKEN_COOKIE = 'concordat_console';
/** The cookie that remembers the name an operator gave in an action's form (a convenience, not an identity). */
export const OPERATOR_COOKIE = 'concordat_operator';

/**
 * Who may read and act, and how forms are protected from cross-site
 * requests (OWASP CSRF Prevention Cheat Sheet: synchronizer token,
 * verifying the origin with standard headers, SameSite cookies).
 *
 * - With a token: every request carries it, as the {@link TOKEN_COOKIE}
 *   cookie (set by `POST /sign-in`) or `Authorization: Bearer <token>`;
 *   anything else is answered 401 (a page: the sign-in form).
 * - Without one (loopback only, see `compileConsoleOptions`): requests must
 *   name a loopback `Host` (`127.0.0.1:<port>`, `localhost:<port>`,
 *   `[::1]:<port>`), so a web page cannot reach the console through DNS
 *   rebinding.
 * - Every POST carries `csrf`, an HMAC of the token (or of a random secret
 *   of this process) that only the console's own pages contain, and is
 *   refused when the browser says it comes from another site
 *   (`Sec-Fetch-Site: cross-site|same-site`, or an `Origin` other than the
 *   `Host`).
 */
export class ConsoleGuard {
  private readonly secret: Buffer;
  readonly csrf: string;

  constructor(private readonly options: CompiledConsoleOptions) {
    this.secret = options.token === undefined ? randomBytes(32) : Buffer.from(options.token, 'utf8');
    this.csrf = createHmac('sha256', this.secret).update('concordat-console-csrf').digest('base64url');
  }

  /** Whether requests must carry the console's token (one was configured). */
  get tokenRequired(): boolean {
    return this.options.token !== undefined;
  }

  /** True when `candidate` is the token (constant time). */
  isToken(candidate: string | undefined): boolean {
    if (this.options.token === undefined || candidate === undefined) return false;
    return equal(candidate, this.options.token);
  }

  /** Null when the request may read; else why not (the status is 401, or 421 for a foreign Host). */
  readProblem(request: FastifyRequest): { status: number; message: string } | null {
    if (this.options.token === undefined) {
      const host = hostName(request.headers.host);
      if (host === undefined || !isLoopbackHost(host)) {
        return {
          status: 421,
          message: `this console answers only to a loopback Host header (127.0.0.1, localhost, [::1]), not ${request.headers.host ?? 'none'}`,
        };
      }
      return null;
    }
    const header = request.headers.authorization;
    const bearer = header?.startsWith('Bearer ') === true ? header.slice('Bearer '.length) : undefined;
    if (this.isToken(bearer) || this.isToken(cookie(request, TOKEN_COOKIE))) return null;
    return { status: 401, message: 'sign in with the console token' };
  }

  /** Null when a POST may act (after {@link readProblem}); else why not (status 403). */
  actProblem(request: FastifyRequest, body: Record<string, unknown>): string | null {
    const site = request.headers['sec-fetch-site'];
    if (site !== undefined && site !== 'same-origin' && site !== 'none') return `refused a ${site} request: actions come from the console's own pages`;
    const origin = request.headers.origin;
    if (origin !== undefined && origin !== 'null') {
      let originHost: string;
      try {
        originHost = new URL(origin).host;
      } catch {
        return `refused a request from the origin ${origin}`;
      }
      if (originHost !== request.headers.host) return `refused a request from the origin ${origin}: actions come from the console's own pages`;
    }
    const csrf = typeof body.csrf === 'string' ? body.csrf : undefined;
    if (csrf === undefined || !equal(csrf, this.csrf)) return 'the form carries no valid CSRF token: reload the page and submit it again';
    return null;
  }

  /** Sets the token cookie after a good sign-in. */
  signIn(reply: FastifyReply): void {
    reply.header('set-cookie', `${TOKEN_COOKIE}=${encodeURIComponent(this.options.token ?? '')}; Path=/; HttpOnly; SameSite=Strict`);
  }
}

/** The value of cookie `name` (no dependency: one header, split on `;`). */
export function cookie(request: FastifyRequest, name: string): string | undefined {
  for (const part of (request.headers.cookie ?? '').split(';')) {
    const at = part.indexOf('=');
    if (at > 0 && part.slice(0, at).trim() === name) {
      try {
        return decodeURIComponent(part.slice(at + 1).trim());
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}

function hostName(host: string | undefined): string | undefined {
  if (host === undefined) return undefined;
  if (host.startsWith('[')) return host.slice(0, host.indexOf(']') + 1);
  const colon = host.lastIndexOf(':');
  return colon === -1 ? host : host.slice(0, colon);
}

function equal(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}
