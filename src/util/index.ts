/**
 * Waiting, shared by every layer (`log/` included, so this folder imports
 * nothing of Concordat's): capped exponential backoff and an abortable sleep.
 *
 * @module
 */

export { backoffMs, type Backoff } from './backoff.js';
export { sleep } from './sleep.js';
