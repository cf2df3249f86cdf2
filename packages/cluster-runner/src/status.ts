import { queueTarget } from './options.js';
import type { QueueStatus } from './queue-status.js';

/** Options of {@link queueStatus}. */
export interface QueueStatusOptions {
  /** The job's Redis, `redis://HOST:PORT/DB`. */
  queue: string;
  /** The job's name on the queue. */
  name: string;
}

/**
 * Where a job run in queue mode stands: done, running (where, since when), waiting, failed (how),
 * and an ETA. Rejects with `RunnerOptionError`, `QueueUnreachableError`, `QueuePolicyError` or
 * `QueueJobNotFoundError`.
 */
export async function queueStatus(options: QueueStatusOptions): Promise<QueueStatus> {
  const target = queueTarget(options.queue, options.name, (key) => key);
  // Loaded only here, so that importing the package loads no Redis client.
  const { readQueueStatus } = await import('./queue-status.js');
  return readQueueStatus(target);
}
