import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { KafkaJSAggregateError, KafkaJSConnectionError, KafkaJSNumberOfRetriesExceeded } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { ERRORS_DOC, renderErrorTable, withErrorTable } from '../../../scripts/error-table.js';
import { kafkaErrorCodeOf, kafkaErrorCodeOfName } from '../../../src/broker/codec/error-codes.js';
import {
  ConcordatError,
  ERROR_CODES,
  ErrorCode,
  KAFKA_ERRORS,
  KafkaError,
  errorCodeOfKafka,
  isKafkaErrorName,
  isRetriable,
  kafkaErrorName,
  kafkaErrorOf,
  type KafkaErrorName,
} from '../../../src/errors.js';
import { isPoisonRecordError } from '../../../src/outbox/poison.js';
import { fromKafkajs, publishFailed, retentionUnknown } from '../../../src/transport/kafka/errors.js';

const require = createRequire(import.meta.url);
/** kafkajs's own protocol error for a Kafka error number, as its clients raise it (its `type` is kafkajs's name). */
const { createErrorFromCode } = require('kafkajs/src/protocol/error') as {
  createErrorFromCode: (code: number) => Error & { type: string; code: number; retriable: boolean };
};
/** kafkajs's per-topic CreateTopics error (exported, but missing from its types). */
const { KafkaJSCreateTopicError } = require('kafkajs') as { KafkaJSCreateTopicError: new (error: Error, topic: string) => Error };

const codes = Object.keys(ERROR_CODES) as ErrorCode[];

describe("Concordat's error table", () => {
  it('gives every code a meaning, a retriable default, and itself as its value', () => {
    expect(Object.keys(ErrorCode)).toEqual(codes);
    for (const code of codes) {
      expect(ErrorCode[code]).toBe(code);
      expect(ERROR_CODES[code].meaning.length, code).toBeGreaterThan(10);
      expect(typeof ERROR_CODES[code].retriable, code).toBe('boolean');
    }
  });

  it("points every code at a Kafka error of Kafka's table, and each code named after a Kafka error at that error", () => {
    for (const code of codes) {
      const { kafka } = ERROR_CODES[code];
      if (kafka !== undefined) expect(isKafkaErrorName(kafka), code).toBe(true);
      if (isKafkaErrorName(code)) expect(kafka, code).toBe(code);
    }
    expect([ERROR_CODES.LOG_CLOSED.kafka, ERROR_CODES.STORAGE_CORRUPT.kafka, ERROR_CODES.LIMIT_EXCEEDED.kafka]).toEqual([
      'NOT_LEADER_OR_FOLLOWER',
      'KAFKA_STORAGE_ERROR',
      'POLICY_VIOLATION',
    ]);
    expect(ERROR_CODES.CONFIG_INVALID.kafka).toBeUndefined();
  });

  it("keeps Kafka's retriable flag as the default, except where a row says why not", () => {
    const differing = codes.filter((code) => {
      const { kafka, retriable } = ERROR_CODES[code];
      return kafka !== undefined && KAFKA_ERRORS[kafka].retriable !== retriable;
    });
    expect(differing).toEqual(['CORRUPT_MESSAGE', 'STORAGE_CORRUPT', 'REBALANCE_IN_PROGRESS']);
    const explained = codes.filter((code) => ERROR_CODES[code].differsFromKafka !== undefined);
    expect(explained).toEqual(differing);
  });

  it('pins the defaults that throw sites rely on', () => {
    const retriable = codes.filter((code) => ERROR_CODES[code].retriable);
    expect(retriable).toEqual([
      'UNKNOWN_TOPIC_OR_PARTITION',
      'KAFKA_STORAGE_ERROR',
      'LOG_CLOSED',
      'CONCURRENT_TRANSACTIONS',
      'REBALANCE_IN_PROGRESS',
      'COORDINATOR_NOT_AVAILABLE',
      'PUBLISH_FAILED',
      'DATABASE_UNAVAILABLE',
      'TRANSACTION_OUTCOME_UNKNOWN',
      'TRANSACTION_ROLLED_BACK',
      'REQUEST_TIMEOUT',
    ]);
  });

  it('takes the default from the table, and lets an error override it', () => {
    const storage = new ConcordatError('EIO', { code: ErrorCode.KAFKA_STORAGE_ERROR });
    const offline = new ConcordatError('offline', { code: ErrorCode.KAFKA_STORAGE_ERROR, retriable: false });
    const bound = new ConcordatError('topicsMax', { code: ErrorCode.LIMIT_EXCEEDED });
    const full = new ConcordatError('queue full', { code: ErrorCode.LIMIT_EXCEEDED, retriable: true });
    expect([storage.retriable, offline.retriable, bound.retriable, full.retriable]).toEqual([true, false, false, true]);
    expect([isRetriable(storage), isRetriable(offline), isRetriable(bound), isRetriable(full)]).toEqual([true, false, false, true]);
  });
});

