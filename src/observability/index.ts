export { InjectedFault, armFault, armFaultsFromEnv, disarmFaults, faultHits, faultPoint, type FaultAction } from './fault-points.js';
export { createLogger, rootLoggerFrom, type Logger, type LoggerLike, type LogMethod } from './logger.js';
export { MetricsServer, type MetricsAddress, type ReadinessCheck, type ReadinessReport } from './metrics-server.js';
