import { context, propagation, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor, ConsoleSpanExporter, type SpanExporter } from '@opentelemetry/sdk-trace-base';

/**
 * How each process of the demo registers an OpenTelemetry SDK — the
 * application's part: Concordat itself only calls `@opentelemetry/api`,
 * which does nothing until an SDK is registered (docs/operations.md,
 * "Tracing").
 *
 * Honours OpenTelemetry's standard variable `OTEL_TRACES_EXPORTER`:
 * - `otlp`: OTLP over HTTP (JSON) to `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
 *   (or `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/traces`; default
 *   http://localhost:4318/v1/traces — a Jaeger or an OpenTelemetry
 *   Collector);
 * - `console`: each span printed on stdout;
 * - unset or `none`: nothing registered.
 * Spans are batched (`BatchSpanProcessor`) and carry `service.name` =
 * `OTEL_SERVICE_NAME` or `serviceName`; the context travels as W3C Trace
 * Context in each message's `traceparent`.
 *
 * @returns what flushes and stops the SDK (call it before the process exits), or undefined when none was registered.
 * @throws Error for an `OTEL_TRACES_EXPORTER` this demo does not know.
 */
export function registerTracingFromEnv(serviceName: string, env: NodeJS.ProcessEnv = process.env): (() => Promise<void>) | undefined {
  const kind = env.OTEL_TRACES_EXPORTER ?? 'none';
  if (kind === 'none' || kind === '') return undefined;
  let exporter: SpanExporter;
  if (kind === 'otlp') exporter = new OTLPTraceExporter();
  else if (kind === 'console') exporter = new ConsoleSpanExporter();
  else throw new Error(`OTEL_TRACES_EXPORTER=${kind} is not supported by the demo: use otlp, console or none`);
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': env.OTEL_SERVICE_NAME ?? serviceName }),
    spanProcessors: [new BatchSpanProcessor(exporter, { scheduledDelayMillis: 500 })],
  });
  trace.setGlobalTracerProvider(provider);
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  return async () => {
    await provider.shutdown();
    trace.disable();
    context.disable();
    propagation.disable();
  };
}
