export { InjectedFault, armFault, armFaultsFromEnv, disarmFaults, faultHits, faultPoint, type FaultAction } from './fault-points.js';
export { createLogger, rootLoggerFrom, type Logger, type LoggerLike, type LogMethod } from './logger.js';
export { MetricsServer, type MetricsAddress, type ReadinessCheck, type ReadinessReport } from './metrics-server.js';
export {
  activeContext,
  extractTraceContext,
  hasSpan,
  injectTraceContext,
  inSpan,
  linksOfRecords,
  MESSAGING_SYSTEM,
  recordSpanError,
  ROOT_CONTEXT,
  runIn,
  SpanKind,
  startSpan,
  TraceAttribute,
  TraceEvent,
  tracer,
  withSpan,
  type Context,
  type Span,
  type TraceCarrier,
} from './tracing.js';
