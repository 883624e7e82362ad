/**
 * Structured logging for every Concordat component, on pino.
 *
 * The level comes from `CONCORDAT_LOG_LEVEL` (trace, debug, info, warn,
 * error, fatal, silent); the default is `info`. Lines are JSON on stderr so
 * that stdout stays free for a command's own output (the demo's progress
 * and summary, `concordat tx list`).
 *
 * An app given its user's logger (`ConcordatApp.create({ logger })`) uses it
 * as the root instead: its components' loggers are children of it
 * ({@link rootLoggerFrom}, then {@link createLogger} with that root).
 *
 * @module
 */

import { pino, type Logger as PinoLogger } from 'pino';

/** Concordat's logger: pino's. Every component logs through a child made by {@link createLogger}. */
export type Logger = PinoLogger;

/** One of pino's level methods: `(fields, message)` or `(message)`. */
export type LogMethod = (fieldsOrMessage: unknown, message?: string, ...args: unknown[]) => void;

/**
 * A logger a user can give an app: a pino logger (used as it is, its
 * children carry `component`), or any object with pino's six level methods,
 * each called as `(fields, message)` with the line's fields (`component`,
 * `app`, `err`, ...). Its `level`, when a string, is the lowest level
 * forwarded. @default Concordat's own pino logger on stderr
 */
export interface LoggerLike {
  trace: LogMethod;
  debug: LogMethod;
  info: LogMethod;
  warn: LogMethod;
  error: LogMethod;
  fatal: LogMethod;
  level?: unknown;
}

let root: PinoLogger | undefined;

function defaultRoot(): PinoLogger {
  root ??= pino({ level: process.env.CONCORDAT_LOG_LEVEL ?? 'info', base: { pid: process.pid } }, pino.destination({ fd: 2, sync: true }));
  return root;
}

/**
 * A child logger whose lines carry `component: name`.
 * @param root the logger it is a child of. @default Concordat's own root (stderr, `CONCORDAT_LOG_LEVEL`)
 */
export function createLogger(component: string, bindings: Record<string, unknown> = {}, root: Logger = defaultRoot()): Logger {
  return root.child({ component, ...bindings });
}

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;

/**
 * The root logger for a user's logger: the logger itself when it is pino (or
 * pino-compatible: `child`, `bindings` and `levels`), otherwise a pino logger
 * whose lines are handed, parsed, to the user's level methods; Concordat's
 * own root when `user` is undefined. (`ConcordatApp.create` checks that a
 * given logger has the six level methods.)
 */
export function rootLoggerFrom(user: LoggerLike | undefined): Logger {
  if (user === undefined) return defaultRoot();
  const candidate = user as Partial<PinoLogger>;
  if (typeof candidate.child === 'function' && typeof candidate.bindings === 'function' && typeof candidate.levels === 'object') {
    return user as unknown as Logger;
  }
  const level = typeof user.level === 'string' && user.level in pino.levels.values ? user.level : (process.env.CONCORDAT_LOG_LEVEL ?? 'info');
  return pino({ level, base: null, timestamp: false }, { write: (line: string) => forward(user, line) });
}

/** Hands one pino JSON line to the user's method of its level. */
function forward(user: LoggerLike, line: string): void {
  const { level, msg, ...fields } = JSON.parse(line) as { level: number; msg?: string } & Record<string, unknown>;
  const label = pino.levels.labels[level] as (typeof LEVELS)[number] | undefined;
  const method = label !== undefined && LEVELS.includes(label) ? label : 'info';
  user[method](fields, msg);
}
