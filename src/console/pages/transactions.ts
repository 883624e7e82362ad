import type { FastifyInstance } from 'fastify';
import {
  abortGlobalTx,
  browseGlobalTxs,
  describeTransition,
  endGlobalTx,
  GlobalTxState,
  retryGlobalTx,
  showGlobalTx,
  TxMode,
  type BrowseFilter,
  type EndByHandState,
  type Transition,
} from '../../transactions/index.js';
import { pretty, query, seconds, time } from '../format.js';
import { messageOf, type PageContext } from '../server.js';

/** The filter fields of `/transactions`, as the form and the query string name them. */
interface TxQuery {
  state?: string;
  mode?: string;
  name?: string;
  /** Minimum age, as `30s`, `5m`, `2h`, `1d`. */
  older?: string;
  /** Maximum age. */
  newer?: string;
  key?: string;
  after?: string;
}

const STATES = Object.values(GlobalTxState) as string[];
const MODES = Object.values(TxMode) as string[];

/**
 * `/transactions` (list, filtered by state, mode, name, age and a business
 * key in the payload; newest first; keyset pages) and `/transactions/:id`
 * (branches, timeline, and the operator actions `retry`, `abort` and `end`,
 * which call the coordinator's operator functions `concordat tx` calls).
 */
export function registerTransactionPages(app: FastifyInstance, context: PageContext): void {
  const listView = async (q: TxQuery): Promise<Record<string, unknown>> => {
    const page = await browseGlobalTxs(context.sources.dataSource.manager, filterOf(q));
    return {
      rows: page.rows.map((r) => ({
        ...r,
        age: seconds(r.ageSeconds),
        deadlineIn: r.endedAt === null ? seconds(r.deadlineInSeconds) : '-',
        overdue: r.overdueSeconds === null ? '' : seconds(r.overdueSeconds),
      })),
      scanned: page.scanned,
      nextHref: page.next === null ? null : `/transactions${query({ ...q, after: page.next })}`,
      filtered: Object.entries(q).some(([k, v]) => k !== 'after' && v !== undefined && v !== ''),
    };
  };
  context.live.add('transactions', async (q) => context.fragment('transactions-table', await listView(q)));
  app.get<{ Querystring: TxQuery }>('/transactions', async (request, reply) => {
    const q = request.query;
    await context.page(request, reply, 'transactions', {
      q: { state: '', mode: '', name: '', older: '', newer: '', key: '', ...q },
      states: STATES,
      modes: MODES,
      liveSrc: `/live/transactions${query({ ...q })}`,
      firstHref: q.after === undefined ? null : `/transactions${query({ ...q, after: undefined })}`,
      ...(await listView(q)),
    });
  });

  const detailView = async (id: string): Promise<Record<string, unknown> | undefined> => {
    const detail = await showGlobalTx(context.sources.dataSource.manager, id);
    if (detail === undefined) return undefined;
    const { tx } = detail;
    return {
      tx: {
        ...tx,
        created: time(tx.createdAt),
        deadlineAt: time(tx.deadline),
        decided: time(tx.decidedAt),
        ended: time(tx.endedAt),
        resend: tx.endedAt === null && tx.resendAt !== null ? `${time(tx.resendAt)} (resent ${tx.resendCount} time(s))` : '-',
        overdue: tx.overdueSeconds === null ? '' : seconds(tx.overdueSeconds),
        payloadText: pretty(tx.payload),
      },
      branches: detail.branches.map((b) => ({ ...b, updated: time(b.updatedAt), resultText: b.result === null ? '' : pretty(b.result) })),
      events: detail.events.map((e) => ({ ...e, at: time(e.at) })),
      ended: tx.state === GlobalTxState.CONFIRMED || tx.state === GlobalTxState.CANCELLED,
      canAbort: tx.state === GlobalTxState.TRYING,
      canRetry: tx.state !== GlobalTxState.CONFIRMED && tx.state !== GlobalTxState.CANCELLED,
      canEnd: tx.state !== GlobalTxState.CONFIRMED && tx.state !== GlobalTxState.CANCELLED,
    };
  };
  context.live.add('transaction', async (q) => {
    const view = await detailView(q.id ?? '');
    return view === undefined
      ? '<p>This global transaction no longer exists (history cleanup deletes ended ones after their retention).</p>'
      : context.fragment('transaction-live', view);
  });
  app.get<{ Params: { id: string } }>('/transactions/:id', async (request, reply) => {
    const view = await detailView(request.params.id);
    if (view === undefined) {
      reply.code(404);
      return context.page(request, reply, 'error', {
        status: 404,
        message: `global transaction ${request.params.id} does not exist (or history cleanup deleted it)`,
      });
    }
    await context.page(request, reply, 'transaction', { ...view, liveSrc: `/live/transaction${query({ id: request.params.id })}` });
  });

  const action = (name: 'retry' | 'abort' | 'end', run: (id: string, body: Record<string, string>, by: string) => Promise<Transition>): void => {
    app.post<{ Params: { id: string }; Body: Record<string, string> }>(`/transactions/:id/${name}`, async (request, reply) => {
      const id = request.params.id;
      const body = request.body ?? {};
      const back = `/transactions/${encodeURIComponent(id)}`;
      if (body.confirm !== 'yes') return context.redirect(reply, back, { error: `${name} not done: tick the confirmation box` });
      let by: string;
      try {
        by = context.operatorOf(request, body);
      } catch (error) {
        return context.redirect(reply, back, { error: messageOf(error) });
      }
      try {
        const step = await run(id, body, by);
        context.logger.info({ id, action: name, by }, 'operator action on a global transaction');
        return context.redirect(reply, back, { done: `${name}: ${describeTransition(step)}` }, request, body.by?.trim());
      } catch (error) {
        return context.redirect(reply, back, { error: `${name} refused: ${messageOf(error)}` }, request, body.by?.trim());
      }
    });
  };
  const options = context.sources.coordinator ?? {};
  action('retry', (id, _body, by) => retryGlobalTx(context.sources.dataSource, id, options, by));
  action('abort', (id, body, by) => abortGlobalTx(context.sources.dataSource, id, nonEmpty(body.reason) ?? 'no reason given', options, by));
  action('end', (id, body, by) =>
    endGlobalTx(context.sources.dataSource, id, { as: endState(body.as), reason: body.reason ?? '', by, force: body.force === 'yes' }, options),
  );
}

