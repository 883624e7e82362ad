import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { requireTool } from '../../../support/tools.js';

/**
 * librdkafka's in-process mock cluster, hosted by a long-running `kcat`
 * consumer (`-X test.mock.num.brokers=N`): a Kafka-protocol cluster of N
 * brokers on loopback, written by librdkafka's authors, not by us. Its
 * topics are auto-created on Metadata with 4 partitions led by its brokers;
 * its Metadata names a controller (ID 0) that is not one of its brokers, so
 * kafkajs's CreateTopics and InitProducerId (both sent to the controller)
 * fail against it.
 */
export interface MockCluster {
  /** `host:port` of each mock broker. */
  brokers: string[];
  stop(): Promise<void>;
}

export async function startMockCluster(brokers = 3, timeoutMs = 10_000): Promise<MockCluster> {
  requireTool('kcat');
  const child = spawn('kcat', ['-X', `test.mock.num.brokers=${brokers}`, '-b', '127.0.0.1:1', '-C', '-t', 'mock-keepalive', '-o', 'end', '-q'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const bootstrap = await new Promise<string[]>((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error(`kcat printed no mock cluster address within ${timeoutMs} ms`)), timeoutMs);
    const lines = createInterface({ input: child.stderr! });
    const fail = (error: Error): void => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(error);
    };
    lines.on('line', (line) => {
      // "%5|...|MOCK|...: Mock cluster enabled: original bootstrap.servers and security.protocol ignored and replaced with 127.0.0.1:33183,..."
      const match = /replaced with ([0-9.:,]+)/.exec(line);
      if (match === null) return;
      clearTimeout(timer);
      resolve(match[1]!.split(','));
    });
    child.once('exit', (code) => fail(new Error(`kcat exited with ${code} before the mock cluster was up`)));
    child.once('error', fail);
  });
  return { brokers: bootstrap, stop: () => stopChild(child) };
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}
