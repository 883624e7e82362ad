/**
 * The operator console: a web UI over Concordat's tables and the cluster
 * (`concordat console`, or the `console` option of `ConcordatApp.create`).
 * See docs/console.md.
 *
 * @module
 */

export { ConsoleServer, type ConsoleAddress, type ConsoleSources } from './server.js';
