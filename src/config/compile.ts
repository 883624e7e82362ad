import { z } from 'zod';
import { ConcordatError, ErrorCode } from '../errors.js';

/**
 * Step three of the four option steps (public options → defaults →
 * validation → compiled options): parses `input` with `schema`, which carries
 * the defaults and the ranges, and returns the compiled options with every
 * field present.
 *
 * @param scope prefix for option names in messages, such as `database` or `relay`.
 * @throws ConcordatError CONFIG_INVALID naming each bad option, what it must
 *   be and what it was.
 */
export function compileOptions<S extends z.ZodType>(schema: S, input: unknown, scope: string): z.output<S> {
  const result = schema.safeParse(input ?? {});
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    const path = scope + issue.path.map(pathStep).join('');
    // At the root the value is the whole options object, not one option: it is not repeated in the message.
    const received = issue.path.length === 0 ? undefined : shown(valueAt(input, issue.path));
    return `${path}: ${issue.message}${received === undefined ? '' : ` (got ${received})`}`;
  });
  throw new ConcordatError(`invalid options: ${problems.join('; ')}`, {
    code: ErrorCode.CONFIG_INVALID,
    context: { scope, problems },
  });
}

/**
 * An integer in min..max, with one message for every way a value can miss it
 * (not a number, a fraction, out of range): `must be an integer in 1..64`.
 */
export function integerIn(min: number, max: number): z.ZodNumber {
  const message = `must be an integer in ${min}..${max}`;
  return z.number({ error: message }).int(message).min(min, message).max(max, message);
}

/** `.name` for a key that reads as a name (and for an array index), `['a.b']` for any other key, such as a topic name. */
function pathStep(key: PropertyKey): string {
  return typeof key === 'string' && !/^[A-Za-z_$][\w$]*$/.test(key) ? `['${key}']` : `.${String(key)}`;
}

/** The value as JSON; NaN and ±Infinity by name (JSON has none); undefined for what JSON cannot show (a function). */
function shown(value: unknown): string | undefined {
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  return JSON.stringify(value);
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let value = input;
  for (const key of path) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
}
