/**
 * Concordat's spans, through `@opentelemetry/api` only: without an SDK
 * registered (a `TracerProvider` and a propagator, see docs/operations.md
 * "Tracing") every call here is the API's no-op — a non-recording span, an
 * unchanged context — and costs a few allocations per message
 * (`bench:outbox --otel` measures it).
 *
 * Names and attributes follow OpenTelemetry's semantic conventions for
 * messaging (https://opentelemetry.io/docs/specs/semconv/messaging/messaging-spans/,
 * v1.27+): a message's creation context is a `publish` span (operation type
 * `create`, kind PRODUCER) made when it is written to the outbox; the relay's
 * batch is a `send` span (kind CLIENT) that links to its records' creation
 * contexts; a handler's run is a `process` span (kind CONSUMER) whose parent
 * is the message's creation context, so one trace follows a conversation
 * across services and processes. The log is Kafka's model whichever transport
 * carries it, so `messaging.system` is `kafka` and the `messaging.kafka.*`
 * attributes apply.
 *
 * The context travels in the message: the CloudEvents distributed-tracing
 * extension (`traceparent`, `tracestate`; on the log the `ce_traceparent`,
 * `ce_tracestate` headers), written and read by the registered propagator
 * (`propagation.inject/extract`), which for these attributes must be W3C
 * Trace Context (https://www.w3.org/TR/trace-context/), as the extension says.
 *
 * @module
 */

import {
  context,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Context,
  type Link,
  type Span,
  type TextMapGetter,
  type TextMapSetter,
} from '@opentelemetry/api';

/** Concordat's tracer (`@opentelemetry/api`'s, instrumentation scope `concordat`); a no-op until an SDK is registered. */
export const tracer = trace.getTracer('concordat');

/** Attribute names: OpenTelemetry's messaging conventions, then Concordat's own (`concordat.*`). */
export const TraceAttribute = {
  SYSTEM: 'messaging.system',
  OPERATION_NAME: 'messaging.operation.name',
  OPERATION_TYPE: 'messaging.operation.type',
  DESTINATION: 'messaging.destination.name',
  PARTITION: 'messaging.destination.partition.id',
  CONSUMER_GROUP: 'messaging.consumer.group.name',
  MESSAGE_ID: 'messaging.message.id',
  CONVERSATION_ID: 'messaging.message.conversation_id',
  BATCH_COUNT: 'messaging.batch.message_count',
  KAFKA_KEY: 'messaging.kafka.message.key',
  KAFKA_OFFSET: 'messaging.kafka.offset',
  ERROR_TYPE: 'error.type',
  /** The handler that ran (`Class.method`). */
  HANDLER: 'concordat.handler',
  /** What came of a delivery: processed, duplicate (skipped by the inbox), dead_lettered, already_dead_lettered. */
  OUTCOME: 'concordat.outcome',
  /** Attempts a delivery took (1: no retry). */
  ATTEMPTS: 'concordat.attempts',
  GLOBAL_TX_ID: 'concordat.global_tx.id',
  GLOBAL_TX_MODE: 'concordat.global_tx.mode',
  GLOBAL_TX_NAME: 'concordat.global_tx.name',
  /** State before and after a coordinator's transition. */
  GLOBAL_TX_STATE_FROM: 'concordat.global_tx.state_from',
  GLOBAL_TX_STATE: 'concordat.global_tx.state',
  /** What drove a transition: reply, deadline, resend, abort, retry, end. */
  GLOBAL_TX_INPUT: 'concordat.global_tx.input',
  BRANCH_ID: 'concordat.branch.id',
  BRANCH_ACTION: 'concordat.branch.action',
  PARTICIPANT: 'concordat.participant',
} as const;

/** `messaging.system`: the log is Kafka's model (embedded, `concordat broker` or Kafka). */
export const MESSAGING_SYSTEM = 'kafka';

/** Span events. */
export const TraceEvent = {
  /** A handler attempt failed and will be retried: `concordat.attempt`, `concordat.retry.delay_ms`, `exception.*`. */
  RETRY: 'retry',
  /** The message went to `<topic>.dlq` after its last attempt. */
  DEAD_LETTER: 'dead_letter',
} as const;

