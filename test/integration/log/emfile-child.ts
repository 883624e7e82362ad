/**
 * Child process of storage.test.ts, run under a `ulimit -n` lower than
 * openFilesMax: creates a topic of 200 partitions (each keeps its active
 * segment open) and prints the error it gets as JSON, or OK; then whether
 * the topic exists and a small topic can still be created.
 * Usage: node --import tsx emfile-child.ts <dataDir>
 */
import type { ConcordatError } from '../../../src/errors.js';
import { LogManager } from '../../../src/log/index.js';

const [dataDir] = process.argv.slice(2);
const logManager = await LogManager.open({ dataDir: dataDir!, openFilesMax: 1000 });
let reported: unknown = 'OK';
try {
  await logManager.createTopic('wide', { partitions: 200 });
} catch (error) {
  const e = error as ConcordatError;
  reported = { code: e.code, message: e.message, limit: e.context?.limit };
}
await logManager.createTopic('small', { partitions: 1 });
await logManager.appendRecords('small', 0, [{ key: null, value: Buffer.from('x') }]);
process.stdout.write(`${JSON.stringify({ reported, wideExists: logManager.hasTopic('wide'), topics: logManager.listTopics() })}\n`);
await logManager.close();
