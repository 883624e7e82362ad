/**
 * The group coordinator's errors: ConcordatErrors coded with Kafka's error
 * names (UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID, ...), retriable where Kafka
 * clients retry, and the group ID check every request makes.
 */
import { ConcordatError, ErrorCode } from '../../errors.js';
import type { Group } from './group.js';

/** Longest group ID, in characters (a Kafka STRING's length is an int16). */
export const GROUP_ID_LENGTH_MAX = 32_767;

/** @throws ConcordatError INVALID_GROUP_ID when `groupId` is empty (unless `allowEmpty`) or longer than {@link GROUP_ID_LENGTH_MAX} */
export function checkGroupId(groupId: string, allowEmpty = false): void {
  if ((groupId.length === 0 && !allowEmpty) || groupId.length > GROUP_ID_LENGTH_MAX) {
    throw groupError(ErrorCode.INVALID_GROUP_ID, `group ID must be 1..${GROUP_ID_LENGTH_MAX} characters, got ${groupId.length}`);
  }
}

/** UNKNOWN_MEMBER_ID for `memberId` in `group`. */
export function unknownMember(group: Group, memberId: string): ConcordatError {
  return groupError(ErrorCode.UNKNOWN_MEMBER_ID, `member ${memberId} is not in group '${group.groupId}'`);
}

/** FENCED_INSTANCE_ID: `memberId` held static member `groupInstanceId`, which has rejoined under another member ID. */
export function fencedError(group: Group, memberId: string, groupInstanceId: string): ConcordatError {
  return groupError(
    ErrorCode.FENCED_INSTANCE_ID,
    `member ${memberId} of group '${group.groupId}' is fenced: static member '${groupInstanceId}' has rejoined as ` +
      `${group.staticMembers.get(groupInstanceId) ?? 'another member'} (a restarted or duplicate instance); stop this one`,
  );
}

/** A ConcordatError with `code`, retriable as the error table says for it (REBALANCE_IN_PROGRESS and COORDINATOR_NOT_AVAILABLE are). */
export function groupError(code: ErrorCode, message: string): ConcordatError {
  return new ConcordatError(message, { code });
}