describe("Kafka's error table", () => {
  it('holds each number once, with the numbers and flags of the protocol guide', () => {
    const numbers = Object.values(KAFKA_ERRORS).map((spec) => spec.code);
    expect(new Set(numbers).size).toBe(numbers.length);
    expect([
      KafkaError.UNKNOWN_SERVER_ERROR,
      KafkaError.NONE,
      KafkaError.NOT_LEADER_OR_FOLLOWER,
      KafkaError.KAFKA_STORAGE_ERROR,
      KafkaError.PRODUCER_FENCED,
    ]).toEqual([-1, 0, 6, 56, 90]);
    const flags = (['NOT_LEADER_OR_FOLLOWER', 'MESSAGE_TOO_LARGE', 'REBALANCE_IN_PROGRESS', 'COORDINATOR_NOT_AVAILABLE', 'CORRUPT_MESSAGE'] as const).map(
      (name) => KAFKA_ERRORS[name].retriable,
    );
    expect(flags).toEqual([true, false, false, true, true]);
    expect([kafkaErrorName(16), kafkaErrorName(87), kafkaErrorName(999)]).toEqual(['NOT_COORDINATOR', 'INVALID_RECORD', 'UNKNOWN_SERVER_ERROR']);
  });

  it("agrees with kafkajs's table on every number both know, but for its older names", () => {
    const renamed: string[] = [];
    for (const [name, spec] of Object.entries(KAFKA_ERRORS) as [KafkaErrorName, (typeof KAFKA_ERRORS)[KafkaErrorName]][]) {
      if (spec.code === 0) continue;
      const kafkajs = createErrorFromCode(spec.code);
      if (kafkajs.code !== spec.code) continue; // a number kafkajs does not know
      if (kafkajs.type !== name) renamed.push(`${spec.code} ${kafkajs.type}`);
      expect(kafkaErrorOf(kafkajs), name).toBe(name);
    }
    expect(renamed).toContain('16 NOT_COORDINATOR_FOR_GROUP');
    expect(renamed).toContain('15 GROUP_COORDINATOR_NOT_AVAILABLE');
  });
});

