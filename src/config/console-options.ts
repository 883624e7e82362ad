import { z } from 'zod';
import { ConcordatError, ErrorCode } from '../errors.js';
import { isLoopbackHost } from './broker-options.js';
import { compileOptions } from './compile.js';

/**
 * Where and how the operator console listens (`console/`): the `console`
 * option of `ConcordatApp.create` and the flags of `concordat console`.
 */
export interface ConsoleOptions {
  /** TCP port; 0 picks a free one (read it back from `app.consoleAddress`). Range 0..65535. @default 9480 */
  port?: number;
  /**
   * Address to listen on. On any address but a loopback one the console
   * refuses to start without a `token`. @default '127.0.0.1'
   */
  host?: string;
  /**
   * Secret every request must carry (a cookie set by the console's sign-in
   * page, or `Authorization: Bearer <token>`); also keys the forms' CSRF
   * tokens. At least 16 characters. Required on a non-loopback `host`.
   * @default none (loopback only)
   */
  token?: string;
  /** How often a live view (Server-Sent Events) re-reads what it shows, in ms. Range 250..60000. @default 2000 */
  refreshMs?: number;
  /** Most live views (open SSE streams) at once; more are refused with 503. Range 1..1000. @default 32 */
  liveViewsMax?: number;
}

const schema = z.strictObject({
  port: z.number().int().min(0).max(65_535).default(9480),
  host: z.string().min(1).default('127.0.0.1'),
  token: z.string().min(16, 'must be at least 16 characters (a random secret, e.g. `openssl rand -hex 16`)').optional(),
  refreshMs: z.number().int().min(250).max(60_000).default(2000),
  liveViewsMax: z.number().int().min(1).max(1000).default(32),
});

/** {@link ConsoleOptions} with every field present and checked (durations in ms, sizes in bytes). */
export type CompiledConsoleOptions = z.output<typeof schema>;

/**
 * Validates and fills in {@link ConsoleOptions}.
 * @throws ConcordatError CONFIG_INVALID naming the option, e.g. `console.port`;
 *   INSECURE_LISTENER for a non-loopback `host` without a `token`.
 */
export function compileConsoleOptions(options: ConsoleOptions = {}, scope = 'console'): CompiledConsoleOptions {
  const compiled = compileOptions(schema, options, scope);
  if (!isLoopbackHost(compiled.host) && compiled.token === undefined) {
    throw new ConcordatError(
      `the console refuses to listen on ${compiled.host} without a token: anyone who reaches that address could retry, abort and end global transactions and replay dead letters. ` +
        `Set ${scope}.token (concordat console --token, or CONCORDAT_CONSOLE_TOKEN) to a secret of 16 characters or more, or listen on 127.0.0.1`,
      { code: ErrorCode.INSECURE_LISTENER, context: { host: compiled.host } },
    );
  }
  return compiled;
}
