export { InjectedFault, armFault, armFaultsFromEnv, disarmFaults, faultHits, faultPoint, type FaultAction } from './fault-points.js';
export { createLogger, type Logger } from './logger.js';
export { MetricsServer, type MetricsAddress, type ReadinessCheck, type ReadinessReport } from './metrics-server.js';
