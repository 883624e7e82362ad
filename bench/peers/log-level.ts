/**
 * Imported first by bench:peers' entry points (index.ts, concordat.ts), before
 * Concordat's logger module reads its level: the benchmark's own lines are
 * the output, so Concordat logs at `warn` unless CONCORDAT_LOG_LEVEL says
 * otherwise (the systems' processes inherit it).
 */
process.env.CONCORDAT_LOG_LEVEL ??= 'warn';
export {};
