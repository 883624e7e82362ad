import { z } from 'zod';
import { compileOptions } from './compile.js';

/** pino's level methods, which a logger given as `AppOptions.logger` must all have. */
export const LOGGER_METHODS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;

/**
 * The fields of `AppOptions` (`runtime/app.ts`) checked at `ConcordatApp.create`
 * before anything is built; the others are compiled by their own component
 * (database, relay, inbox, dispatcher, metrics, console, requests). `L` is the
 * logger's type, which this layer does not know (`LoggerLike`, `observability/`).
 */
export interface AppCoreOptions<L = unknown> {
  /** Name of the deployment unit: non-empty. */
  name: string;
  /** Service classes; none only for an app given `requests`. */
  services: readonly unknown[];
  /** Only whether it is there: an app that sends requests needs no service of its own. */
  requests?: unknown;
  /** Directory for the embedded PostgreSQL and the embedded log. @default './.concordat' */
  dataDir?: string;
  /** Partitions of the topics the app creates. Range 1..1024. @default 8 */
  partitions?: number;
  /** A pino logger, or any object with pino's level methods ({@link LOGGER_METHODS}). @default Concordat's own */
  logger?: L;
}

const schema = z
  .object({
    name: z.string().min(1, 'must be a non-empty service name'),
    services: z.array(z.any()),
    requests: z.unknown().optional(),
    dataDir: z.string().min(1).default('./.concordat'),
    partitions: z.number().int().min(1).max(1024).default(8),
    logger: z
      .custom<unknown>(
        (value) =>
          typeof value === 'object' && value !== null && LOGGER_METHODS.every((method) => typeof (value as Record<string, unknown>)[method] === 'function'),
        { message: `must be a pino logger or an object with pino's level methods (${LOGGER_METHODS.join(', ')})` },
      )
      .optional(),
  })
  .refine((options) => options.services.length > 0 || options.requests !== undefined, {
    message: "must list at least one service class (an app without any only sends requests: give it the 'requests' option)",
    path: ['services'],
  });

/** {@link AppCoreOptions} with every default applied. */
export interface CompiledAppCoreOptions<L = unknown> {
  name: string;
  dataDir: string;
  partitions: number;
  /** Undefined: Concordat's own logger. */
  logger: L | undefined;
}

/**
 * Validates and fills in {@link AppCoreOptions}.
 * @throws ConcordatError CONFIG_INVALID naming the option, e.g.
 *   `invalid options: app.partitions: Too big: expected number to be <=1024 (got 2000)`
 */
export function compileAppCoreOptions<L>(options: AppCoreOptions<L>): CompiledAppCoreOptions<L> {
  const parsed = compileOptions(
    schema,
    {
      name: options.name,
      services: options.services,
      dataDir: options.dataDir,
      partitions: options.partitions,
      logger: options.logger,
      requests: options.requests,
    },
    'app',
  );
  return { name: parsed.name, dataDir: parsed.dataDir, partitions: parsed.partitions, logger: parsed.logger as L | undefined };
}
