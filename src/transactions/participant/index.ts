export { BranchContext } from './context.js';
export {
  defineParticipant,
  isParticipant,
  namedBranches,
  participantNameOf,
  validatedCommand,
  type Participant,
  type ParticipantPayload,
} from './definition.js';
export { FenceState, advanceFence, claimFence, fenceAdvanceSql, fenceInsertSql, lockFence, setFence, type FenceKey } from './fence.js';
export { reply, type ReplyDetails } from './reply.js';
export { batchOn, type Batch } from './sql.js';
