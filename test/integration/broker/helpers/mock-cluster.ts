import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

/**
 * librdkafka's mock cluster (Debian's kcat links librdkafka 2.0.2): an
 * in-memory Kafka-protocol cluster that lives inside a kcat process. A
 * consumer on a keep-alive topic holds the process (and so the cluster)
 * open; `-d mock` makes librdkafka print the bootstrap servers, which is
 * the only way to learn them. Its topics are created on first use with 4
 * partitions. Known gaps (KAFKA-PROTOCOL.md): its controller ID is not a
 * listed broker, so kafkajs's CreateTopics and idempotent producer fail.
 */
export interface MockCluster {
  bootstrap: string;
  stop(): Promise<void>;
}

export const MOCK_TOPIC_PARTITIONS = 4;

export function startMockCluster(brokers: number): Promise<MockCluster> {
  const child: ChildProcess = spawn(
    'kcat',
    ['-X', `test.mock.num.brokers=${brokers}`, '-b', '127.0.0.1:1', '-C', '-t', 'mock-keepalive', '-o', 'end', '-q', '-d', 'mock'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the librdkafka mock cluster did not report its bootstrap servers')), 10_000);
    let found = false;
    // Keep reading: librdkafka logs every request at this debug level, and a full pipe would stall it.
    createInterface({ input: child.stderr! }).on('line', (line) => {
      if (found) return;
      const match = /bootstrap\.servers=(\S+)/.exec(line);
      if (match === null) return;
      found = true;
      clearTimeout(timer);
      resolve({
        bootstrap: match[1]!,
        async stop() {
          child.kill('SIGTERM');
          await exited;
        },
      });
    });
    child.on('error', reject);
  });
}
