import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBroker, type Broker, type StartBrokerDependencies } from '../../../../src/broker/index.js';
import type { BrokerOptions } from '../../../../src/config/index.js';

export interface TestBroker {
  broker: Broker;
  port: number;
  /** `127.0.0.1:<port>` */
  bootstrap: string;
  dataDir: string;
  /** Closes the broker and removes its data directory. */
  stop(): Promise<void>;
}

/**
 * A broker in this process on a free port over a fresh temporary log.
 * Unlike `concordat broker` (Kafka's 3000 ms), its consumer groups do not
 * wait for more members before their first rebalance
 * (`log.groups.initialRebalanceDelayMs` 0, unless `options.log` sets it), so
 * that every group test does not start 3 s late; tests of the delay set it.
 */
export async function startTestBroker(options: Partial<BrokerOptions> = {}, dependencies: StartBrokerDependencies = {}): Promise<TestBroker> {
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'concordat-broker-')));
  const log = { ...options.log, groups: { initialRebalanceDelayMs: 0, ...options.log?.groups } };
  const broker = await startBroker({ host: '127.0.0.1', port: 0, ...options, log, dataDir }, dependencies);
  return {
    broker,
    port: broker.port,
    bootstrap: `127.0.0.1:${broker.port}`,
    dataDir,
    async stop() {
      await broker.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** A unique name for a topic or group, so tests never share one. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

// The client tools some broker tests need, and skipping or failing without them.
export { DEBIAN_PYTHON, fileNeedsTools, requireTool, testNeedsTools } from '../../../support/tools.js';
