import 'reflect-metadata';
import { writeSync } from 'node:fs';
import { Container } from 'inversify';
import { ConcordatApp } from '../../../../src/runtime/index.js';
import { COORDINATOR_OPTIONS, TransactionCoordinator } from '../../../../src/transactions/index.js';
import { KafkaTransport } from '../../../../src/transport/index.js';
import { participantClass, type CrashMode } from './participants.js';

/**
 * One service of the crash tests in its own process:
 * `node --import tsx service.ts <role> <mode>` with DATABASE_URL and
 * BOOTSTRAP (the broker) in the environment, and CONCORDAT_FAULTS to be
 * killed at a named point. `role` is `coordinator` or a participant name;
 * with CRASH_COLOCATED=1 the coordinator's process runs alpha too, on the
 * same database (its replies go through the co-located stage, not the log).
 * Prints `ready` once consuming; SIGTERM stops it cleanly.
 */
const [role, mode] = process.argv.slice(2) as [string, CrashMode];
const container = new Container();
container.bind(COORDINATOR_OPTIONS).toConstantValue({ scanIntervalMs: 100, resendIntervalMs: 500, resendIntervalMaxMs: 2000 });
const transport = new KafkaTransport({
  brokers: [process.env.BOOTSTRAP!],
  clientId: role,
  consumer: { sessionTimeoutMs: 1500, heartbeatIntervalMs: 300, rebalanceTimeoutMs: 3000, maxWaitMs: 100, retryBackoffMs: 50, retryBackoffMaxMs: 500 },
});
const app = ConcordatApp.create({
  name: role,
  services:
    role !== 'coordinator'
      ? [participantClass(mode, role)]
      : process.env.CRASH_COLOCATED === '1'
        ? [TransactionCoordinator, participantClass(mode, 'alpha')]
        : [TransactionCoordinator],
  container,
  database: { url: process.env.DATABASE_URL!, poolSize: 8 },
  transport,
  partitions: 4,
});
await app.start();
writeSync(1, 'ready\n');
process.on('SIGTERM', () => {
  void app.stop().then(async () => {
    await transport.close();
    process.exit(0);
  });
});
