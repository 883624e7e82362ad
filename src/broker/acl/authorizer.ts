import {
  AclOperation,
  AclPermission,
  PatternType,
  ResourceType,
  WILDCARD,
  WILDCARD_PRINCIPAL,
  type AclBinding,
  type AclOperation as AclOperationCode,
  type ResourceType as ResourceTypeCode,
} from './acl.js';
import type { AclStore } from './acl-store.js';

/** Who asks: the authenticated principal (`User:alice`, `User:CN=...`, `User:ANONYMOUS`) and the client's IP address. */
export interface RequestPrincipal {
  principal: string;
  host: string;
}

/** Operations Kafka defines on each resource type, for authorized-operations bit sets. */
const OPERATIONS_BY_RESOURCE: Readonly<Record<number, readonly AclOperationCode[]>> = {
  [ResourceType.TOPIC]: [
    AclOperation.READ,
    AclOperation.WRITE,
    AclOperation.CREATE,
    AclOperation.DELETE,
    AclOperation.ALTER,
    AclOperation.DESCRIBE,
    AclOperation.DESCRIBE_CONFIGS,
    AclOperation.ALTER_CONFIGS,
  ],
  [ResourceType.GROUP]: [AclOperation.READ, AclOperation.DELETE, AclOperation.DESCRIBE],
  [ResourceType.CLUSTER]: [
    AclOperation.CREATE,
    AclOperation.ALTER,
    AclOperation.DESCRIBE,
    AclOperation.CLUSTER_ACTION,
    AclOperation.DESCRIBE_CONFIGS,
    AclOperation.ALTER_CONFIGS,
    AclOperation.IDEMPOTENT_WRITE,
  ],
  [ResourceType.TRANSACTIONAL_ID]: [AclOperation.WRITE, AclOperation.DESCRIBE],
};

/**
 * Kafka's implied operations: an ACL that allows one of these also allows
 * the key (READ, WRITE, DELETE or ALTER allow DESCRIBE; ALTER_CONFIGS
 * allows DESCRIBE_CONFIGS). Deny ACLs imply nothing.
 */
const IMPLIED_BY: Readonly<Partial<Record<number, readonly number[]>>> = {
  [AclOperation.DESCRIBE]: [AclOperation.READ, AclOperation.WRITE, AclOperation.DELETE, AclOperation.ALTER],
  [AclOperation.DESCRIBE_CONFIGS]: [AclOperation.ALTER_CONFIGS],
};

/**
 * Decides whether a principal may perform an operation on a resource, as
 * Kafka's `AclAuthorizer`/`StandardAuthorizer` do with
 * `allow.everyone.if.no.acl.found=false`:
 *
 * 1. A super user (the broker's `authorizer.superUsers`) may do anything.
 * 2. The ACLs that apply are those on the resource's type whose pattern
 *    covers its name (literal: the same name or `*`; prefixed: a prefix
 *    of the name), whose principal is the requester's or `User:*`, and
 *    whose host is the requester's or `*`.
 * 3. A DENY for the operation (or ALL) among them refuses, whatever
 *    allows it: deny wins.
 * 4. Otherwise an ALLOW for the operation, for ALL, or for an operation
 *    that implies it ({@link IMPLIED_BY}) permits it.
 * 5. Otherwise it is refused: deny by default.
 *
 * Reads the store's list at each call, so an ACL created or deleted
 * applies to the next request on every connection. Stateless and
 * synchronous; the cost is linear in the number of ACLs.
 */
export class Authorizer {
  private readonly superUsers: ReadonlySet<string>;

  constructor(
    readonly store: AclStore,
    superUsers: readonly string[],
  ) {
    this.superUsers = new Set(superUsers);
  }

  /** Whether `who` is one of the broker's super users. */
  isSuperUser(who: RequestPrincipal): boolean {
    return this.superUsers.has(who.principal);
  }

  /** Whether `who` may perform `operation` on the resource `resourceType`/`name` (the class comment gives the rules). */
  authorize(who: RequestPrincipal, operation: AclOperationCode, resourceType: ResourceTypeCode, name: string): boolean {
    if (this.isSuperUser(who)) return true;
    const implying = IMPLIED_BY[operation] ?? [];
    let allowed = false;
    for (const acl of this.store.list()) {
      if (acl.resourceType !== resourceType || !appliesTo(acl, who) || !covers(acl, name)) continue;
      if (acl.permission === AclPermission.DENY) {
        if (acl.operation === operation || acl.operation === AclOperation.ALL) return false;
      } else if (acl.operation === operation || acl.operation === AclOperation.ALL || implying.includes(acl.operation)) {
        allowed = true;
      }
    }
    return allowed;
  }

  /**
   * Whether `who` may perform `operation` on some resource of
   * `resourceType` (Kafka's `authorizeByResourceType`, used by
   * InitProducerId without a transactional ID: IdempotentWrite on the
   * cluster or Write on any topic): an ALLOW that applies, unless a DENY
   * on the literal `*` of the type refuses every such resource.
   */
  authorizeAny(who: RequestPrincipal, operation: AclOperationCode, resourceType: ResourceTypeCode): boolean {
    if (this.isSuperUser(who)) return true;
    const matching = this.store
      .list()
      .filter((acl) => acl.resourceType === resourceType && appliesTo(acl, who) && (acl.operation === operation || acl.operation === AclOperation.ALL));
    const deniedEverywhere = matching.some(
      (acl) => acl.permission === AclPermission.DENY && acl.patternType === PatternType.LITERAL && acl.resourceName === WILDCARD,
    );
    return !deniedEverywhere && matching.some((acl) => acl.permission === AclPermission.ALLOW);
  }

  /** Kafka's authorized-operations bit set (a bit per {@link AclOperation} code) of `who` on one resource. */
  authorizedOperations(who: RequestPrincipal, resourceType: ResourceTypeCode, name: string): number {
    let bits = 0;
    for (const operation of OPERATIONS_BY_RESOURCE[resourceType] ?? []) {
      if (this.authorize(who, operation, resourceType, name)) bits |= 1 << operation;
    }
    return bits;
  }
}

/** Every operation Kafka defines on `resourceType`, as a bit set (what is answered without an authorizer). */
export function allOperations(resourceType: ResourceTypeCode): number {
  return (OPERATIONS_BY_RESOURCE[resourceType] ?? []).reduce<number>((bits, op) => bits | (1 << op), 0);
}

function appliesTo(acl: AclBinding, who: RequestPrincipal): boolean {
  return (acl.principal === who.principal || acl.principal === WILDCARD_PRINCIPAL) && (acl.host === who.host || acl.host === WILDCARD);
}

function covers(acl: AclBinding, name: string): boolean {
  if (acl.patternType === PatternType.PREFIXED) return name.startsWith(acl.resourceName);
  return acl.resourceName === name || acl.resourceName === WILDCARD;
}
