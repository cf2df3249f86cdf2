import { Queue } from 'bullmq';
import { QueueJobNotFoundError } from './errors.js';
import type { EndReason } from './log.js';
import type { QueueSettings } from './options.js';
import { clock } from './progress.js';
import { QUEUE_PREFIX, connectChecked, readQueuedJob } from './queue-redis.js';
import type { AttemptRecord, ClusterQueue } from './queue-runner.js';

// `cluster-run status`: where a queue-mode job stands, read from the queue. Loaded with import()
// only for that command.

/** A cluster running now, and where. */
export interface RunningCluster {
  readonly cluster: number;
  /** The runner's host name (`--host`). */
  readonly host: string | null;
  readonly attempt: number | null;
  /** ms since the epoch. */
  readonly startedAt: number | null;
  readonly runningMs: number | null;
}

/** A cluster that failed for good: its last attempt, as its runner recorded it. */
export interface FailedCluster {
  readonly cluster: number;
  readonly host: string | null;
  readonly attempt: number | null;
  readonly why: EndReason | null;
  readonly exitCode: number | null;
  readonly signal: string | null;
  /** BullMQ's failedReason: how it ended and the last lines of its stderr. */
  readonly reason: string;
  readonly stderrTail: string;
}

/** Where a queue-mode job stands: what `cluster-run status --json` prints. */
export interface QueueStatus {
  /** The queue's URL without a password. */
  readonly queue: string;
  readonly name: string;
  readonly clusters: number;
  readonly command: readonly string[] | null;
  readonly shell: boolean;
  readonly worker: string | null;
  readonly done: number;
  readonly running: readonly RunningCluster[];
  /** Clusters waiting for a runner. */
  readonly waiting: number;
  /** Clusters that failed and wait out their backoff before the next try. */
  readonly retrying: number;
  readonly failed: readonly FailedCluster[];
  /** Clusters done per second over the latest completions (up to 200), or null when too few. */
  readonly ratePerSecond: number | null;
  /** Time left at that rate, or null. */
  readonly etaMs: number | null;
}

/** How many recent completions the rate is measured over. */
const RATE_SAMPLE = 200;

/** Reads the status of job `name` on the queue; throws QueueUnreachableError or QueueJobNotFoundError. */
export async function readQueueStatus(target: Pick<QueueSettings, 'url' | 'address' | 'name'>): Promise<QueueStatus> {
  const redis = await connectChecked(target);
  let job: Awaited<ReturnType<typeof readQueuedJob>>;
  try {
    job = await readQueuedJob(redis, target.name);
  } finally {
    redis.disconnect();
  }
  if (job === null) throw new QueueJobNotFoundError(target.name, target.address);
  const jobs: ClusterQueue = new Queue(target.name, { connection: { url: target.url }, prefix: QUEUE_PREFIX });
  jobs.on('error', () => undefined);
  try {
    const counts = await jobs.getJobCounts('completed', 'waiting', 'prioritized', 'delayed');
    const now = Date.now();
    const running = (await jobs.getActive(0, -1))
      .map((active): RunningCluster => {
        // The runner's --host is its BullMQ worker name, which BullMQ records as processedBy.
        const startedAt = active.processedOn ?? null;
        return {
          cluster: active.data.cluster,
          host: active.processedBy ?? null,
          attempt: active.attemptsStarted > 0 ? active.attemptsStarted : null,
          startedAt,
          runningMs: startedAt === null ? null : Math.max(0, now - startedAt),
        };
      })
      .sort((a, b) => a.cluster - b.cluster);
    const failed = (await jobs.getFailed(0, -1))
      .map((failure): FailedCluster => {
        const last = (typeof failure.progress === 'object' ? failure.progress : null) as Partial<AttemptRecord> | null;
        return {
          cluster: failure.data.cluster,
          host: last?.host ?? failure.processedBy ?? null,
          attempt: last?.attempt ?? null,
          why: last?.why ?? null,
          exitCode: last?.exitCode ?? null,
          signal: last?.signal ?? null,
          reason: failure.failedReason ?? '',
          stderrTail: last?.stderrTail ?? '',
        };
      })
      .sort((a, b) => a.cluster - b.cluster);
    const done = counts.completed ?? 0;
    // The newest completions first; their spread in time gives the current rate.
    const finishedTimes = (await jobs.getCompleted(0, RATE_SAMPLE - 1)).map((completed) => completed.finishedOn ?? 0).filter((time) => time > 0);
    let ratePerSecond: number | null = null;
    if (finishedTimes.length >= 2 && running.length > 0) {
      const span = Math.max(...finishedTimes) - Math.min(...finishedTimes);
      if (span > 0) ratePerSecond = ((finishedTimes.length - 1) * 1000) / span;
    }
    const left = job.clusters - done - failed.length;
    return {
      queue: target.address,
      name: target.name,
      clusters: job.clusters,
      command: job.command,
      shell: job.shell,
      worker: job.worker,
      done,
      running,
      waiting: (counts.waiting ?? 0) + (counts.prioritized ?? 0),
      retrying: counts.delayed ?? 0,
      failed,
      ratePerSecond: ratePerSecond === null ? null : Math.round(ratePerSecond * 100) / 100,
      etaMs: ratePerSecond === null ? (left === 0 ? 0 : null) : Math.round((left / ratePerSecond) * 1000),
    };
  } finally {
    await jobs.close().catch(() => undefined);
  }
}

