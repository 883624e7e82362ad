import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  AclOperation,
  AclPermission,
  AclStore,
  Authorizer,
  bindingProblem,
  filterMatches,
  PatternType,
  ResourceType,
  type AclBinding,
  type AclBindingFilter,
} from '../../../src/broker/acl/index.js';

/** Kafka's authorizer rules (implied operations, deny wins, patterns, hosts, super users) and the ACL file. */
let dir: string;
let store: AclStore;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'concordat-authorizer-'));
  store = await AclStore.open(dir);
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const binding = (overrides: Partial<AclBinding>): AclBinding => ({
  resourceType: ResourceType.TOPIC,
  resourceName: 'orders',
  patternType: PatternType.LITERAL,
  principal: 'User:alice',
  host: '*',
  operation: AclOperation.READ,
  permission: AclPermission.ALLOW,
  ...overrides,
});

const alice = { principal: 'User:alice', host: '10.0.0.5' };
const bob = { principal: 'User:bob', host: '10.0.0.6' };

describe('Authorizer', () => {
  it('denies by default and lets super users do anything', () => {
    const authorizer = new Authorizer(store, ['User:admin']);
    expect(authorizer.authorize(alice, AclOperation.READ, ResourceType.TOPIC, 'orders')).toBe(false);
    expect(authorizer.authorize({ principal: 'User:admin', host: '1.2.3.4' }, AclOperation.ALTER, ResourceType.CLUSTER, 'kafka-cluster')).toBe(true);
  });

  it('implies Describe from Read, Write, Delete and Alter, and DescribeConfigs from AlterConfigs, but not the other way', async () => {
    const authorizer = new Authorizer(store, []);
    for (const operation of [AclOperation.READ, AclOperation.WRITE, AclOperation.DELETE, AclOperation.ALTER]) {
      await store.remove([
        {
          resourceType: ResourceType.ANY,
          resourceName: null,
          patternType: PatternType.ANY,
          principal: null,
          host: null,
          operation: AclOperation.ANY,
          permission: AclPermission.ANY,
        },
      ]);
      await store.add([binding({ operation })]);
      expect(authorizer.authorize(alice, AclOperation.DESCRIBE, ResourceType.TOPIC, 'orders')).toBe(true);
      expect(authorizer.authorize(alice, AclOperation.CREATE, ResourceType.TOPIC, 'orders')).toBe(false);
    }
    await store.add([binding({ operation: AclOperation.ALTER_CONFIGS }), binding({ resourceName: 'payments', operation: AclOperation.DESCRIBE })]);
    expect(authorizer.authorize(alice, AclOperation.DESCRIBE_CONFIGS, ResourceType.TOPIC, 'orders')).toBe(true);
    expect(authorizer.authorize(alice, AclOperation.READ, ResourceType.TOPIC, 'payments')).toBe(false);
  });

  it('lets a DENY win over any ALLOW, including ALL, and ALL deny refuses every operation', async () => {
    const authorizer = new Authorizer(store, []);
    await store.add([
      binding({ resourceName: 'ord', patternType: PatternType.PREFIXED, operation: AclOperation.ALL }),
      binding({ operation: AclOperation.WRITE, permission: AclPermission.DENY }),
      binding({ resourceName: 'orders-eu', operation: AclOperation.ALL, permission: AclPermission.DENY }),
    ]);
    expect(authorizer.authorize(alice, AclOperation.READ, ResourceType.TOPIC, 'orders')).toBe(true);
    expect(authorizer.authorize(alice, AclOperation.WRITE, ResourceType.TOPIC, 'orders')).toBe(false);
    // A deny of Write does not deny the Describe that Read implies.
    expect(authorizer.authorize(alice, AclOperation.DESCRIBE, ResourceType.TOPIC, 'orders')).toBe(true);
    expect(authorizer.authorize(alice, AclOperation.DESCRIBE, ResourceType.TOPIC, 'orders-eu')).toBe(false);
    expect(authorizer.authorize(alice, AclOperation.WRITE, ResourceType.TOPIC, 'ordinal')).toBe(true);
    expect(authorizer.authorize(alice, AclOperation.WRITE, ResourceType.TOPIC, 'payments')).toBe(false);
  });

  it('matches the wildcard resource, principal and host, an exact host, and keeps resource types apart', async () => {
    const authorizer = new Authorizer(store, []);
    await store.add([
      binding({ resourceName: '*', principal: 'User:*', operation: AclOperation.DESCRIBE }),
      binding({ resourceType: ResourceType.GROUP, resourceName: 'billing', host: '10.0.0.5' }),
    ]);
    expect(authorizer.authorize(bob, AclOperation.DESCRIBE, ResourceType.TOPIC, 'anything')).toBe(true);
    expect(authorizer.authorize(bob, AclOperation.DESCRIBE, ResourceType.GROUP, 'anything')).toBe(false);
    expect(authorizer.authorize(alice, AclOperation.READ, ResourceType.GROUP, 'billing')).toBe(true);
    expect(authorizer.authorize({ ...alice, host: '10.0.0.7' }, AclOperation.READ, ResourceType.GROUP, 'billing')).toBe(false);
  });

  it("answers authorizeAny and the authorized-operations bit set as Kafka's authorizer", async () => {
    const authorizer = new Authorizer(store, []);
    expect(authorizer.authorizeAny(alice, AclOperation.WRITE, ResourceType.TOPIC)).toBe(false);
    await store.add([binding({ resourceName: 'x', patternType: PatternType.PREFIXED, operation: AclOperation.WRITE })]);
    expect(authorizer.authorizeAny(alice, AclOperation.WRITE, ResourceType.TOPIC)).toBe(true);
    await store.add([binding({ resourceName: '*', operation: AclOperation.WRITE, permission: AclPermission.DENY })]);
    expect(authorizer.authorizeAny(alice, AclOperation.WRITE, ResourceType.TOPIC)).toBe(false);
    await store.add([binding({ resourceType: ResourceType.CLUSTER, resourceName: 'kafka-cluster', operation: AclOperation.ALTER })]);
    expect(authorizer.authorizedOperations(alice, ResourceType.CLUSTER, 'kafka-cluster')).toBe((1 << AclOperation.ALTER) | (1 << AclOperation.DESCRIBE));
  });
});

