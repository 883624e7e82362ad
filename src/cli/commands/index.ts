import type { Command } from 'commander';

/**
 * Every subcommand's module, loaded only when needed: `concordat topics
 * list` need not load the coordinator, TypeORM and embedded PostgreSQL that
 * `tx` needs (it halves the start of a command; `--help` loads them all).
 * One line per command file.
 */
const COMMANDS: Readonly<Record<string, () => Promise<(program: Command) => void>>> = {
  broker: async () => (await import('./broker.js')).registerBrokerCommand,
  console: async () => (await import('./console.js')).registerConsoleCommand,
  dlq: async () => (await import('./dlq.js')).registerDlqCommand,
  groups: async () => (await import('./groups.js')).registerGroupsCommand,
  migrate: async () => (await import('./migrate.js')).registerMigrateCommand,
  outbox: async () => (await import('./outbox.js')).registerOutboxCommand,
  topics: async () => (await import('./topics.js')).registerTopicsCommand,
  tx: async () => (await import('./tx.js')).registerTxCommand,
};

/**
 * Adds the subcommand named `name` to `program`, or every subcommand when
 * `name` names none (`--help`, `help`, a typo: commander then lists them all).
 */
export async function registerCommands(program: Command, name?: string): Promise<void> {
  const names = name !== undefined && Object.hasOwn(COMMANDS, name) ? [name] : Object.keys(COMMANDS);
  for (const register of await Promise.all(names.map((n) => COMMANDS[n]!()))) register(program);
}
