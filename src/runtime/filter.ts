import type { Envelope } from '../messaging/index.js';

/**
 * Which messages of its topic a handler takes (`@OnMessage(topic, { filter })`).
 *
 * - **Attributes**: `{ type: 'order.placed', region: ['eu', 'uk'] }` matches a
 *   message whose every named CloudEvents attribute equals the value, or one
 *   of the values of a list (the "exact" and "any" dialects of the CloudEvents
 *   Subscriptions API, https://github.com/cloudevents/spec/blob/main/subscriptions/spec.md §3.2.4).
 *   A name is a core attribute (`type`, `source`, `subject`, `id`,
 *   `datacontenttype`) or an extension (`partitionkey`, `correlationid`,
 *   `globaltxid`, or your own, as published with `extensions`); a message
 *   without the attribute does not match. Names are CloudEvents attribute
 *   names: 1..20 lower-case letters and digits.
 * - **Predicate**: `(message) => boolean`, called with the decoded envelope
 *   before the payload is validated (its `data` is as published). It must
 *   be synchronous, fast and free of side effects; one that throws
 *   dead-letters the message at once.
 *
 * Messages a handler's filter refuses are acknowledged without a handler
 * transaction and without an inbox row, and counted
 * (`concordat_messages_total{outcome="filtered"}`, `stats().filtered`).
 */
export type MessageFilter = AttributeFilter | ((message: Envelope) => boolean);

/** Attribute name → the value, or the values any of which, it must have. */
export type AttributeFilter = Readonly<Record<string, string | readonly string[]>>;

/** A filter as the dispatcher runs it: attribute names to allowed values, or a predicate. */
export type CompiledFilter =
  { kind: 'attributes'; attributes: ReadonlyMap<string, ReadonlySet<string>> } | { kind: 'predicate'; test: (message: Envelope) => boolean };

const ATTRIBUTE_NAME = /^[a-z0-9]{1,20}$/;
const CORE = new Set(['id', 'type', 'source', 'subject', 'datacontenttype', 'specversion', 'time']);
const KNOWN_EXTENSIONS = new Set(['partitionkey', 'correlationid', 'causationid', 'globaltxid', 'traceparent', 'tracestate']);

/**
 * Checks a filter and compiles it. @returns the compiled filter, or a
 * problem description naming what is wrong (the explorer lists it).
 */
export function compileFilter(filter: unknown): CompiledFilter | string {
  if (typeof filter === 'function') return { kind: 'predicate', test: filter as (message: Envelope) => boolean };
  if (typeof filter !== 'object' || filter === null || Array.isArray(filter)) {
    return `filter must be an object of CloudEvents attributes ({ type: 'order.placed' }) or a function of the message, got ${Array.isArray(filter) ? 'an array' : typeof filter}`;
  }
  const entries = Object.entries(filter);
  if (entries.length === 0) return 'filter {} names no attribute (it would match every message): name one, or leave the filter out';
  const attributes = new Map<string, ReadonlySet<string>>();
  for (const [name, value] of entries) {
    if (name === 'data') return "filter: 'data' is not an attribute; filter on the payload with a function of the message";
    if (!ATTRIBUTE_NAME.test(name)) return `filter: '${name}' is not a CloudEvents attribute name (1..20 lower-case letters and digits)`;
    const values: unknown = typeof value === 'string' ? [value] : value;
    if (!Array.isArray(values) || values.length === 0 || values.some((v) => typeof v !== 'string')) {
      return `filter: '${name}' must be a string or a non-empty array of strings, got ${JSON.stringify(value)}`;
    }
    attributes.set(name, new Set(values as string[]));
  }
  return { kind: 'attributes', attributes };
}

/** Whether `message` passes `filter` (no filter: every message). A predicate's exception propagates. */
export function filterMatches(filter: CompiledFilter | undefined, message: Envelope): boolean {
  if (filter === undefined) return true;
  if (filter.kind === 'predicate') return filter.test(message) === true;
  for (const [name, allowed] of filter.attributes) {
    const value = attributeOf(message, name);
    if (value === undefined || !allowed.has(value)) return false;
  }
  return true;
}

/**
 * Whether no message can pass both filters: both are attribute filters and
 * some attribute they both name has no value in common. Anything else may
 * overlap: no filter matches everything, and a predicate cannot be proven
 * disjoint from anything, so a handler with a predicate must be the only
 * handler of its topic in its consumer group.
 */
export function filtersDisjoint(a: CompiledFilter | undefined, b: CompiledFilter | undefined): boolean {
  if (a?.kind !== 'attributes' || b?.kind !== 'attributes') return false;
  for (const [name, values] of a.attributes) {
    const other = b.attributes.get(name);
    if (other !== undefined && ![...values].some((value) => other.has(value))) return true;
  }
  return false;
}

/** A filter for messages and logs: `{ type: 'a' | 'b' }` or `a predicate`. */
export function describeFilter(filter: CompiledFilter | undefined): string {
  if (filter === undefined) return 'no filter';
  if (filter.kind === 'predicate') return 'a predicate';
  return `{ ${[...filter.attributes].map(([name, values]) => `${name}: ${[...values].map((v) => `'${v}'`).join(' | ')}`).join(', ')} }`;
}

function attributeOf(message: Envelope, name: string): string | undefined {
  if (CORE.has(name) || KNOWN_EXTENSIONS.has(name)) {
    const value = (message as unknown as Record<string, unknown>)[name];
    return typeof value === 'string' ? value : undefined;
  }
  return message.extensions?.[name];
}
