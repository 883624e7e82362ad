import type { AnyApi } from './api.js';
import { addOffsetsToTxn } from './add-offsets-to-txn.js';
import { addPartitionsToTxn } from './add-partitions-to-txn.js';
import { alterConfigs } from './alter-configs.js';
import { apiVersions } from './api-versions.js';
import { createAcls } from './create-acls.js';
import { createPartitions } from './create-partitions.js';
import { createTopics } from './create-topics.js';
import { deleteAcls } from './delete-acls.js';
import { deleteGroups } from './delete-groups.js';
import { deleteRecords } from './delete-records.js';
import { deleteTopics } from './delete-topics.js';
import { describeAcls } from './describe-acls.js';
import { describeCluster } from './describe-cluster.js';
import { describeConfigs } from './describe-configs.js';
import { describeGroups } from './describe-groups.js';
import { describeLogDirs } from './describe-log-dirs.js';
import { endTxn } from './end-txn.js';
import { fetch } from './fetch.js';
import { findCoordinator } from './find-coordinator.js';
import { heartbeat } from './heartbeat.js';
import { incrementalAlterConfigs } from './incremental-alter-configs.js';
import { initProducerId } from './init-producer-id.js';
import { joinGroup } from './join-group.js';
import { leaveGroup } from './leave-group.js';
import { listGroups } from './list-groups.js';
import { listOffsets } from './list-offsets.js';
import { metadata } from './metadata.js';
import { offsetCommit } from './offset-commit.js';
import { offsetDelete } from './offset-delete.js';
import { offsetFetch } from './offset-fetch.js';
import { produce } from './produce.js';
import { saslAuthenticate } from './sasl-authenticate.js';
import { saslHandshake } from './sasl-handshake.js';
import { syncGroup } from './sync-group.js';
import { txnOffsetCommit } from './txn-offset-commit.js';

/**
 * The registration table: every wire API the broker serves, by API key.
 * ApiVersions advertises exactly these ranges (see ../shared/KAFKA-PROTOCOL.md
 * for why each range: what kafkajs, librdkafka and kafka-python need).
 */
const APIS: readonly AnyApi[] = [
  produce, // 0
  fetch, // 1
  listOffsets, // 2
  metadata, // 3
  offsetCommit, // 8
  offsetFetch, // 9
  findCoordinator, // 10
  joinGroup, // 11
  heartbeat, // 12
  leaveGroup, // 13
  syncGroup, // 14
  describeGroups, // 15
  listGroups, // 16
  saslHandshake, // 17
  apiVersions, // 18
  createTopics, // 19
  deleteTopics, // 20
  deleteRecords, // 21
  initProducerId, // 22
  addPartitionsToTxn, // 24
  addOffsetsToTxn, // 25
  endTxn, // 26
  txnOffsetCommit, // 28
  describeAcls, // 29
  createAcls, // 30
  deleteAcls, // 31
  describeConfigs, // 32
  alterConfigs, // 33
  describeLogDirs, // 35
  saslAuthenticate, // 36
  createPartitions, // 37
  deleteGroups, // 42
  incrementalAlterConfigs, // 44
  offsetDelete, // 47
  describeCluster, // 60
];

/** Every API the broker serves, by key: the one registration table the connection and ApiVersions read. */
export const API_TABLE: ReadonlyMap<number, AnyApi> = new Map(APIS.map((api) => [api.key, api]));

if (API_TABLE.size !== APIS.length) throw new Error('two wire APIs share one API key');
