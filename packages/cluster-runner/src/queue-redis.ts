import { Redis } from 'ioredis';
import { QueueMismatchError, QueuePolicyError, QueueUnreachableError } from './errors.js';
import type { QueueSettings } from './options.js';
import { describeJob, type RunRecord } from './log.js';

// What queue mode keeps in Redis beside BullMQ's own keys, and the checks made before anything is
// written there. Loaded only in queue mode (with ioredis and BullMQ).

/** BullMQ's key prefix for every cluster-run job: keys read `cluster-run:JOB:…`. */
export const QUEUE_PREFIX = 'cluster-run';

/** A job's identity on the queue: what it runs, so that every runner can check it runs the same. */
export interface QueuedJob extends Pick<RunRecord, 'clusters' | 'command' | 'shell' | 'worker'> {
  readonly version: 1;
  /** The runner that enqueued it first, and when. */
  readonly host: string;
  readonly time: string;
}

/** The keys of one job that cluster-run writes itself. */
export function jobKeys(name: string): { identity: string; enqueued: string } {
  return { identity: `${QUEUE_PREFIX}:${name}:identity`, enqueued: `${QUEUE_PREFIX}:${name}:enqueued` };
}

/**
 * How BullMQ's own connections come back after Redis restarts: soon (BullMQ's default waits a
 * second or more between tries), and forever, as a runner keeps its clusters' locks to renew.
 */
export function reconnectingOptions(): { retryStrategy: (times: number) => number } {
  return { retryStrategy: (times: number) => Math.min(50 * times, 1_000) };
}

/**
 * Connects to the queue's Redis once, without retrying, and checks the server before anything is
 * written: an unreachable server is a {@link QueueUnreachableError} (with the connect error), one
 * that may evict keys a {@link QueuePolicyError}.
 */
export async function connectChecked(queue: Pick<QueueSettings, 'url' | 'address'>): Promise<Redis> {
  const client = new Redis(queue.url, {
    lazyConnect: true,
    connectTimeout: 5_000,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    retryStrategy: () => null,
  });
  let lastError: Error | null = null;
  // ioredis reports the cause here and rejects connect() with a generic message.
  client.on('error', (error: Error) => (lastError = error));
  try {
    await client.connect();
    await client.ping();
  } catch (error) {
    // A client whose connection failed is closed already; disconnect() would leave a 2 s timer behind.
    if (client.status !== 'end') client.disconnect();
    throw new QueueUnreachableError(queue.address, (lastError ?? (error as Error)).message);
  }
  try {
    // INFO rather than CONFIG GET: managed Redis services often disable CONFIG.
    const policy = /^maxmemory_policy:(\S+)/m.exec(await client.info('memory'))?.[1];
    if (policy !== undefined && policy !== 'noeviction') throw new QueuePolicyError(queue.address, policy);
  } catch (error) {
    client.disconnect();
    throw error;
  }
  return client;
}

/** Reads a job's identity; null when the queue holds no job of that name. */
export async function readQueuedJob(client: Redis, name: string): Promise<QueuedJob | null> {
  const text = await client.get(jobKeys(name).identity);
  if (text === null) return null;
  try {
    return JSON.parse(text) as QueuedJob;
  } catch {
    return { version: 1, clusters: 0, command: [text], shell: false, worker: null, host: '?', time: '?' };
  }
}

/**
 * Records the job's identity if the queue has none yet (SET NX: of runners starting together one
 * wins), otherwise checks that the queue holds the same job, throwing {@link QueueMismatchError}.
 */
export async function claimJob(client: Redis, queue: QueueSettings, job: QueuedJob): Promise<void> {
  const created = await client.set(jobKeys(queue.name).identity, JSON.stringify(job), 'NX');
  if (created === 'OK') return;
  if (!(await checkJob(client, queue, job))) return claimJob(client, queue, job); // replaced by a --fresh meanwhile
}

/**
 * Throws {@link QueueMismatchError} when the queue holds another job under this name (another N, or
 * another command or worker); says whether it holds one at all. Reads only.
 */
export async function checkJob(client: Redis, queue: QueueSettings, job: QueuedJob): Promise<boolean> {
  const existing = await readQueuedJob(client, queue.name);
  if (existing === null) return false;
  if (describeJob(existing) !== describeJob(job)) {
    throw new QueueMismatchError(queue.name, queue.address, describeJob(existing), describeJob(job));
  }
  return true;
}
