/**
 * The coordinator's spans (see `observability/tracing.ts` for the messaging
 * ones around them). A global transaction's begin is a span
 * `<MODE> begin <name>`; each step the coordinator takes on it — a reply, a
 * deadline, a resend, an operator's command — a span
 * `<MODE> <STATE>` or `<MODE> <STATE> → <NEW STATE>` whose events are the
 * timeline entries the step wrote (`concordat.global_tx_event` kinds).
 * Both are children of the context's trace context (the caller's span for a
 * begin, the reply's `process` span for a reply), and the commands they
 * publish are their children: so a global transaction begun under a request
 * is one trace through every participant and back. A step the coordinator's
 * scan takes (deadline, resend) or an operator's command has no message to
 * continue: its parent is the begin span, whose context the global
 * transaction's row keeps (`options.trace`, written only when a propagator
 * is registered), so it joins the same trace.
 *
 * @module
 */

import {
  activeContext,
  extractTraceContext,
  hasSpan,
  injectTraceContext,
  recordSpanError,
  SpanKind,
  startSpan,
  TraceAttribute,
  withSpan,
  type Context,
  type Span,
  type TraceCarrier,
} from '../../observability/index.js';
import type { TransactionContext } from '../../runtime/index.js';
import type { Transition, TxInput } from './protocol.js';
import type { GlobalTxRow } from './store.js';
import type { TxMode } from './states.js';

/**
 * Starts the begin span of a global transaction. `publish` runs the
 * synchronous `work` (which publishes through `context`) as its child;
 * `carrier` is its W3C context for the row (empty without a propagator).
 */
export function beginSpan(
  context: TransactionContext,
  tx: { id: string; mode: TxMode; name: string; branches: number },
): { span: Span; carrier: TraceCarrier; publish<R>(work: () => R): R } {
  const parent = context.traceContext ?? activeContext();
  const span = startSpan(`${tx.mode} begin ${tx.name}`, SpanKind.INTERNAL, parent, {
    [TraceAttribute.GLOBAL_TX_ID]: tx.id,
    [TraceAttribute.GLOBAL_TX_MODE]: tx.mode,
    [TraceAttribute.GLOBAL_TX_NAME]: tx.name,
    'concordat.global_tx.branches': tx.branches,
  });
  const ctx = withSpan(parent, span);
  const carrier: TraceCarrier = {};
  injectTraceContext(ctx, carrier);
  return { span, carrier, publish: (work) => context.withTraceContext(ctx, work) };
}

/**
 * Runs `publish` (the step's commands and outcome, synchronous) inside the
 * span of one coordinator step on `tx`, and ends the span.
 */
export function traceStep(context: TransactionContext, tx: GlobalTxRow, input: TxInput, step: Transition, publish: () => void): void {
  const to = step.tx?.state ?? tx.state;
  const parent = stepParent(context, tx, input);
  const span = startSpan(to === tx.state ? `${tx.mode} ${tx.state}` : `${tx.mode} ${tx.state} → ${to}`, SpanKind.INTERNAL, parent, {
    [TraceAttribute.GLOBAL_TX_ID]: tx.id,
    [TraceAttribute.GLOBAL_TX_MODE]: tx.mode,
    [TraceAttribute.GLOBAL_TX_NAME]: tx.name,
    [TraceAttribute.GLOBAL_TX_STATE_FROM]: tx.state,
    [TraceAttribute.GLOBAL_TX_STATE]: to,
    [TraceAttribute.GLOBAL_TX_INPUT]: input.kind,
    ...(input.kind === 'reply' && { [TraceAttribute.BRANCH_ID]: input.reply.branchId }),
  });
  if (span.isRecording()) {
    for (const event of step.events) {
      span.addEvent(event.kind, {
        ...(event.branchId !== null && { [TraceAttribute.BRANCH_ID]: event.branchId }),
        ...(event.state !== null && { 'concordat.state': event.state }),
        ...(event.detail !== null && { 'concordat.detail': event.detail.slice(0, 1024) }),
      });
    }
  }
  try {
    context.withTraceContext(withSpan(parent, span), publish);
  } catch (error) {
    recordSpanError(span, error);
    throw error;
  } finally {
    span.end();
  }
}

/**
 * A reply's step continues the reply's trace (the context's); any other
 * step continues the caller's active span if there is one (an operator's
 * traced tool), else the trace of the global transaction's begin.
 */
function stepParent(context: TransactionContext, tx: GlobalTxRow, input: TxInput): Context {
  if (context.traceContext !== undefined) return context.traceContext;
  const active = activeContext();
  if (input.kind === 'reply' || tx.trace === undefined || tx.trace === null || hasSpan(active)) return active;
  return extractTraceContext(tx.trace);
}
