import { spawnSync } from 'node:child_process';
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

/** A broker in this process on a free port over a fresh temporary log. */
export async function startTestBroker(options: Partial<BrokerOptions> = {}, dependencies: StartBrokerDependencies = {}): Promise<TestBroker> {
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'concordat-broker-')));
  const broker = await startBroker({ host: '127.0.0.1', port: 0, ...options, dataDir }, dependencies);
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

/** The Debian Python that has python3-kafka; pyenv's `python3` does not. */
export const DEBIAN_PYTHON = '/usr/bin/python3';

/**
 * Fails (not skips) when a client tool the test needs is missing, with the
 * command that installs it: CI's `.ci/run` installs them, so a missing tool
 * is a broken machine, not a reason to pass.
 */
export function requireTool(tool: 'kcat' | 'kafka-python' | 'confluent-kafka' | 'nats-server'): void {
  const checks: Record<typeof tool, [string, string[]]> = {
    kcat: ['kcat', ['-V']],
    'kafka-python': [DEBIAN_PYTHON, ['-c', 'import kafka']],
    'confluent-kafka': [DEBIAN_PYTHON, ['-c', 'import confluent_kafka']],
    'nats-server': ['nats-server', ['--version']],
  };
  const [command, args] = checks[tool];
  const result = spawnSync(command, args, { stdio: 'ignore' });
  if (result.status !== 0) {
    throw new Error(
      `${tool} is required by this test and is missing: apt-get install -y kcat python3-kafka python3-confluent-kafka (as .ci/run does)`,
    );
  }
}
