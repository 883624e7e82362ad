import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { describeError } from '../errors.js';
import type { Logger } from '../observability/index.js';

/** Renders a live view's HTML fragment from the query string of the page it belongs to. */
export type LiveRenderer = (query: Record<string, string>) => Promise<string>;

/**
 * Live views over Server-Sent Events (WHATWG HTML, "Server-sent events"):
 * a page's region `<div data-live="/live/<view>?<query>">` opens an
 * EventSource there; the console re-renders the view's fragment every
 * `refreshMs` and sends it as an `update` event when it changed (a comment
 * line otherwise, which keeps proxies from closing the stream).
 *
 * Bounds: at most `liveViewsMax` streams at once (more get 503); each
 * stream renders one fragment at a time, the next `refreshMs` after the
 * last finished, so a slow database slows the views and never piles up
 * queries. `close` ends every stream.
 */
export class LiveViews {
  private readonly renderers = new Map<string, LiveRenderer>();
  private readonly streams = new Set<FastifyReply>();

  constructor(
    private readonly refreshMs: number,
    private readonly streamsMax: number,
    private readonly logger: Logger,
  ) {}

  /** Registers view `name`, served at `/live/<name>`. */
  add(name: string, render: LiveRenderer): void {
    this.renderers.set(name, render);
  }

  /** Adds the `/live/:view` route to `app`. */
  route(app: FastifyInstance, securityHeaders: Record<string, string>): void {
    app.get<{ Params: { view: string }; Querystring: Record<string, string> }>('/live/:view', (request, reply) => this.serve(request, reply, securityHeaders));
  }

  /** Ends every open stream. */
  close(): void {
    for (const reply of this.streams) reply.raw.end();
    this.streams.clear();
  }

  private serve(
    request: FastifyRequest<{ Params: { view: string }; Querystring: Record<string, string> }>,
    reply: FastifyReply,
    headers: Record<string, string>,
  ): void {
    const render = this.renderers.get(request.params.view);
    if (render === undefined) {
      void reply.code(404).type('text/plain; charset=utf-8').send(`no live view ${request.params.view}\n`);
      return;
    }
    if (this.streams.size >= this.streamsMax) {
      void reply.code(503).header('retry-after', '10').type('text/plain; charset=utf-8').send(`too many live views open (${this.streamsMax})\n`);
      return;
    }
    reply.hijack();
    const raw = reply.raw;
    raw.writeHead(200, { ...headers, 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive' });
    raw.write(`retry: ${this.refreshMs}\n\n`);
    this.streams.add(reply);
    let last: string | undefined;
    let timer: NodeJS.Timeout | undefined;
    let open = true;
    const stop = (): void => {
      open = false;
      clearTimeout(timer);
      this.streams.delete(reply);
    };
    request.raw.on('close', stop);
    const tick = async (): Promise<void> => {
      try {
        const html = await render(request.query);
        if (!open) return;
        if (html !== last) {
          last = html;
          raw.write(
            `event: update\n${html
              .split('\n')
              .map((line) => `data: ${line}`)
              .join('\n')}\n\n`,
          );
        } else {
          raw.write(': unchanged\n\n');
        }
      } catch (error) {
        this.logger.warn({ err: describeError(error), view: request.params.view }, 'live view failed to render; retrying');
      }
      if (open) timer = setTimeout(() => void tick(), this.refreshMs);
    };
    timer = setTimeout(() => void tick(), this.refreshMs);
  }
}
