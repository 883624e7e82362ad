/**
 * Imported first by the demo's entry points: their own output (progress,
 * summary, checks) is on stdout, and Concordat's components log JSON lines on
 * stderr at `info` by default, which would interleave with it on a terminal.
 * The demo parent logs at `warn` unless CONCORDAT_LOG_LEVEL says otherwise;
 * `ORDER_SAGA_CHILD_LOG_LEVEL` keeps the level the user asked for (or `info`)
 * for the service processes of `--processes`, whose logs go to files.
 */
process.env.ORDER_SAGA_CHILD_LOG_LEVEL ??= process.env.CONCORDAT_LOG_LEVEL ?? 'info';
process.env.CONCORDAT_LOG_LEVEL ??= 'warn';
export {};
