import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { LogAdmin, OffsetResetTarget } from '../../admin/index.js';
import { bytes, query } from '../format.js';
import { messageOf, type PageContext } from '../server.js';

/**
 * `/groups`, `/groups/:id` (members, assignment, committed offsets and lag
 * per partition; reset offsets while the group has no members) and
 * `/topics`, `/topics/:name` (partitions, offsets, sizes, configs), through
 * `admin/`'s LogAdmin (the module the CLI's topic and group commands use). Without an
 * admin (a console started on a database only) the pages say how to get one.
 */
export function registerClusterPages(app: FastifyInstance, context: PageContext): void {
  const admin = (): LogAdmin | undefined => context.sources.admin;
  const none = (request: FastifyRequest, reply: FastifyReply, heading: string): Promise<void> => context.page(request, reply, 'no-cluster', { heading });

  const groupsView = async (): Promise<Record<string, unknown>> => ({ groups: await admin()!.listGroups(), target: admin()!.target });
  context.live.add('groups', async () => (admin() === undefined ? '' : context.fragment('groups-table', await groupsView())));
  app.get('/groups', async (request, reply) => {
    if (admin() === undefined) return none(request, reply, 'Consumer groups');
    await context.page(request, reply, 'groups', { ...(await groupsView()), liveSrc: '/live/groups' });
  });

  const groupView = async (groupId: string): Promise<Record<string, unknown>> => {
    const group = await admin()!.describeGroup(groupId);
    const topics = [...new Set(group.offsets.map((o) => o.topic))];
    return {
      group: {
        ...group,
        members: group.members.map((m) => ({ ...m, assignmentText: m.assignment.map((a) => `${a.topic} [${a.partitions.join(', ')}]`).join('; ') || '-' })),
        offsets: group.offsets.map((o) => ({ ...o, committed: o.committedOffset === -1 ? 'none' : String(o.committedOffset) })),
        totalLag: group.offsets.reduce((sum, o) => sum + o.lag, 0),
      },
      topics,
      canReset: group.members.length === 0 && topics.length > 0,
    };
  };
  context.live.add('group', async (q) => (admin() === undefined ? '' : context.fragment('group-live', await groupView(q.id ?? ''))));
  app.get<{ Params: { id: string } }>('/groups/:id', async (request, reply) => {
    if (admin() === undefined) return none(request, reply, 'Consumer groups');
    const view = await groupView(request.params.id);
    await context.page(request, reply, 'group', { ...view, liveSrc: `/live/group${query({ id: request.params.id })}` });
  });
  app.post<{ Params: { id: string }; Body: Record<string, string> }>('/groups/:id/reset-offsets', async (request, reply) => {
    const groupId = request.params.id;
    const body = request.body ?? {};
    const back = `/groups/${encodeURIComponent(groupId)}`;
    if (admin() === undefined) return context.redirect(reply, back, { error: 'this console has no topics-and-groups source' });
    if (body.confirm !== 'yes') return context.redirect(reply, back, { error: 'reset not done: tick the confirmation box' });
    let by: string;
    let to: OffsetResetTarget;
    try {
      by = context.operatorOf(request, body);
      to = resetTarget(body);
    } catch (error) {
      return context.redirect(reply, back, { error: messageOf(error) });
    }
    const name = body.by?.trim();
    try {
      const plan = await admin()!.resetOffsets({ groupId, topic: body.topic ?? '', to });
      context.logger.info({ groupId, topic: plan.topic, to, by, partitions: plan.partitions }, 'operator reset the offsets of a consumer group');
      const moved = plan.partitions.map((p) => `${p.partition}: ${p.currentOffset === -1 ? 'none' : p.currentOffset} → ${p.newOffset}`).join(', ');
      return context.redirect(reply, back, { done: `reset ${groupId} on ${plan.topic} (${to.kind}) by ${by}: ${moved}` }, request, name);
    } catch (error) {
      return context.redirect(reply, back, { error: `reset refused: ${messageOf(error)}` }, request, name);
    }
  });

  const topicsView = async (): Promise<Record<string, unknown>> => ({ topics: await admin()!.listTopics(), target: admin()!.target });
  context.live.add('topics', async () => (admin() === undefined ? '' : context.fragment('topics-table', await topicsView())));
  app.get('/topics', async (request, reply) => {
    if (admin() === undefined) return none(request, reply, 'Topics');
    await context.page(request, reply, 'topics', { ...(await topicsView()), liveSrc: '/live/topics' });
  });
  const topicView = async (name: string): Promise<Record<string, unknown>> => {
    const topic = await admin()!.describeTopic(name);
    return {
      topic: {
        ...topic,
        size: topic.sizeBytes === null ? 'unknown' : bytes(topic.sizeBytes),
        records: topic.partitions.reduce((sum, p) => sum + (p.highWatermark - p.logStartOffset), 0),
        partitions: topic.partitions.map((p) => ({ ...p, size: p.sizeBytes === null ? '-' : bytes(p.sizeBytes), segmentsText: p.segments ?? '-' })),
      },
    };
  };
  context.live.add('topic', async (q) => (admin() === undefined ? '' : context.fragment('topic-live', await topicView(q.name ?? ''))));
  app.get<{ Params: { name: string } }>('/topics/:name', async (request, reply) => {
    if (admin() === undefined) return none(request, reply, 'Topics');
    await context.page(request, reply, 'topic', { ...(await topicView(request.params.name)), liveSrc: `/live/topic${query({ name: request.params.name })}` });
  });
}

/** The reset target from the form: earliest, latest, a date-time (ISO 8601) or an offset. */
function resetTarget(body: Record<string, string>): OffsetResetTarget {
  const value = (body.value ?? '').trim();
  switch (body.to) {
    case 'earliest':
      return { kind: 'earliest' };
    case 'latest':
      return { kind: 'latest' };
    case 'datetime': {
      const timestampMs = Date.parse(value);
      if (Number.isNaN(timestampMs)) throw new Error(`not a date-time: '${value}' (write it as 2026-12-07T15:00:00Z)`);
      return { kind: 'datetime', timestampMs };
    }
    case 'offset': {
      if (!/^\d{1,15}$/.test(value)) throw new Error(`not an offset: '${value}' (a whole number of 0 or more)`);
      return { kind: 'offset', offset: Number(value) };
    }
    default:
      throw new Error(`reset to what? earliest, latest, datetime or offset (got '${body.to ?? ''}')`);
  }
}
