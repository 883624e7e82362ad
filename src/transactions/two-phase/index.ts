export { beginTwoPhase, TwoPhasePrepareOrder, type BeginTwoPhaseOptions, type TwoPhaseBranch } from './begin.js';
export { XaContext } from './context.js';
export { Prepare, XaParticipant, type XaParticipantOptions } from './decorators.js';
export { XA_PARTICIPANT_NAME_MAX, gidFor, isPrepared, parseGid, preparedGids } from './gid.js';
export { handleXaCommand } from './participant.js';
export { recoverPrepared } from './recovery.js';
