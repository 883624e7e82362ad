export { cleanupFences, cleanupHistory, type CleanupLimits } from './cleanup.js';
export { COORDINATOR_OPTIONS, COORDINATOR_SERVICE, CoordinatorFault, TransactionCoordinator, timingOf } from './coordinator.js';
export { compileCoordinatorOptions, type CompiledCoordinatorOptions, type CoordinatorOptions } from '../../config/index.js';
export { driveGlobalTx, sendCommands } from './driver.js';
export {
  BranchAction,
  MODE_ACTIONS,
  REPLY_TOPIC,
  TxMessageType,
  commandTopic,
  type BranchCommand,
  type BranchReply,
  type GlobalTxEndState,
  type GlobalTxOutcome,
  type ModeActions,
} from './messages.js';
export {
  abortGlobalTx,
  browseGlobalTxs,
  describeTransition,
  endGlobalTx,
  listGlobalTxs,
  retryGlobalTx,
  showGlobalTx,
  type BrowseFilter,
  type GlobalTxDetail,
  type GlobalTxPage,
  type EndByHand,
  type GlobalTxSummary,
  type ListFilter,
} from './operations.js';
export {
  advance,
  transition,
  type BranchView,
  type EndByHandState,
  type EndInput,
  type Command,
  type Timing,
  type Transition,
  type TxChange,
  type TxEvent,
  type TxInput,
  type TxView,
} from './protocol.js';
export { BranchState, GlobalTxState, TERMINAL_STATES, TxEventKind, TxMode, type Decision } from './states.js';
export {
  applyTransition,
  claimDue,
  findGlobalTx,
  insertGlobalTx,
  lockGlobalTx,
  mustLockGlobalTx,
  readBranches,
  type BranchRow,
  type DueKind,
  type GlobalTxRow,
  type NewBranch,
  type NewGlobalTx,
} from './store.js';