describe('reading errors through the tables', () => {
  it("finds the Kafka error of a kafkajs error by its number, and Concordat's code of the same name", () => {
    expect(kafkaErrorOf(createErrorFromCode(15))).toBe('COORDINATOR_NOT_AVAILABLE');
    expect(errorCodeOfKafka(kafkaErrorOf(createErrorFromCode(15)))).toBe(ErrorCode.COORDINATOR_NOT_AVAILABLE);
    expect(errorCodeOfKafka(kafkaErrorOf(createErrorFromCode(22)))).toBe(ErrorCode.ILLEGAL_GENERATION);
    // Kafka errors Concordat has no code for, or only shows a code as, are not translated into one.
    expect(errorCodeOfKafka('TOPIC_AUTHORIZATION_FAILED')).toBeUndefined();
    expect(errorCodeOfKafka('NOT_LEADER_OR_FOLLOWER')).toBeUndefined();
    // A Node.js errno in `code` is not a Kafka number; a ConcordatError's code is not a Kafka error.
    expect(kafkaErrorOf(new KafkaJSConnectionError('refused', { code: 'ECONNREFUSED' }))).toBeUndefined();
    expect(kafkaErrorOf(new ConcordatError('x', { code: ErrorCode.OFFSET_OUT_OF_RANGE }))).toBeUndefined();
    expect(kafkaErrorOf({ type: 'MESSAGE_TOO_LARGE' })).toBe('MESSAGE_TOO_LARGE');
  });

  it('translates kafkajs failures of the kafka transport', () => {
    const gaveUp = (error: Error) => new KafkaJSNumberOfRetriesExceeded(error, { retryCount: 5, retryTime: 100 });
    const missing = publishFailed(gaveUp(createErrorFromCode(3)));
    expect([missing.code, missing.retriable]).toEqual([ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, true]);
    const lost = publishFailed(gaveUp(new KafkaJSConnectionError('connection lost')));
    expect([lost.code, lost.retriable]).toEqual([ErrorCode.PUBLISH_FAILED, true]);
    const bug = publishFailed(new Error('wrapped', { cause: new TypeError('x is undefined') }));
    expect([bug.code, bug.retriable]).toEqual([ErrorCode.PUBLISH_FAILED, false]);

    const denied = retentionUnknown('orders', createErrorFromCode(29));
    expect([denied.code, denied.retriable, denied.message]).toEqual([
      ErrorCode.CONFIG_INVALID,
      false,
      "cannot read retention.ms of topic 'orders': KafkaJSProtocolError: Not authorized to access topics: [Topic authorization failed]; the principal needs DescribeConfigs on the topic",
    ]);
    // kafkajs gave up (its flag is false), but the code's default says a coordinator may come back.
    const coordinator = fromKafkajs('create topics', kafkaErrorOf(createErrorFromCode(15)), ErrorCode.INVALID_CONFIG, gaveUp(createErrorFromCode(15)));
    expect([coordinator.code, coordinator.retriable]).toEqual([ErrorCode.COORDINATOR_NOT_AVAILABLE, true]);
    const refused = new KafkaJSAggregateError('create topics failed', [new KafkaJSCreateTopicError(createErrorFromCode(37), 'orders')]);
    const invalid = fromKafkajs('create topics', kafkaErrorOf(refused.errors[0]), ErrorCode.INVALID_CONFIG, refused);
    expect([invalid.code, invalid.retriable]).toEqual([ErrorCode.INVALID_PARTITIONS, false]);
  });

  it("answers each code with its Kafka error's number on the wire", () => {
    for (const code of codes) {
      const { kafka } = ERROR_CODES[code];
      if (code === ErrorCode.LIMIT_EXCEEDED) continue; // by limit and flag: test/unit/broker/error-codes.test.ts
      const wire = kafka === undefined ? KafkaError.UNKNOWN_SERVER_ERROR : KAFKA_ERRORS[kafka].code;
      expect(kafkaErrorCodeOfName(code), code).toBe(wire);
      expect(kafkaErrorCodeOf(new ConcordatError('x', { code })), code).toBe(wire);
    }
    expect([kafkaErrorCodeOfName(ErrorCode.LOG_CLOSED), kafkaErrorCodeOfName(ErrorCode.CONFIG_INVALID), kafkaErrorCodeOfName(null)]).toEqual([6, -1, 0]);
  });

  it('classifies poison records by the table: Concordat codes and kafkajs errors alike', () => {
    const poison = codes.filter((code) => ERROR_CODES[code].poison === true);
    expect(poison).toEqual(['INVALID_TOPIC_EXCEPTION', 'MESSAGE_TOO_LARGE', 'RECORD_LIST_TOO_LARGE', 'INVALID_RECORD']);
    for (const code of poison) expect(isPoisonRecordError(new Error('publish failed', { cause: new ConcordatError('x', { code }) })), code).toBe(true);
    expect(isPoisonRecordError(new KafkaJSNumberOfRetriesExceeded(createErrorFromCode(10), { retryCount: 0, retryTime: 0 }))).toBe(true);
    expect(isPoisonRecordError(createErrorFromCode(87))).toBe(true);
    expect(isPoisonRecordError(createErrorFromCode(56))).toBe(false);
    expect(isPoisonRecordError(new ConcordatError('disk', { code: ErrorCode.KAFKA_STORAGE_ERROR }))).toBe(false);
    expect(isPoisonRecordError(Object.assign(new Error('no such file'), { code: 'ENOENT' }))).toBe(false);
  });
});

describe('docs/errors.md', () => {
  it('holds the table generated from src/error-codes.ts (npx tsx scripts/error-table.ts rewrites it)', () => {
    const doc = readFileSync(ERRORS_DOC, 'utf8');
    expect(doc).toBe(withErrorTable(doc));
    for (const code of codes) expect(renderErrorTable()).toContain(`| \`${code}\` | ${ERROR_CODES[code].retriable ? 'yes' : 'no'} |`);
  });
});
