import 'reflect-metadata';
import { ConcordatApp } from '../../../../src/runtime/index.js';
import { EffectLedger, until } from '../../../../src/testing/index.js';
import { EmbeddedTransport } from '../../../../src/transport/index.js';
import { AuditService, LEDGER_TABLE, LedgerService } from './ledger-services.js';

/**
 * The ledger app as a process of its own, for the SIGKILL tests: runs the
 * relay and both consumers on DATABASE_URL and the log in LOG_DIR until the
 * ledger holds EXPECTED effects, then prints `done` and exits 0. With
 * CONCORDAT_FAULTS armed, a fault point SIGKILLs it on the way.
 */
const url = process.env.DATABASE_URL!;
const logDir = process.env.LOG_DIR!;
const expected = Number(process.env.EXPECTED);

const transport = new EmbeddedTransport({ dataDir: logDir });
const app = ConcordatApp.create({
  name: 'ledger-app',
  services: [LedgerService, AuditService],
  database: { url, poolSize: 6 },
  transport,
  relay: { pollIntervalMs: 100, lanes: 2, batchRowsMax: 7 },
  partitions: 4,
});
await app.start();
process.stdout.write('started\n');
const ledger = new EffectLedger(app.dataSource, LEDGER_TABLE);
await until(async () => (await ledger.count()) >= expected, { timeoutMs: 90_000, intervalMs: 50, message: `${expected} effects` });
// Let the last offsets and outbox deletes land before stopping cleanly.
await new Promise((resolve) => setTimeout(resolve, 300));
await app.stop();
await transport.close();
process.stdout.write('done\n');
process.exit(0);
