/**
 * The parts CreateAcls, DescribeAcls and DeleteAcls share: an ACL binding
 * filter on the wire, and the answer to an ACL request on a broker without
 * an authorizer.
 *
 *   filter => resource_type_filter resource_name_filter [pattern_type_filter, v1+] principal_filter host_filter operation permission_type
 *     resource_type_filter => INT8
 *     resource_name_filter => NULLABLE_STRING
 *     pattern_type_filter => INT8             v0: always LITERAL (3)
 *     principal_filter => NULLABLE_STRING
 *     host_filter => NULLABLE_STRING
 *     operation => INT8
 *     permission_type => INT8
 *   v2+: compact strings (KIP-482)
 *
 * @module
 */

import { PatternType, type AclBindingFilter } from '../acl/index.js';
import type { Reader } from '../codec/reader.js';
import type { Writer } from '../codec/writer.js';

/** Reads one binding filter of `version` (tagged fields are the caller's: they follow the struct that holds it). */
export function readAclFilter(reader: Reader, version: number): AclBindingFilter {
  const flexible = version >= 2;
  const nullable = () => (flexible ? reader.compactNullableString() : reader.nullableString());
  const resourceType = reader.int8();
  const resourceName = nullable();
  const patternType = version >= 1 ? reader.int8() : PatternType.LITERAL;
  return { resourceType, resourceName, patternType, principal: nullable(), host: nullable(), operation: reader.int8(), permission: reader.int8() };
}

/** Writes a STRING (v0-v1) or COMPACT_STRING (v2+). */
export function writeAclString(writer: Writer, version: number, value: string): Writer {
  return version >= 2 ? writer.compactString(value) : writer.string(value);
}

/** Writes a NULLABLE_STRING (v0-v1) or COMPACT_NULLABLE_STRING (v2+). */
export function writeAclNullableString(writer: Writer, version: number, value: string | null): Writer {
  return version >= 2 ? writer.compactNullableString(value) : writer.nullableString(value);
}

/** Kafka's message for the ACL APIs on a broker without an authorizer (SECURITY_DISABLED). */
export const NO_AUTHORIZER_MESSAGE = 'no authorizer is configured on the broker (start it with an authorizer to use ACLs)';
