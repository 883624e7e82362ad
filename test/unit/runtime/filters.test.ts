import { describe, expect, it } from 'vitest';
import { createEnvelope } from '../../../src/messaging/index.js';
import { ConcordatError, ErrorCode } from '../../../src/errors.js';
import {
  compileFilter,
  exploreHandlers,
  filterMatches,
  filtersDisjoint,
  OnMessage,
  Service,
  type CompiledFilter,
  type MessageContext,
} from '../../../src/runtime/index.js';

/** Filters of `@OnMessage(topic, { filter })` (issue 14): matching, and the start-up checks of several handlers on one topic. */

const compiled = (filter: unknown): CompiledFilter => {
  const result = compileFilter(filter);
  if (typeof result === 'string') throw new Error(result);
  return result;
};
const message = (init: { type: string; subject?: string; extensions?: Record<string, string>; correlationid?: string }) =>
  createEnvelope({ source: 'shop', data: { cents: 5 }, ...init });

/** The problems exploreHandlers reports for `classes`. */
function problems(classes: Function[]): string[] {
  try {
    exploreHandlers(classes);
  } catch (error) {
    expect(error).toBeInstanceOf(ConcordatError);
    expect((error as ConcordatError).code).toBe(ErrorCode.HANDLER_DEFINITION_INVALID);
    return (error as ConcordatError).context.problems as string[];
  }
  return [];
}

describe('message filters', () => {
  it('match CloudEvents attributes: core ones, known and own extensions, any of a list', () => {
    const placedEu = message({ type: 'order.placed', subject: 'o-1', extensions: { region: 'eu' }, correlationid: 'c-1' });
    expect(filterMatches(compiled({ type: 'order.placed' }), placedEu)).toBe(true);
    expect(filterMatches(compiled({ type: 'order.cancelled' }), placedEu)).toBe(false);
    expect(filterMatches(compiled({ type: ['order.cancelled', 'order.placed'], region: 'eu' }), placedEu)).toBe(true);
    expect(filterMatches(compiled({ type: 'order.placed', region: 'us' }), placedEu)).toBe(false);
    expect(filterMatches(compiled({ subject: 'o-1', source: 'shop', correlationid: 'c-1' }), placedEu)).toBe(true);
    // A message without the attribute does not match.
    expect(filterMatches(compiled({ tenant: 'a' }), placedEu)).toBe(false);
    expect(
      filterMatches(
        compiled((m: { data: unknown }) => (m.data as { cents: number }).cents > 1),
        placedEu,
      ),
    ).toBe(true);
    expect(filterMatches(undefined, placedEu)).toBe(true);
  });

  it('are disjoint only when both name one attribute with no value in common', () => {
    expect(filtersDisjoint(compiled({ type: 'a' }), compiled({ type: 'b' }))).toBe(true);
    expect(filtersDisjoint(compiled({ type: ['a', 'c'] }), compiled({ type: ['b', 'd'], region: 'eu' }))).toBe(true);
    expect(filtersDisjoint(compiled({ type: ['a', 'b'] }), compiled({ type: 'b' }))).toBe(false);
    expect(filtersDisjoint(compiled({ type: 'a' }), compiled({ region: 'eu' }))).toBe(false);
    expect(filtersDisjoint(compiled({ type: 'a' }), undefined)).toBe(false);
    expect(
      filtersDisjoint(
        compiled(() => false),
        compiled({ type: 'a' }),
      ),
    ).toBe(false);
  });

  it('refuse malformed filters, naming the handler and what is wrong', () => {
    @Service('bad-filters')
    class BadFilters {
      @OnMessage('f.empty', { filter: {} })
      async empty(_context: MessageContext): Promise<void> {}
      @OnMessage('f.name', { filter: { Type: 'a' } })
      async name(_context: MessageContext): Promise<void> {}
      @OnMessage('f.data', { filter: { data: 'x' } })
      async data(_context: MessageContext): Promise<void> {}
      @OnMessage('f.value', { filter: { type: [] } })
      async value(_context: MessageContext): Promise<void> {}
      // @ts-expect-error a filter is an object of attributes or a function
      @OnMessage('f.kind', { filter: 'order.placed' })
      async kind(_context: MessageContext): Promise<void> {}
    }
    expect(problems([BadFilters])).toEqual([
      'BadFilters.empty: filter {} names no attribute (it would match every message): name one, or leave the filter out',
      "BadFilters.name: filter: 'Type' is not a CloudEvents attribute name (1..20 lower-case letters and digits)",
      "BadFilters.data: filter: 'data' is not an attribute; filter on the payload with a function of the message",
      "BadFilters.value: filter: 'type' must be a string or a non-empty array of strings, got []",
      "BadFilters.kind: filter must be an object of CloudEvents attributes ({ type: 'order.placed' }) or a function of the message, got string",
    ]);
  });

  it('allow several handlers of one topic in one group when their filters are disjoint, routed in declaration order', () => {
    @Service('router')
    class Router {
      @OnMessage('orders', { filter: { type: 'order.placed' } })
      async placed(_context: MessageContext): Promise<void> {}
      @OnMessage('orders', { filter: { type: ['order.cancelled', 'order.refunded'] } })
      async cancelled(_context: MessageContext): Promise<void> {}
      // Its own group: a predicate is fine there.
      @OnMessage('orders', { group: 'router-audit', filter: (m) => m.type.startsWith('order.') })
      async audit(_context: MessageContext): Promise<void> {}
    }
    const table = exploreHandlers([Router]);
    expect(table.consumers.map((c) => [c.group, [...c.routes.get('orders')!].map((h) => h.label)])).toEqual([
      ['router', ['Router.placed', 'Router.cancelled']],
      ['router-audit', ['Router.audit']],
    ]);
    expect(table.consumers[0]!.handlers.get('orders')!.label).toBe('Router.placed');
  });

  it('fail start-up, naming both handlers, when two filters can both match, or a predicate or no filter shares the topic', () => {
    @Service('overlap')
    class Overlap {
      @OnMessage('o.both', { filter: { type: ['a', 'b'] } })
      async ab(_context: MessageContext): Promise<void> {}
      @OnMessage('o.both', { filter: { type: 'b', region: 'eu' } })
      async b(_context: MessageContext): Promise<void> {}
      @OnMessage('o.pred', { filter: { type: 'a' } })
      async typed(_context: MessageContext): Promise<void> {}
      @OnMessage('o.pred', { filter: (m) => m.type === 'b' })
      async predicate(_context: MessageContext): Promise<void> {}
      @OnMessage('o.none', { filter: { type: 'a' } })
      async filtered(_context: MessageContext): Promise<void> {}
      @OnMessage('o.none')
      async all(_context: MessageContext): Promise<void> {}
    }
    const fix = "give both attribute filters with different values of one attribute (such as type), merge them, or give one its own group with @OnMessage('";
    expect(problems([Overlap])).toEqual([
      `Overlap.ab and Overlap.b both handle topic 'o.both' in consumer group 'overlap', and their filters ({ type: 'a' | 'b' } and { type: 'b', region: 'eu' }) can both match one message: ${fix}o.both', { group: '...' })`,
      `Overlap.typed and Overlap.predicate both handle topic 'o.pred' in consumer group 'overlap', and a predicate filter cannot be proven disjoint from another handler, so its handler must be alone on its topic in its group: ${fix}o.pred', { group: '...' })`,
      `Overlap.filtered and Overlap.all both handle topic 'o.none' in consumer group 'overlap', and their filters ({ type: 'a' } and no filter) can both match one message: ${fix}o.none', { group: '...' })`,
    ]);
  });
});
