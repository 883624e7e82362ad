import { writeSync } from 'node:fs';
import { startBroker } from '../../../../src/broker/index.js';
import { LogManager } from '../../../../src/log/index.js';

/**
 * `node --import tsx txn-crash-broker.ts <dataDir>`: a broker in its own
 * process that SIGKILLs itself when a transaction's PrepareCommit or
 * PrepareAbort is durable and before its first marker is written (the
 * coordinator's fault seam), i.e. between the two phases of EndTxn. Prints
 * `ready <port>` once it listens.
 */
const [dataDir] = process.argv.slice(2) as [string];
const logManager = await LogManager.open(
  { dataDir },
  {
    transactionFaults: {
      afterPrepare: () => {
        writeSync(1, 'prepared\n');
        process.kill(process.pid, 'SIGKILL');
        return new Promise<void>(() => {});
      },
    },
  },
);
const broker = await startBroker({ host: '127.0.0.1', port: 0 }, { logManager });
writeSync(1, `ready ${broker.port}\n`);
