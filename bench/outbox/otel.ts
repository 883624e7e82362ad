import { context, propagation, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { BasicTracerProvider, BatchSpanProcessor, type ReadableSpan, type SpanExporter } from '@opentelemetry/sdk-trace-base';

/**
 * `--otel`: the OpenTelemetry SDK registered as an application would
 * (tracer provider, async-hooks context manager, W3C propagator), its spans
 * batched by a `BatchSpanProcessor` into an exporter that counts and drops
 * them: the cost of making, propagating and batching spans, without the
 * network of a real exporter.
 */
export function registerBenchTracing(): { exported(): number; close(): Promise<void> } {
  let exported = 0;
  const exporter: SpanExporter = {
    export(spans: ReadableSpan[], done) {
      exported += spans.length;
      done({ code: 0 });
    },
    shutdown: async () => undefined,
  };
  const provider = new BasicTracerProvider({
    spanProcessors: [new BatchSpanProcessor(exporter, { maxQueueSize: 65_536, maxExportBatchSize: 2048, scheduledDelayMillis: 200 })],
  });
  trace.setGlobalTracerProvider(provider);
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  return {
    exported: () => exported,
    close: async () => {
      await provider.shutdown();
    },
  };
}