/** The status as `cluster-run status` prints it. */
export function formatStatus(status: QueueStatus): string {
  const of = `/${status.clusters}`;
  const what = status.worker !== null ? `worker ${status.worker}` : `${status.shell ? '--shell ' : ''}${(status.command ?? []).join(' ')}`;
  const lines = [`job ${status.name} on ${status.queue}: ${status.clusters} clusters of ${what}`];
  lines.push(`  done      ${status.done}`);
  lines.push(`  running   ${status.running.length}`);
  for (const cluster of status.running.slice(0, 50)) {
    const where = cluster.host === null ? '' : ` on ${cluster.host}`;
    const since = cluster.runningMs === null ? '' : ` for ${clock(cluster.runningMs / 1000)}`;
    lines.push(`    ${cluster.cluster}${of}${where}${since}${cluster.attempt === null ? '' : `, attempt ${cluster.attempt}`}`);
  }
  if (status.running.length > 50) lines.push(`    and ${status.running.length - 50} more`);
  lines.push(`  waiting   ${status.waiting}${status.retrying > 0 ? ` (and ${status.retrying} to retry after a backoff)` : ''}`);
  lines.push(`  failed    ${status.failed.length}`);
  for (const cluster of status.failed.slice(0, 50)) {
    const how = cluster.signal !== null ? `signal ${cluster.signal}` : cluster.exitCode !== null ? `exit code ${cluster.exitCode}` : (cluster.reason.split('\n')[0] ?? '');
    const where = cluster.host === null ? '' : ` on ${cluster.host}`;
    const last = cluster.stderrTail.split('\n').filter(Boolean).at(-1);
    lines.push(`    ${cluster.cluster}${of} ${cluster.why === 'timeout' ? 'timed out' : how}${where}${cluster.attempt === null ? '' : `, attempt ${cluster.attempt}`}${last ? `: ${last.slice(0, 200)}` : ''}`);
  }
  if (status.failed.length > 50) lines.push(`    and ${status.failed.length - 50} more`);
  const left = status.clusters - status.done - status.failed.length;
  if (left === 0) lines.push(`  ETA       none: every cluster is done${status.failed.length > 0 ? ' or failed (rerun the command to retry the failed ones)' : ''}`);
  else if (status.etaMs === null) lines.push('  ETA       unknown (nothing is running, or too little is done yet)');
  else lines.push(`  ETA       ${clock(status.etaMs / 1000)} at ${status.ratePerSecond} clusters/s`);
  return `${lines.join('\n')}\n`;
}
