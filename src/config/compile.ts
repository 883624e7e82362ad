import type { z } from 'zod';
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
    const path = [scope, ...issue.path.map(String)].join('.');
    const received = valueAt(input, issue.path);
    return `${path}: ${issue.message}${received === undefined ? '' : ` (got ${JSON.stringify(received)})`}`;
  });
  throw new ConcordatError(`invalid options: ${problems.join('; ')}`, {
    code: ErrorCode.CONFIG_INVALID,
    context: { scope, problems },
  });
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let value = input;
  for (const key of path) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
}
