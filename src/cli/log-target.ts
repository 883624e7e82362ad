import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import type { KafkaConfig } from 'kafkajs';
import { pino } from 'pino';
import { openLogAdmin, type LogAdmin, type LogAdminTarget } from '../admin/index.js';
import { kafkaTransportOptionsFromEnv } from '../config/index.js';
import { fail } from './output.js';

/** Where a `topics`/`groups` command finds the log (the options {@link logTargetOptions} adds). */
export interface LogTargetFlags {
  /** `--bootstrap host:port[,host:port]`: a running `concordat broker` or Kafka. */
  bootstrap?: string;
  /** `--log-dir`: a log directory itself (what `concordat broker --data` serves). */
  logDir?: string;
  /** `--data`: an app's data directory; its embedded log is `<data>/log`. */
  data?: string;
}

/** The app's default data directory (ConcordatApp's `dataDir`). */
const DEFAULT_DATA_DIR = './.concordat';

/** Adds `--bootstrap`, `--log-dir` and `--data` to `command`. */
export function logTargetOptions(command: Command): Command {
  return command
    .option('--bootstrap <host:port>', 'a running concordat broker or Kafka (comma-separated brokers; default: KAFKA_BROKERS when set and no --log-dir/--data)')
    .option('--log-dir <dir>', 'a log directory (what "concordat broker --data" serves), while no process has it open')
    .option('--data <dir>', `an app's data directory: its embedded log is <dir>/log (default ${DEFAULT_DATA_DIR})`);
}

/**
 * The target the flags name, in this order: `--bootstrap`; `--log-dir`;
 * `--data <dir>` (its `log`); `KAFKA_BROKERS`; `./.concordat/log`. Against
 * brokers, SASL and TLS come from the same `KAFKA_SASL_*` and `KAFKA_TLS*`
 * variables as an app's kafkajs transport.
 * @throws ConcordatError CONFIG_INVALID for a bad KAFKA_* variable, or more than one of the flags
 */
export async function resolveLogTarget(flags: LogTargetFlags, env: NodeJS.ProcessEnv = process.env): Promise<LogAdminTarget> {
  const given = [flags.bootstrap && '--bootstrap', flags.logDir && '--log-dir', flags.data && '--data'].filter(Boolean);
  if (given.length > 1) throw new Error(`give one of --bootstrap, --log-dir and --data, not ${given.join(' and ')}`);
  const logger = pino({ level: env.CONCORDAT_LOG_LEVEL ?? 'warn', base: { pid: process.pid } }, pino.destination({ fd: 2, sync: true }));
  if (flags.logDir !== undefined) return { logDir: flags.logDir, logger };
  if (flags.data !== undefined) return { logDir: join(flags.data, 'log'), logger };
  const fromEnv = flags.bootstrap === undefined ? kafkaTransportOptionsFromEnv(env) : kafkaTransportOptionsFromEnv({ ...env, KAFKA_BROKERS: flags.bootstrap });
  if (fromEnv === undefined) return { logDir: join(DEFAULT_DATA_DIR, 'log'), logger };
  const kafka: Omit<KafkaConfig, 'brokers'> = {};
  if (fromEnv.sasl !== undefined) kafka.sasl = { ...fromEnv.sasl } as KafkaConfig['sasl'];
  if (fromEnv.tls !== undefined && fromEnv.tls !== false) kafka.ssl = fromEnv.tls === true ? true : await tlsFiles(fromEnv.tls);
  return { bootstrap: fromEnv.brokers, kafka };
}

async function tlsFiles(tls: { caFile?: string | undefined; certFile?: string | undefined; keyFile?: string | undefined }): Promise<KafkaConfig['ssl']> {
  const read = (file: string | undefined) => (file === undefined ? undefined : readFile(file, 'utf8'));
  const [ca, cert, key] = await Promise.all([read(tls.caFile), read(tls.certFile), read(tls.keyFile)]);
  return { ...(ca !== undefined && { ca: [ca] }), ...(cert !== undefined && { cert }), ...(key !== undefined && { key }) };
}

/**
 * Opens the admin the flags name, runs `work`, closes it (releasing the log
 * directory's lock, or disconnecting). A failure is printed as the entry
 * point prints it and the process exits 1 (see {@link fail}).
 */
export async function withLogAdmin(flags: LogTargetFlags, work: (admin: LogAdmin) => Promise<void>): Promise<void> {
  let admin: LogAdmin | undefined;
  try {
    admin = await openLogAdmin(await resolveLogTarget(flags));
    await work(admin);
  } catch (error) {
    await admin?.close().catch(() => undefined);
    fail(error instanceof Error ? error.message : String(error));
  }
  await admin.close();
}
