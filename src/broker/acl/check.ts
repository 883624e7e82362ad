import type { RequestContext } from '../context.js';
import { AclOperation, ResourceType } from './acl.js';
import { allOperations, type RequestPrincipal } from './authorizer.js';

/** The principal a request acts as and the host it came from. */
export function requester(context: RequestContext): RequestPrincipal {
  return { principal: context.connection.principal, host: context.connection.clientHost };
}

/**
 * Whether the request may perform `operation` on the resource: always when
 * the broker runs without an authorizer (the behaviour before ACLs),
 * otherwise the {@link Authorizer}'s decision for the connection's
 * principal and host. A denial is logged at `debug`.
 */
export function authorized(context: RequestContext, operation: AclOperation, resourceType: ResourceType, name: string): boolean {
  const authorizer = context.broker.authorizer;
  if (authorizer === null) return true;
  const who = requester(context);
  if (authorizer.authorize(who, operation, resourceType, name)) return true;
  // Kafka's authorizer logs denials too (kafka-authorizer.log): who, from where, what, on which resource.
  context.broker.logger.debug({ ...who, operation, resourceType, resource: name, api: context.header.apiKey }, 'authorization denied');
  return false;
}

/** {@link authorized} for a topic. */
export function topicAuthorized(context: RequestContext, operation: AclOperation, topic: string): boolean {
  return authorized(context, operation, ResourceType.TOPIC, topic);
}

/** {@link authorized} for a consumer group. */
export function groupAuthorized(context: RequestContext, operation: AclOperation, group: string): boolean {
  return authorized(context, operation, ResourceType.GROUP, group);
}

/** {@link authorized} for the cluster resource (`kafka-cluster`). */
export function clusterAuthorized(context: RequestContext, operation: AclOperation): boolean {
  return authorized(context, operation, ResourceType.CLUSTER, 'kafka-cluster');
}

/** {@link authorized} for a transactional ID. */
export function transactionalIdAuthorized(context: RequestContext, operation: AclOperation, transactionalId: string): boolean {
  return authorized(context, operation, ResourceType.TRANSACTIONAL_ID, transactionalId);
}

/** Kafka's authorized-operations bit set for the request's principal on a resource (every operation of the type without an authorizer). */
export function authorizedOperations(context: RequestContext, resourceType: ResourceType, name: string): number {
  const authorizer = context.broker.authorizer;
  return authorizer === null ? allOperations(resourceType) : authorizer.authorizedOperations(requester(context), resourceType, name);
}

/** Whether the request may create `topic` (Kafka: Create on the cluster or on the topic), for CreateTopics and auto-creation. */
export function topicCreateAuthorized(context: RequestContext, topic: string): boolean {
  return clusterAuthorized(context, AclOperation.CREATE) || topicAuthorized(context, AclOperation.CREATE, topic);
}

/**
 * Whether the request may get a producer ID without a transactional ID
 * (InitProducerId): IdempotentWrite on the cluster, or Write on some topic
 * (Kafka's `authorizeByResourceType`, KIP-679).
 */
export function idempotentWriteAuthorized(context: RequestContext): boolean {
  const authorizer = context.broker.authorizer;
  if (authorizer === null || clusterAuthorized(context, AclOperation.IDEMPOTENT_WRITE)) return true;
  return authorizer.authorizeAny(requester(context), AclOperation.WRITE, ResourceType.TOPIC);
}
