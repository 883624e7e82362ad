import { z } from 'zod';
import { ConcordatError, ErrorCode } from '../errors.js';
import { compileOptions } from './compile.js';

/** Where Concordat keeps its tables. */
export interface DatabaseOptions {
  /**
   * PostgreSQL connection URL (`postgres://user:pass@host:port/db`).
   * @default process.env.DATABASE_URL; when that is unset too, an embedded
   *   PostgreSQL under `<dataDir>/postgres`, database `concordat`.
   */
  url?: string;
  /** Directory for the embedded PostgreSQL (and the embedded log). @default './.concordat' */
  dataDir?: string;
  /** Connections in the pool. Range 1..1000. @default 20 */
  poolSize?: number;
  /** How long a connection attempt may take, in ms. Range 100..600000. @default 10000 */
  connectTimeoutMs?: number;
  /** Application entity classes to register with TypeORM. @default [] */
  entities?: Function[];
  /** Application migration classes, run after Concordat's own. @default [] */
  migrations?: Function[];
  /** Run pending migrations when opening. @default true */
  runMigrations?: boolean;
  /**
   * Waiting for the database when opening it: for a service in a container
   * that may start before its PostgreSQL. A connection attempt that fails
   * because the server cannot be reached (refused, unknown host, timed out,
   * reset) or is starting up (SQLSTATE 57P03) is tried again after a delay
   * that starts at `initialDelayMs` and doubles up to `maxDelayMs`, each wait
   * logged (warn) with the error and the next delay, until `timeoutMs` have
   * passed since the first attempt; then opening fails with
   * DATABASE_UNAVAILABLE. Other failures (a wrong password, a missing
   * database) fail at once. Does not apply to the embedded PostgreSQL.
   * @default { timeoutMs: 0 } (one attempt, no waiting)
   */
  connectRetry?: DatabaseConnectRetryOptions;
}

/** See {@link DatabaseOptions.connectRetry}. */
export interface DatabaseConnectRetryOptions {
  /** Longest time to keep trying, from the first attempt, in ms; 0 makes one attempt. Range 0..3600000. @default 0 */
  timeoutMs?: number;
  /** Delay after the first failed attempt, in ms; it doubles after each one. Range 10..60000. @default 250 */
  initialDelayMs?: number;
  /** Longest delay between two attempts, in ms. Range 10..300000. @default 5000 */
  maxDelayMs?: number;
}

/** `postgres://` or `postgresql://`, and a URL that parses (a `@` or `#` in a password must be percent-encoded). */
const url = z
  .string()
  .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL (postgres://user:password@host:port/database)')
  .refine((value) => URL.canParse(value), 'is not a valid URL: percent-encode special characters in the user name and password (@ as %40, # as %23, / as %2F)');

const schema = z.strictObject({
  url: url.optional(),
  dataDir: z.string().min(1).default('./.concordat'),
  poolSize: z.number().int().min(1).max(1000).default(20),
  connectTimeoutMs: z.number().int().min(100).max(600_000).default(10_000),
  entities: z.array(z.custom<Function>((value) => typeof value === 'function', 'must be a class')).default([]),
  migrations: z.array(z.custom<Function>((value) => typeof value === 'function', 'must be a class')).default([]),
  runMigrations: z.boolean().default(true),
  connectRetry: z
    .strictObject({
      timeoutMs: z.number().int().min(0).max(3_600_000).default(0),
      initialDelayMs: z.number().int().min(10).max(60_000).default(250),
      maxDelayMs: z.number().int().min(10).max(300_000).default(5000),
    })
    .refine((retry) => retry.initialDelayMs <= retry.maxDelayMs, { message: 'must not exceed maxDelayMs', path: ['initialDelayMs'] })
    .prefault({}),
});

/** Where {@link CompiledDatabaseOptions.url} came from, for messages: the option, the environment variable, or neither (embedded PostgreSQL). */
export const DatabaseUrlOrigin = {
  OPTION: 'database.url',
  ENV: 'DATABASE_URL',
  EMBEDDED: 'embedded',
} as const;
/** One of the {@link DatabaseUrlOrigin} values. */
export type DatabaseUrlOrigin = (typeof DatabaseUrlOrigin)[keyof typeof DatabaseUrlOrigin];

/** {@link DatabaseOptions} with every field present and checked (durations in ms, sizes in bytes). */
export type CompiledDatabaseOptions = z.output<typeof schema> & {
  /** Where `url` came from, so that an error about it names what the user set. */
  urlOrigin: DatabaseUrlOrigin;
};

/**
 * Validates and fills in {@link DatabaseOptions}; `url` falls back on
 * `env.DATABASE_URL`.
 *
 * @throws ConcordatError CONFIG_INVALID naming the bad option, or `DATABASE_URL`
 *   when the bad URL came from the environment (its password shown as `***`).
 */
export function compileDatabaseOptions(options: DatabaseOptions = {}, env: NodeJS.ProcessEnv = process.env): CompiledDatabaseOptions {
  const fromEnv = options.url === undefined && nonEmpty(env.DATABASE_URL);
  const urlOrigin = options.url !== undefined ? DatabaseUrlOrigin.OPTION : fromEnv ? DatabaseUrlOrigin.ENV : DatabaseUrlOrigin.EMBEDDED;
  const rawUrl: unknown = fromEnv ? env.DATABASE_URL : options.url;
  if (rawUrl !== undefined) {
    // Checked apart from the other options: to name where the URL came from, and to show it without its password.
    const checked = url.safeParse(rawUrl);
    if (!checked.success) {
      const problem = checked.error.issues.map((issue) => issue.message).join('; ');
      const got = typeof rawUrl === 'string' ? JSON.stringify(redactUrl(rawUrl)) : typeof rawUrl;
      throw new ConcordatError(`invalid ${fromEnv ? 'environment' : 'options'}: ${urlOrigin}: ${problem} (got ${got})`, {
        code: ErrorCode.CONFIG_INVALID,
        context: { [fromEnv ? 'variable' : 'scope']: fromEnv ? 'DATABASE_URL' : 'database', problems: [`${urlOrigin}: ${problem}`] },
      });
    }
  }
  return { ...compileOptions(schema, { ...options, url: rawUrl }, 'database'), urlOrigin };
}

/** A URL with its password replaced by `***`, for messages; an unparseable one cut before its `@`. */
export function redactUrl(value: string): string {
  if (URL.canParse(value)) {
    const parsed = new URL(value);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.toString();
  }
  const at = value.lastIndexOf('@');
  return at < 0 ? value : `${value.slice(0, value.indexOf('//') + 2)}***${value.slice(at)}`;
}

function nonEmpty(value: string | undefined): value is string {
  return value !== undefined && value !== '';
}