describe('ACL filters and checks', () => {
  const any: AclBindingFilter = {
    resourceType: ResourceType.ANY,
    resourceName: null,
    patternType: PatternType.ANY,
    principal: null,
    host: null,
    operation: AclOperation.ANY,
    permission: AclPermission.ANY,
  };

  it('matches MATCH against literal, wildcard and prefixes; ANY and LITERAL by exact name', () => {
    const literal = binding({});
    const wildcard = binding({ resourceName: '*' });
    const prefix = binding({ resourceName: 'ord', patternType: PatternType.PREFIXED });
    const other = binding({ resourceName: 'pay', patternType: PatternType.PREFIXED });
    const selected = (filter: Partial<AclBindingFilter>) => [literal, wildcard, prefix, other].filter((b) => filterMatches({ ...any, ...filter }, b));
    expect(selected({ resourceName: 'orders', patternType: PatternType.MATCH })).toEqual([literal, wildcard, prefix]);
    expect(selected({ resourceName: 'orders', patternType: PatternType.ANY })).toEqual([literal]);
    expect(selected({ resourceName: 'ord', patternType: PatternType.ANY })).toEqual([prefix]);
    expect(selected({ patternType: PatternType.PREFIXED })).toEqual([prefix, other]);
    expect(selected({ patternType: PatternType.LITERAL, principal: 'User:bob' })).toEqual([]);
    expect(selected({ operation: AclOperation.READ, permission: AclPermission.ALLOW, host: '*' })).toHaveLength(4);
  });

  it('says why a binding cannot be stored', () => {
    expect(bindingProblem(binding({}))).toBeNull();
    expect(bindingProblem(binding({ resourceType: ResourceType.ANY }))).toBe(
      'resource type 1 cannot have ACLs here (topic 2, group 3, cluster 4, transactional id 5)',
    );
    expect(bindingProblem(binding({ patternType: PatternType.MATCH }))).toBe('pattern type 2 cannot be stored (literal 3 or prefixed 4)');
    expect(bindingProblem(binding({ resourceType: ResourceType.CLUSTER, resourceName: 'c' }))).toBe(
      'the only valid name for the CLUSTER resource is the literal kafka-cluster',
    );
    expect(bindingProblem(binding({ principal: 'alice' }))).toBe('principal "alice" is not of the form Type:name (e.g. User:alice)');
    expect(bindingProblem(binding({ operation: AclOperation.ANY }))).toBe('operation 1 cannot be stored (2 ALL to 14)');
    expect(bindingProblem(binding({ permission: AclPermission.ANY }))).toBe('permission type 1 cannot be stored (deny 2 or allow 3)');
  });
});

describe('AclStore', () => {
  it('keeps each ACL once, durably, and reports what each delete filter removed', async () => {
    await store.add([binding({}), binding({}), binding({ operation: AclOperation.WRITE })]);
    const reopened = await AclStore.open(dir);
    expect(reopened.list()).toEqual([binding({}), binding({ operation: AclOperation.WRITE })]);
    const removed = await reopened.remove([
      {
        resourceType: ResourceType.TOPIC,
        resourceName: 'orders',
        patternType: PatternType.LITERAL,
        principal: null,
        host: null,
        operation: AclOperation.WRITE,
        permission: AclPermission.ANY,
      },
      {
        resourceType: ResourceType.ANY,
        resourceName: null,
        patternType: PatternType.ANY,
        principal: 'User:alice',
        host: null,
        operation: AclOperation.ANY,
        permission: AclPermission.ANY,
      },
    ]);
    expect(removed.map((acls) => acls.length)).toEqual([1, 2]);
    expect((await AclStore.open(dir)).list()).toEqual([]);
  });

  it('refuses a damaged file with STORAGE_CORRUPT naming it', async () => {
    await store.add([binding({})]);
    const path = join(dir, 'acls.json');
    await writeFile(path, (await readFile(path, 'utf8')).replace('User:alice', 'User:mallo'));
    await expect(AclStore.open(dir)).rejects.toMatchObject({ code: 'STORAGE_CORRUPT', message: expect.stringContaining(path) });
  });
});
