import type { Command } from 'commander';
import { registerBrokerCommand } from './broker.js';
import { registerConsoleCommand } from './console.js';
import { registerDlqCommand } from './dlq.js';
import { registerMigrateCommand } from './migrate.js';
import { registerTxCommand } from './tx.js';

/** Adds every subcommand to `program`. One line per command file. */
export function registerCommands(program: Command): void {
  registerBrokerCommand(program);
  registerConsoleCommand(program);
  registerDlqCommand(program);
  registerMigrateCommand(program);
  registerTxCommand(program);
}
