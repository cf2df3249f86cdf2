export { runClusters, type RunSummary } from './runner.js';
export { queueStatus, type QueueStatusOptions } from './status.js';
export type { QueueStatus, RunningCluster, FailedCluster } from './queue-status.js';
export type { RunOptions, HaltPolicy } from './options.js';
export type { ProgressEvent, RunStats, StopReason } from './events.js';
export type { EndReason } from './log.js';
export { parseCluster, clusterRange, clusterKeys, clusterKeyRange, type Cluster, type ClusterRange, type ClusterKeys } from './cluster.js';
export type { ClusterAttempt, ClusterFunction } from './worker.js';
export {
  RunnerOptionError,
  ClusterSpecError,
  LogMismatchError,
  LogFormatError,
  LogLockedError,
  WorkerModuleError,
  QueueUnreachableError,
  QueuePolicyError,
  QueueMismatchError,
  QueueBusyError,
  QueueJobNotFoundError,
} from './errors.js';
