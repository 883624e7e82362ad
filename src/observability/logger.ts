import { pino, type Logger as PinoLogger } from 'pino';

/**
 * Structured logging for every Concordat component, on pino.
 *
 * The level comes from `CONCORDAT_LOG_LEVEL` (trace, debug, info, warn,
 * error, fatal, silent); the default is `info`. Lines are JSON on stderr so
 * that stdout stays free for a command's own output (the demo's progress
 * and summary, `concordat tx list`).
 */
export type Logger = PinoLogger;

let root: PinoLogger | undefined;

function rootLogger(): PinoLogger {
  root ??= pino(
    { level: process.env.CONCORDAT_LOG_LEVEL ?? 'info', base: { pid: process.pid } },
    pino.destination({ fd: 2, sync: true }),
  );
  return root;
}

/** A child logger whose lines carry `component: name`. */
export function createLogger(component: string, bindings: Record<string, unknown> = {}): Logger {
  return rootLogger().child({ component, ...bindings });
}
