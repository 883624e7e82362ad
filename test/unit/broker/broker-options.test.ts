import { describe, expect, it } from 'vitest';
import { compileBrokerOptions, isLoopbackHost } from '../../../src/config/index.js';

describe('broker options', () => {
  it('fills in every default', () => {
    const compiled = compileBrokerOptions({ dataDir: '/tmp/x' });
    expect(compiled).toEqual({
      dataDir: '/tmp/x',
      host: '127.0.0.1',
      port: 9092,
      advertisedHost: '127.0.0.1',
      advertisedPort: null,
      nodeId: 1,
      clusterId: 'concordat',
      autoCreateTopics: false,
      defaultPartitions: 1,
      insecure: false,
      sasl: null,
      tls: null,
      authorizer: null,
      metrics: null,
      connectionsMax: 1024,
      requestBytesMax: 104_857_600,
      requestBytesInFlightMax: 536_870_912,
      stringBytesMax: 32_767,
      arrayLengthMax: 100_000,
      inFlightRequestsMax: 100,
      queuedResponseBytesMax: 67_108_864,
      connectionIdleMs: 600_000,
      authenticationTimeoutMs: 30_000,
      connectionsMaxReauthMs: 0,
      fetchWaitMsMax: 30_000,
      fetchResponseBytesMax: 52_428_800,
      shutdownGraceMs: 5000,
      // Kafka's group.initial.rebalance.delay.ms default, where the log's own is 0.
      log: { groups: { initialRebalanceDelayMs: 3000 } },
    });
  });

  it('compiles mutual TLS and the authorizer, and names what is wrong', () => {
    const compiled = compileBrokerOptions({
      tls: { certFile: 'c.pem', keyFile: 'k.pem', caFile: 'ca.pem', clientAuth: 'required' },
      authorizer: { superUsers: ['User:admin', 'User:CN=ops,O=acme'] },
    });
    expect([compiled.tls, compiled.authorizer]).toEqual([
      { certFile: 'c.pem', keyFile: 'k.pem', caFile: 'ca.pem', clientAuth: 'required' },
      { superUsers: ['User:admin', 'User:CN=ops,O=acme'] },
    ]);
    expect(compileBrokerOptions({ tls: { certFile: 'c.pem', keyFile: 'k.pem' } }).tls).toEqual({
      certFile: 'c.pem',
      keyFile: 'k.pem',
      caFile: null,
      clientAuth: 'none',
    });
    expect(compileBrokerOptions({ authorizer: {} }).authorizer).toEqual({ superUsers: [] });
    expect(() => compileBrokerOptions({ tls: { certFile: 'c.pem', keyFile: 'k.pem', clientAuth: 'requested' } })).toThrow(
      'broker.tls.caFile: clientAuth requested or required needs caFile',
    );
    expect(() => compileBrokerOptions({ authorizer: { superUsers: ['admin'] } })).toThrow(
      'broker.authorizer.superUsers.0: a principal is Type:name, e.g. User:admin',
    );
  });

  it('keeps a given initial rebalance delay and the other log options', () => {
    expect(compileBrokerOptions({ log: { groups: { initialRebalanceDelayMs: 0, groupMaxSize: 5 }, topicsMax: 9 } }).log).toEqual({
      groups: { initialRebalanceDelayMs: 0, groupMaxSize: 5 },
      topicsMax: 9,
    });
    expect(compileBrokerOptions({ log: { groups: { groupMaxSize: 5 } } }).log).toEqual({ groups: { initialRebalanceDelayMs: 3000, groupMaxSize: 5 } });
  });

  it('names the bad option, the rule and the value', () => {
    expect(() => compileBrokerOptions({ port: 70_000 })).toThrow('invalid options: broker.port: Too big: expected number to be <=65535 (got 70000)');
    expect(() => compileBrokerOptions({ requestBytesMax: 10 })).toThrow(
      'invalid options: broker.requestBytesMax: Too small: expected number to be >=1024 (got 10)',
    );
    expect(() => compileBrokerOptions({ sasl: {} })).toThrow('invalid options: broker.sasl: give exactly one of credentialsFile and users (got {})');
    expect(() => compileBrokerOptions({ portt: 1 } as never)).toThrow('invalid options: broker: Unrecognized key: "portt"');
    expect(() => compileBrokerOptions({ requestBytesMax: 4096, requestBytesInFlightMax: 2048 })).toThrow(
      'invalid options: broker.requestBytesInFlightMax: requestBytesInFlightMax must be at least requestBytesMax, or a largest frame could never be read (got 2048)',
    );
  });

  it('compiles SASL with the default mechanisms', () => {
    const compiled = compileBrokerOptions({ sasl: { users: [{ username: 'a', password: 'b' }] } });
    expect(compiled.sasl).toEqual({
      mechanisms: ['SCRAM-SHA-256', 'SCRAM-SHA-512', 'PLAIN'],
      credentialsFile: null,
      users: [{ username: 'a', password: 'b' }],
    });
  });

  it('tells loopback hosts from the rest', () => {
    for (const host of ['127.0.0.1', '127.1.2.3', 'localhost', '::1', '::ffff:127.0.0.1']) {
      expect(isLoopbackHost(host)).toBe(true);
    }
    for (const host of ['0.0.0.0', '::', '10.0.0.1', 'example.com', '128.0.0.1']) {
      expect(isLoopbackHost(host)).toBe(false);
    }
  });
});
