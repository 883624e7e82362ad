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
 * killed at a named point. `role` is `coordinator` or a participant name.
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
  services: [role === 'coordinator' ? TransactionCoordinator : participantClass(mode, role)],
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
