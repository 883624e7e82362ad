export { beginTcc, type BeginTccOptions, type TccBranch } from './begin.js';
export { TccContext } from './context.js';
export { Cancel, Confirm, TccParticipant, Try, getTccMethods, type TccParticipantOptions } from './decorators.js';
export { REPLY_TOPIC, TccAction, TccMessageType, participantTopic, type GlobalTxOutcome, type TccCommand, type TccReply } from './messages.js';
export { handleTccCommand, type TccMethods } from './participant.js';
