import { context, propagation, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';

/**
 * The real OpenTelemetry SDK registered globally for one test file (vitest
 * runs each file in a worker of its own): a tracer provider exporting to
 * memory, async-hooks context, the W3C Trace Context propagator — what an
 * application registers before it starts its Concordat app.
 */
export interface TestTracing {
  exporter: InMemorySpanExporter;
  /** Finished spans so far. */
  spans(): ReadableSpan[];
  /** Unregisters everything. */
  close(): Promise<void>;
}

export function registerTestTracing(): TestTracing {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  trace.setGlobalTracerProvider(provider);
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  return {
    exporter,
    spans: () => exporter.getFinishedSpans(),
    close: async () => {
      await provider.shutdown();
      trace.disable();
      context.disable();
      propagation.disable();
    },
  };
}

/** The span that is `span`'s parent among `spans`, or undefined (a root, or a parent not exported). */
export function parentOf(span: SpanLike, spans: readonly SpanLike[]): SpanLike | undefined {
  const parentId = span.parentSpanId;
  return parentId === undefined ? undefined : spans.find((candidate) => candidate.spanId === parentId);
}

/** What the assertions read of a span, from the in-memory exporter or from an OTLP/JSON export. */
export interface SpanLike {
  name: string;
  traceId: string;
  spanId: string;
  parentSpanId: string | undefined;
  attributes: Record<string, unknown>;
  events: string[];
  /** 2 = ERROR (OTLP's status code). */
  statusCode: number;
  links: Array<{ traceId: string; spanId: string }>;
  /** Service name of the process that exported it (`service.name`), when known. */
  service?: string;
}

export function spanLike(span: ReadableSpan): SpanLike {
  return {
    name: span.name,
    traceId: span.spanContext().traceId,
    spanId: span.spanContext().spanId,
    parentSpanId: span.parentSpanContext?.spanId,
    attributes: { ...span.attributes },
    events: span.events.map((event) => event.name),
    statusCode: span.status.code,
    links: span.links.map((link) => ({ traceId: link.context.traceId, spanId: link.context.spanId })),
  };
}

/**
 * The tree of a trace as indented lines `name` (children sorted by name, so
 * the text does not depend on timing), starting at the trace's root spans.
 * `keep` chooses the spans shown; a hidden span's children hang on its
 * nearest shown ancestor.
 */
export function traceTree(spans: readonly SpanLike[], traceId: string, keep: (span: SpanLike) => boolean = () => true): string[] {
  const inTrace = spans.filter((span) => span.traceId === traceId);
  const shownParent = (span: SpanLike): SpanLike | undefined => {
    for (let parent = parentOf(span, inTrace); parent !== undefined; parent = parentOf(parent, inTrace)) if (keep(parent)) return parent;
    return undefined;
  };
  const shown = inTrace.filter(keep);
  const children = new Map<SpanLike | undefined, SpanLike[]>();
  for (const span of shown) {
    const parent = shownParent(span);
    children.set(parent, [...(children.get(parent) ?? []), span]);
  }
  const lines: string[] = [];
  const walk = (parent: SpanLike | undefined, depth: number): void => {
    const label = (span: SpanLike): string => span.name + (span.service === undefined ? '' : ` [${span.service}]`);
    for (const span of [...(children.get(parent) ?? [])].sort((a, b) => label(a).localeCompare(label(b)))) {
      lines.push('  '.repeat(depth) + label(span));
      walk(span, depth + 1);
    }
  };
  walk(undefined, 0);
  return lines;
}