/** The CloudEvents distributed-tracing attributes of an envelope (or anything shaped so). */
export interface TraceCarrier {
  traceparent?: string;
  tracestate?: string;
}

const carrierSetter: TextMapSetter<TraceCarrier> = {
  set(carrier, key, value) {
    // Only the extension's two attributes: a propagator's other fields (B3, baggage) have no place in the envelope.
    if (key === 'traceparent') carrier.traceparent = value;
    else if (key === 'tracestate') carrier.tracestate = value;
  },
};

const carrierGetter: TextMapGetter<TraceCarrier> = {
  keys: () => ['traceparent', 'tracestate'],
  get: (carrier, key) => (key === 'traceparent' ? carrier.traceparent : key === 'tracestate' ? carrier.tracestate : undefined),
};

/** Reads `ce_traceparent` / `ce_tracestate` from a record's (binary-mode) headers. */
const headersGetter: TextMapGetter<Record<string, string>> = {
  keys: () => ['traceparent', 'tracestate'],
  get: (headers, key) => headers[`ce_${key}`],
};

/**
 * Writes the span context of `ctx` into `carrier` (`traceparent`,
 * `tracestate`) through the registered propagator. Leaves `carrier` as it
 * was when no propagator is registered or `ctx` holds no valid span context.
 */
export function injectTraceContext(ctx: Context, carrier: TraceCarrier): void {
  propagation.inject(ctx, carrier, carrierSetter);
}

/** The context a message's `traceparent` / `tracestate` carry (on a fresh root), or the root context when none. */
export function extractTraceContext(carrier: TraceCarrier): Context {
  if (carrier.traceparent === undefined) return ROOT_CONTEXT;
  return propagation.extract(ROOT_CONTEXT, carrier, carrierGetter);
}

/**
 * A link to each record's creation context (its `ce_traceparent` header),
 * for a batch span. Empty when no propagator is registered.
 */
export function linksOfRecords(headersOfRecords: Iterable<Record<string, string>>): Link[] {
  const links: Link[] = [];
  for (const headers of headersOfRecords) {
    if (headers.ce_traceparent === undefined) continue;
    const spanContext = trace.getSpanContext(propagation.extract(ROOT_CONTEXT, headers, headersGetter));
    if (spanContext !== undefined) links.push({ context: spanContext });
  }
  return links;
}

/** Starts a span with `parent` as its parent context. */
export function startSpan(name: string, kind: SpanKind, parent: Context, attributes: Attributes): Span {
  return tracer.startSpan(name, { kind, attributes }, parent);
}

/** `ctx` with `span` as its active span. */
export function withSpan(ctx: Context, span: Span): Context {
  return trace.setSpan(ctx, span);
}

/** Runs `work` with `ctx` active (a plain call without a context manager registered). */
export function runIn<T>(ctx: Context, work: () => T): T {
  return context.with(ctx, work);
}

/** Whether `ctx` holds a span (a recording one, or a remote parent's). */
export function hasSpan(ctx: Context): boolean {
  return trace.getSpan(ctx) !== undefined;
}

/** The active context. */
export function activeContext(): Context {
  return context.active();
}

/** Marks `span` failed with `error`: an `exception` event, status ERROR, `error.type` (the ConcordatError code or the error's name). */
export function recordSpanError(span: Span, error: unknown): void {
  if (!span.isRecording()) return;
  const exception = error instanceof Error ? error : new Error(String(error));
  span.recordException(exception);
  span.setStatus({ code: SpanStatusCode.ERROR, message: exception.message });
  const code = (error as { code?: unknown } | null)?.code;
  span.setAttribute(TraceAttribute.ERROR_TYPE, typeof code === 'string' ? code : exception.name);
}

/**
 * Runs `work` in a new span, child of `parent`, with the span active; ends
 * it when `work` settles, marked failed when it throws (then rethrows).
 */
export async function inSpan<T>(name: string, kind: SpanKind, parent: Context, attributes: Attributes, work: (span: Span) => Promise<T>): Promise<T> {
  const span = startSpan(name, kind, parent, attributes);
  try {
    return await context.with(trace.setSpan(parent, span), () => work(span));
  } catch (error) {
    recordSpanError(span, error);
    throw error;
  } finally {
    span.end();
  }
}

export { ROOT_CONTEXT, SpanKind, type Context, type Span };