function filterOf(q: TxQuery): BrowseFilter {
  const states = (q.state ?? '').split(',').filter((s) => STATES.includes(s)) as GlobalTxState[];
  return {
    ...(states.length > 0 && { states }),
    ...(q.mode !== undefined && MODES.includes(q.mode) && { mode: q.mode as TxMode }),
    ...(nonEmpty(q.name) !== undefined && { name: q.name }),
    ...(durationMs(q.older) !== undefined && { olderThanMs: durationMs(q.older) }),
    ...(durationMs(q.newer) !== undefined && { newerThanMs: durationMs(q.newer) }),
    ...(nonEmpty(q.key) !== undefined && { key: q.key }),
    ...(nonEmpty(q.after) !== undefined && { after: q.after }),
    limit: 50,
  };
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}

const UNITS_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `30s`, `5m`, `2h`, `1d` (a bare number is seconds); undefined when empty or not a duration. */
function durationMs(value: string | undefined): number | undefined {
  const match = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/.exec((value ?? '').trim());
  return match === null ? undefined : Math.round(Number(match[1]) * UNITS_MS[match[2] ?? 's']!);
}

function endState(value: string | undefined): EndByHandState {
  return value === GlobalTxState.FAILED ? GlobalTxState.FAILED : GlobalTxState.CANCELLED;
}
