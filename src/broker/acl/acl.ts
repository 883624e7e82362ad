/**
 * Kafka's access control lists: the codes of resource types, pattern
 * types, operations and permissions as they travel on the wire
 * (CreateAcls, DescribeAcls, DeleteAcls, authorized-operations bit sets),
 * an ACL binding, and how a binding filter matches a binding.
 *
 * Source: Kafka's `org.apache.kafka.common.resource.ResourceType`,
 * `PatternType`, `acl.AclOperation`, `acl.AclPermissionType` and
 * `AclBindingFilter.matches` (KIP-290 for prefixed patterns).
 *
 * @module
 */

/** Kafka's `ResourceType` codes. ANY is for filters only. */
export const ResourceType = { UNKNOWN: 0, ANY: 1, TOPIC: 2, GROUP: 3, CLUSTER: 4, TRANSACTIONAL_ID: 5, DELEGATION_TOKEN: 6, USER: 7 } as const;
/** One of the {@link ResourceType} codes. */
export type ResourceType = (typeof ResourceType)[keyof typeof ResourceType];

/** Kafka's `PatternType` codes (KIP-290). ANY and MATCH are for filters only. */
export const PatternType = { UNKNOWN: 0, ANY: 1, MATCH: 2, LITERAL: 3, PREFIXED: 4 } as const;
/** One of the {@link PatternType} codes. */
export type PatternType = (typeof PatternType)[keyof typeof PatternType];

/** Kafka's `AclOperation` codes. ANY is for filters only; ALL in an ACL means every operation. */
export const AclOperation = {
  UNKNOWN: 0,
  ANY: 1,
  ALL: 2,
  READ: 3,
  WRITE: 4,
  CREATE: 5,
  DELETE: 6,
  ALTER: 7,
  DESCRIBE: 8,
  CLUSTER_ACTION: 9,
  DESCRIBE_CONFIGS: 10,
  ALTER_CONFIGS: 11,
  IDEMPOTENT_WRITE: 12,
  CREATE_TOKENS: 13,
  DESCRIBE_TOKENS: 14,
} as const;
/** One of the {@link AclOperation} codes. */
export type AclOperation = (typeof AclOperation)[keyof typeof AclOperation];

/** Kafka's `AclPermissionType` codes. ANY is for filters only. */
export const AclPermission = { UNKNOWN: 0, ANY: 1, DENY: 2, ALLOW: 3 } as const;
/** One of the {@link AclPermission} codes. */
export type AclPermission = (typeof AclPermission)[keyof typeof AclPermission];

/** The one name the cluster resource has in Kafka. */
export const CLUSTER_RESOURCE_NAME = 'kafka-cluster';
/** A literal resource name that matches every resource of its type, and the principal/host that match all. */
export const WILDCARD = '*';
/** Every user: an ACL for this principal applies to all principals. */
export const WILDCARD_PRINCIPAL = 'User:*';

/** One ACL: who (principal, host) may or may not do what (operation) on which resources (type, name, pattern). */
export interface AclBinding {
  resourceType: ResourceType;
  resourceName: string;
  patternType: PatternType;
  /** `Type:name`, e.g. `User:alice`, or `User:*`. */
  principal: string;
  /** A client's IP address as the broker sees it, or `*`. */
  host: string;
  operation: AclOperation;
  permission: AclPermission;
}

/** A DescribeAcls or DeleteAcls filter: null names, principals and hosts, and the ANY codes, match everything. */
export interface AclBindingFilter {
  resourceType: number;
  resourceName: string | null;
  patternType: number;
  principal: string | null;
  host: string | null;
  operation: number;
  permission: number;
}

/** Operations that may appear in an ACL (not UNKNOWN or ANY). */
const BINDABLE_OPERATIONS = new Set<number>(Object.values(AclOperation).filter((op) => op >= AclOperation.ALL));
/** Resource types this broker authorizes. */
const BINDABLE_RESOURCES = new Set<number>([ResourceType.TOPIC, ResourceType.GROUP, ResourceType.CLUSTER, ResourceType.TRANSACTIONAL_ID]);

/**
 * Why `binding` cannot be stored, or null when it can (Kafka's
 * CreateAcls checks; each reason is answered INVALID_REQUEST).
 */
