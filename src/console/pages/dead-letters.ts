import type { FastifyInstance } from 'fastify';
import { listDeadLetters, processedDeadLetters, replayDeadLetters, type DeadLetter } from '../../inbox/index.js';
import { payloadText, query, time } from '../format.js';
import { messageOf, type PageContext } from '../server.js';

interface DlqQuery {
  consumer?: string;
  topic?: string;
  /** `1`: include dead letters already replayed. */
  all?: string;
  after?: string;
}

const PAGE_ROWS = 50;

/**
 * `/dead-letters` (pending ones, or all, by consumer group and topic,
 * oldest first, keyset pages by ID) and `/dead-letters/:id` (headers,
 * payload, error; replayed, by whom, and processed since). Replay —
 * selected ones, or every pending one of a topic — runs `replayDeadLetters`,
 * as `concordat dlq replay` does, with the operator in `replayed_by`.
 */
export function registerDeadLetterPages(app: FastifyInstance, context: PageContext): void {
  const { dataSource } = context.sources;
  const listView = async (q: DlqQuery): Promise<Record<string, unknown>> => {
    const letters = await listDeadLetters(dataSource, {
      ...(nonEmpty(q.consumer) !== undefined && { consumer: q.consumer }),
      ...(nonEmpty(q.topic) !== undefined && { topic: q.topic }),
      ...(/^\d{1,19}$/.test(q.after ?? '') && { afterId: q.after }),
      includeReplayed: q.all === '1',
      limit: PAGE_ROWS,
    });
    const processed = await processedDeadLetters(
      dataSource,
      letters.filter((l) => l.replayedAt !== null).map((l) => l.id),
    );
    return {
      rows: letters.map((l) => ({ ...summary(l), processed: processed.has(l.id) })),
      nextHref: letters.length === PAGE_ROWS ? `/dead-letters${query({ ...q, after: letters[letters.length - 1]!.id })}` : null,
    };
  };
  context.live.add('dead-letters', async (q) => context.fragment('dead-letters-table', { ...(await listView(q)), csrf: context.guard.csrf }));
  app.get<{ Querystring: DlqQuery }>('/dead-letters', async (request, reply) => {
    const q = request.query;
    await context.page(request, reply, 'dead-letters', {
      q: { consumer: '', topic: '', all: '', ...q },
      liveSrc: `/live/dead-letters${query({ ...q })}`,
      firstHref: q.after === undefined ? null : `/dead-letters${query({ ...q, after: undefined })}`,
      ...(await listView(q)),
    });
  });

  const detailView = async (id: string): Promise<Record<string, unknown> | undefined> => {
    if (!/^\d{1,19}$/.test(id)) return undefined;
    const [letter] = await listDeadLetters(dataSource, { ids: [id], includeReplayed: true, limit: 1 });
    if (letter === undefined) return undefined;
    const processed = letter.replayedAt !== null && (await processedDeadLetters(dataSource, [id])).has(id);
    return {
      letter: {
        ...summary(letter),
        headers: Object.entries(letter.headers).sort(([a], [b]) => a.localeCompare(b)),
        payload: payloadText(letter.payload),
        processed,
      },
    };
  };
  context.live.add('dead-letter', async (q) => {
    const view = await detailView(q.id ?? '');
    return view === undefined
      ? '<p>This dead letter no longer exists (replayed ones are deleted after their retention).</p>'
      : context.fragment('dead-letter-status', view);
  });
  app.get<{ Params: { id: string } }>('/dead-letters/:id', async (request, reply) => {
    const view = await detailView(request.params.id);
    if (view === undefined) {
      reply.code(404);
      return context.page(request, reply, 'error', { status: 404, message: `dead letter ${request.params.id} does not exist (or its retention deleted it)` });
    }
    await context.page(request, reply, 'dead-letter', { ...view, liveSrc: `/live/dead-letter${query({ id: request.params.id })}` });
  });

  app.post<{ Body: Record<string, string | string[]> }>('/dead-letters/replay', async (request, reply) => {
    const body = request.body ?? {};
    const ids = (Array.isArray(body.id) ? body.id : body.id === undefined ? [] : [body.id]).filter((id) => /^\d{1,19}$/.test(id));
    const topic = typeof body.topic === 'string' ? nonEmpty(body.topic) : undefined;
    const consumer = typeof body.consumer === 'string' ? nonEmpty(body.consumer) : undefined;
    const back = typeof body.back === 'string' && body.back.startsWith('/dead-letters') ? body.back : '/dead-letters';
    if (body.confirm !== 'yes') return context.redirect(reply, back, { error: 'replay not done: tick the confirmation box' });
    if (ids.length === 0 && topic === undefined)
      return context.redirect(reply, back, { error: 'replay not done: select dead letters, or name a topic to replay all of its pending ones' });
    let by: string;
    try {
      by = context.operatorOf(request, body);
    } catch (error) {
      return context.redirect(reply, back, { error: messageOf(error) });
    }
    const name = typeof body.by === 'string' ? body.by.trim() : undefined;
    try {
      const filter = ids.length > 0 ? { ids, limit: ids.length } : { topic: topic!, ...(consumer !== undefined && { consumer }), limit: 100_000 };
      const replayed = await replayDeadLetters(dataSource, filter, { force: body.force === 'yes', by });
      context.logger.info({ ids: replayed.map((l) => l.id), by }, 'operator replayed dead letters');
      const missing = ids.filter((id) => !replayed.some((l) => l.id === id));
      const done = `replayed ${replayed.length} dead letter(s) through the outbox${replayed.length > 0 ? `: ${replayed.map((l) => l.id).join(', ')}` : ''}`;
      const target = ids.length === 1 && replayed.length === 1 ? `/dead-letters/${ids[0]}` : back;
      return context.redirect(
        reply,
        target,
        missing.length > 0 ? { done, error: `not replayed (already replayed, or no such dead letter): ${missing.join(', ')}` } : { done },
        request,
        name,
      );
    } catch (error) {
      return context.redirect(reply, back, { error: `replay refused: ${messageOf(error)}` }, request, name);
    }
  });
}

function summary(l: DeadLetter): Record<string, unknown> {
  return {
    id: l.id,
    consumer: l.consumer,
    topic: l.topic,
    partition: l.partition,
    offset: l.offset,
    key: l.key ?? '',
    messageId: l.messageId,
    handler: l.handler,
    error: l.error,
    errorShort: l.error.length > 120 ? `${l.error.slice(0, 117)}...` : l.error,
    errorCode: l.errorCode,
    attempts: l.attempts,
    failed: time(l.failedAt),
    replayed: l.replayedAt === null ? '' : time(l.replayedAt),
    replayedBy: l.replayedBy ?? '',
  };
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}
