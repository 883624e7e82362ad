import { writeSync } from 'node:fs';
import { startMember } from './group-member.js';

/**
 * `node --import tsx group-member-child.ts <bootstrap> <topic> <groupId> <name> <delayMs>`:
 * a group member in its own process, reporting one JSON line per event on
 * stdout, written synchronously so that a SIGKILL loses nothing reported.
 */
const [bootstrap, topic, groupId, name, delayMs] = process.argv.slice(2) as [string, string, string, string, string];
await startMember({ bootstrap, topic, groupId, name, delayMs: Number(delayMs) }, (event) => {
  writeSync(1, `${JSON.stringify(event)}\n`);
});
