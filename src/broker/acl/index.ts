/**
 * Kafka's ACLs for the broker: the codes and bindings (acl.ts), their
 * durable store (acl-store.ts), the decisions (authorizer.ts) and the
 * checks request handlers call (check.ts).
 */
export * from './acl.js';
export { AclStore, ACL_FILE } from './acl-store.js';
export { Authorizer, allOperations, type RequestPrincipal } from './authorizer.js';
export * from './check.js';
