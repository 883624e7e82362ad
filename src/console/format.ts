/** How the console's pages write times, durations and payloads. */

/** `2026-12-07 15:04:05.123Z`, or `-` for null. */
export function time(value: Date | string | null | undefined): string {
  if (value === null || value === undefined) return '-';
  return new Date(value).toISOString().replace('T', ' ');
}

/** A duration in seconds as an operator reads it: `12.5s`, `3.2m`, `4.0h`, `2.1d`; negative keeps its sign. */
export function seconds(value: number | null | undefined): string {
  if (value === null || value === undefined) return '-';
  const abs = Math.abs(value);
  const text =
    abs < 120
      ? `${abs.toFixed(1)}s`
      : abs < 7200
        ? `${(abs / 60).toFixed(1)}m`
        : abs < 172_800
          ? `${(abs / 3600).toFixed(1)}h`
          : `${(abs / 86_400).toFixed(1)}d`;
  return value < 0 ? `-${text}` : text;
}

/** Bytes as `12.3 KiB`. */
export function bytes(value: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let n = value;
  let unit = 0;
  while (n >= 1024 && unit < units.length - 1) {
    n /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${n} B` : `${n.toFixed(1)} ${units[unit]}`;
}

/** JSON indented for reading, or the text as it is. */
export function pretty(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'string') {
    try {
      return JSON.stringify(JSON.parse(value), null, 2);
    } catch {
      return value;
    }
  }
  return JSON.stringify(value, null, 2);
}

/** A payload's bytes: pretty JSON or UTF-8 text when they are valid UTF-8, else base64 (`encoding` says which). */
export function payloadText(payload: Buffer | null): { text: string; encoding: 'utf-8' | 'base64' | 'none' } {
  if (payload === null) return { text: '', encoding: 'none' };
  const text = payload.toString('utf8');
  if (Buffer.from(text, 'utf8').equals(payload)) return { text: pretty(text), encoding: 'utf-8' };
  return { text: payload.toString('base64'), encoding: 'base64' };
}

/** The query string of `params` without empty values (`?a=1&b=x`), or ''. */
export function query(params: Record<string, string | undefined>): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value !== undefined && value !== '') search.set(key, value);
  const text = search.toString();
  return text === '' ? '' : `?${text}`;
}
