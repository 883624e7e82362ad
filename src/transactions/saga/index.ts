export { beginSaga, type BeginSagaOptions, type SagaStep } from './begin.js';
export { SagaContext } from './context.js';
export { Compensate, SagaParticipant, Step, getSagaMethods, type SagaParticipantOptions } from './decorators.js';
export { handleSagaCommand, type SagaMethods } from './participant.js';