export function bindingProblem(binding: AclBinding): string | null {
  if (!BINDABLE_RESOURCES.has(binding.resourceType)) {
    return `resource type ${binding.resourceType} cannot have ACLs here (topic 2, group 3, cluster 4, transactional id 5)`;
  }
  if (binding.patternType !== PatternType.LITERAL && binding.patternType !== PatternType.PREFIXED) {
    return `pattern type ${binding.patternType} cannot be stored (literal 3 or prefixed 4)`;
  }
  if (binding.resourceName.length === 0) return 'the resource name is empty';
  if (binding.resourceType === ResourceType.CLUSTER && (binding.resourceName !== CLUSTER_RESOURCE_NAME || binding.patternType !== PatternType.LITERAL)) {
    return `the only valid name for the CLUSTER resource is the literal ${CLUSTER_RESOURCE_NAME}`;
  }
  if (binding.patternType === PatternType.PREFIXED && binding.resourceName === WILDCARD) return 'a prefixed pattern cannot be the wildcard *';
  const principalProblem = principalFormatProblem(binding.principal);
  if (principalProblem !== null) return principalProblem;
  if (binding.host.length === 0) return 'the host is empty (give an IP address or *)';
  if (!BINDABLE_OPERATIONS.has(binding.operation)) return `operation ${binding.operation} cannot be stored (2 ALL to 14)`;
  if (binding.permission !== AclPermission.ALLOW && binding.permission !== AclPermission.DENY) {
    return `permission type ${binding.permission} cannot be stored (deny 2 or allow 3)`;
  }
  return null;
}

/** Why `principal` is not Kafka's `Type:name` form, or null. */
export function principalFormatProblem(principal: string): string | null {
  const colon = principal.indexOf(':');
  if (colon <= 0 || colon === principal.length - 1) return `principal "${principal}" is not of the form Type:name (e.g. User:alice)`;
  return null;
}

/** Whether `filter` selects `binding` (Kafka's `AclBindingFilter.matches`). */
export function filterMatches(filter: AclBindingFilter, binding: AclBinding): boolean {
  if (filter.resourceType !== ResourceType.ANY && filter.resourceType !== binding.resourceType) return false;
  if (!patternMatches(filter, binding)) return false;
  if (filter.principal !== null && filter.principal !== binding.principal) return false;
  if (filter.host !== null && filter.host !== binding.host) return false;
  if (filter.operation !== AclOperation.ANY && filter.operation !== binding.operation) return false;
  return filter.permission === AclPermission.ANY || filter.permission === binding.permission;
}

/**
 * The resource part of a filter: ANY matches any pattern type with the
 * name given (or any name); MATCH matches what would apply to a resource
 * of that name (the literal name, the literal wildcard, and prefixes of
 * it); LITERAL and PREFIXED match that pattern type exactly.
 */
function patternMatches(filter: AclBindingFilter, binding: AclBinding): boolean {
  const name = filter.resourceName;
  switch (filter.patternType) {
    case PatternType.ANY:
      return name === null || name === binding.resourceName;
    case PatternType.MATCH:
      if (name === null) return true;
      if (binding.patternType === PatternType.LITERAL) return binding.resourceName === name || binding.resourceName === WILDCARD;
      return binding.patternType === PatternType.PREFIXED && name.startsWith(binding.resourceName);
    default:
      return filter.patternType === binding.patternType && (name === null || name === binding.resourceName);
  }
}

/** Why a filter cannot be used (DescribeAcls, DeleteAcls: INVALID_REQUEST), or null. */
export function filterProblem(filter: AclBindingFilter): string | null {
  if (filter.resourceType === ResourceType.UNKNOWN) return 'the filter has an unknown resource type (0)';
  if (filter.patternType === PatternType.UNKNOWN || filter.patternType > PatternType.PREFIXED)
    return `the filter's pattern type ${filter.patternType} is unknown`;
  if (filter.operation === AclOperation.UNKNOWN || filter.operation > AclOperation.DESCRIBE_TOKENS)
    return `the filter's operation ${filter.operation} is unknown`;
  if (filter.permission === AclPermission.UNKNOWN || filter.permission > AclPermission.ALLOW)
    return `the filter's permission type ${filter.permission} is unknown`;
  return null;
}

/** A key that is equal for equal bindings (the store keeps each binding once). */
export function bindingKey(binding: AclBinding): string {
  return JSON.stringify([
    binding.resourceType,
    binding.patternType,
    binding.resourceName,
    binding.principal,
    binding.host,
    binding.operation,
    binding.permission,
  ]);
}
