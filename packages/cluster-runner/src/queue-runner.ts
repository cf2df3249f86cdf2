import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Queue, UnrecoverableError, WaitingError, Worker, type ConnectionOptions, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { QueueBusyError, WorkerModuleError } from './errors.js';
import type { ProgressEvent, RunStats, StopReason } from './events.js';
import { outputPaths, removeIfEmpty, RunChanges, stopAttemptProcesses, type Execution, type Executor } from './executor.js';
import { fileStamp, type EndReason } from './log.js';
import { TreeMemoryWatch, availableMemory } from './memory.js';
import type { QueueSettings, RunSettings } from './options.js';
import { QUEUE_PREFIX, checkJob, claimJob, connectChecked, jobKeys, reconnectingOptions, type QueuedJob } from './queue-redis.js';
import type { RunSummary } from './runner.js';
import { prepareOutputFolder } from './output-folder.js';
import { clusterPool } from './pools.js';

// Queue mode: the job's clusters are BullMQ jobs on Redis, shared by every runner given the same
// queue and name. Loaded with import() only when --queue is given, so a local run never loads
// BullMQ or a Redis client.

/** A cluster as the queue holds it. */
export interface ClusterJobData {
  readonly cluster: number;
  readonly total: number;
}

/**
 * What a cluster's queue record says about its latest attempt: the job's progress while it runs
 * (who runs it, since when) and, once it ended, how; the return value of a done cluster.
 */
export interface AttemptRecord {
  readonly host: string;
  readonly pid: number | null;
  readonly attempt: number;
  /** ms since the epoch. */
  readonly startedAt: number;
  readonly why?: EndReason;
  readonly exitCode?: number | null;
  readonly signal?: string | null;
  readonly durationMs?: number;
  readonly peakRss?: number | null;
  readonly error?: string | null;
  /** The last lines the attempt wrote; the whole output stays in --output-dir on its host. */
  readonly stdoutTail?: string;
  readonly stderrTail?: string;
}

/** A cluster this runner holds the lock of: from the moment BullMQ hands it over until its processor returns. */
interface Held {
  readonly job: Job<ClusterJobData, AttemptRecord>;
  readonly token: string;
  /** When the last lock renewal that succeeded was sent: the lock lasts at least lockDuration from then. */
  renewedAt: number;
  /** Why the lock is (or may be) gone: then the cluster belongs to whichever runner takes it next. */
  lost: string | null;
  running: RunningAttempt | null;
}

interface RunningAttempt {
  readonly execution: Execution;
  stopReason: EndReason | null;
  peakRss: number | null;
  killTimer: NodeJS.Timeout | null;
}

/** The job's clusters on the queue. */
export type ClusterQueue = Queue<ClusterJobData, AttemptRecord, string, ClusterJobData, AttemptRecord, string>;

/** Job ids must not look like numbers (BullMQ's rule), and read well in Redis. */
const jobId = (cluster: number): string => `cluster-${cluster}`;

const MAX_RETRY_DELAY_MS = 60_000;
const MEMORY_POLL_MS = 250;
const STATE_POLL_MS = 500;
const ENQUEUE_BATCH = 1_000;
/** Far more than anyone asks for: the runner decides retries itself (--retries), BullMQ only counts. */
const UNLIMITED_ATTEMPTS = 1_000_000;
/** The part of the lock duration after which a lock not renewed counts as lost. */
const LOCK_GIVE_UP = 0.5;
/** A cluster whose runner died this many times (it may be what kills them) is recorded as failed. */
const MAX_RUNNER_DEATHS = 10;
/** The last lines of an attempt's output kept in its queue record. */
const TAIL_LINES = 10;
const TAIL_BYTES = 2_048;

/**
 * How often the stalled check runs, from the lock duration. Each check moves the clusters it marked
 * the time before whose locks are gone back to the waiting list, then marks every running cluster
 * (a renewal removes the mark). A cluster whose runner died is taken up within lockDuration (its
 * lock expiring, marked meanwhile) plus one check: 35 s with the default 30 s lock.
 */
function stalledIntervalMs(lockDurationMs: number): number {
  return Math.max(250, Math.round(lockDurationMs / 6));
}

/** The delay before retry `retry` (1, 2, ...) of a cluster: doubling from --retry-delay, at most a minute. */
function retryDelay(settings: RunSettings, retry: number): number {
  return Math.min(settings.retryDelayMs * 2 ** Math.max(0, retry - 1), MAX_RETRY_DELAY_MS);
}

/** Runs the job's clusters from the queue until every one is done or failed for good, or the run is stopped. */
export async function runQueued(settings: RunSettings, queue: QueueSettings): Promise<RunSummary> {
  const startedAt = Date.now();
  const { clusters } = settings;
  const lockMs = queue.lockDurationMs;
  const requested: QueuedJob = {
    version: 1,
    clusters,
    command: settings.command,
    shell: settings.shell,
    worker: settings.worker,
    host: queue.host,
    time: new Date(startedAt).toISOString(),
  };
  const redis = await connectChecked(queue);
  const connection: ConnectionOptions = { url: queue.url, ...reconnectingOptions() };
  const jobs: ClusterQueue = new Queue(queue.name, { connection, prefix: QUEUE_PREFIX });
  // Failures show in the calls that fail; the poll below reports a lost connection.
  jobs.on('error', () => undefined);
  let worker: Worker<ClusterJobData, AttemptRecord> | null = null;
  let executor: Executor | null = null;
  try {
    if (settings.fresh) await refuseIfBusy(jobs, queue);
    // Another job of this name is refused before anything is made or started for this run.
    else await checkJob(redis, queue, requested);
    const outputDir = settings.outputDir ?? resolve(settings.cwd, `${queue.name}.output`);
    // As in a local run, --fresh keeps the old job's default output folder beside the new one.
    const outputFolder = prepareOutputFolder(
      outputDir,
      settings.fresh && settings.outputDir === null ? `${outputDir}.${fileStamp()}` : null,
    );
    const owner = { CLUSTER_RUN_QUEUE: queue.address, CLUSTER_RUN_NAME: queue.name, CLUSTER_RUN_HOST: queue.host };
    executor = clusterPool(settings, owner, outputDir, true);
    const scanBegan = performance.now();
    try {
      // A worker module that cannot run clusters is refused before anything is enqueued.
      await executor.open();
      if (settings.fresh) await startOver(redis, jobs, queue);
      await claimJob(redis, queue, requested);
    } catch (error) {
      // A refused run leaves no output folder behind (and puts back the one --fresh set aside).
      await executor.close();
      executor = null;
      outputFolder.undo();
      throw error;
    }
    const pool = executor;
    await enqueue(redis, jobs, queue.name, clusters);
    await retryFailedBefore(jobs, startedAt);
    const initial = await jobs.getJobCounts('completed', 'failed');
    const scanMs = performance.now() - scanBegan;

    const stats = { done: initial.completed ?? 0, failed: initial.failed ?? 0, running: 0, doneThisRun: 0 };
    const doneBefore = stats.done;
    const snapshot = (): RunStats => ({ clusters, ...stats, startedAt });
    const emit = (event: ProgressEvent): void => settings.onProgress?.(event);
    const held = new Map<string, Held>();
    let attemptsStarted = 0;
    let stoppedBy: StopReason | null = null;
    let stopSignal: NodeJS.Signals | null = null;
    let fatal: unknown = null;

    const changes = new RunChanges();
    const notify = (): void => changes.notify();

    const stopAttempt = (attempt: RunningAttempt, reason: EndReason, signal: NodeJS.Signals): void =>
      stopAttemptProcesses(attempt, reason, signal, settings.graceMs);

    /** The lock is gone, or may expire before this runner can renew it: the cluster must stop at once. */
    const loseLock = (hold: Held, why: string): void => {
      if (hold.lost !== null) return;
      hold.lost = why;
      if (hold.running !== null) stopAttempt(hold.running, 'interrupted', 'SIGKILL');
      notify();
    };

    const stop = (reason: StopReason, signal: NodeJS.Signals): void => {
      if (stoppedBy !== null) {
        // A second SIGINT or SIGTERM: the user will not wait for the grace period.
        for (const hold of held.values()) if (hold.running) stopAttempt(hold.running, 'interrupted', 'SIGKILL');
        return;
      }
      stoppedBy = reason;
      stopSignal = signal;
      emit({ type: 'stopping', reason, stats: snapshot() });
      // No more clusters: the worker stops fetching, and waits for the processors to hand theirs back.
      void worker?.close().catch(() => undefined);
      for (const hold of held.values()) if (hold.running) stopAttempt(hold.running, 'interrupted', signal);
      notify();
    };

    const memoryWatch = new TreeMemoryWatch((samples) => {
      for (const hold of held.values()) {
        const attempt = hold.running;
        const pid = attempt?.execution.pid;
        const rss = pid == null ? undefined : samples.get(pid);
        if (attempt == null || rss === undefined) continue;
        if (attempt.peakRss === null || rss > attempt.peakRss) attempt.peakRss = rss;
        if (settings.maxRss !== null && rss > settings.maxRss) stopAttempt(attempt, 'rss-limit', 'SIGTERM');
      }
    });

    const waitForMemory = async (hold: Held): Promise<void> => {
      if (settings.memFree === null) return;
      let announced = false;
      while (stoppedBy === null && hold.lost === null) {
        const available = availableMemory();
        if (available >= settings.memFree) return;
        if (!announced) emit({ type: 'memory-wait', availableBytes: available, memFree: settings.memFree, stats: snapshot() });
        announced = true;
        await Promise.race([sleep(MEMORY_POLL_MS), changes.next]);
      }
    };

    /** Gives a cluster back to the queue at once, for any runner to take (a runner being stopped). */
    const handBack = async (hold: Held): Promise<never> => {
      if (hold.lost === null) await hold.job.moveToWait(hold.token).catch(() => undefined);
      throw new WaitingError();
    };

    const processCluster = async (job: Job<ClusterJobData, AttemptRecord>, token?: string): Promise<AttemptRecord> => {
      const hold: Held = { job, token: token ?? '', renewedAt: Math.min(job.processedOn ?? Date.now(), Date.now()), lost: null, running: null };
      held.set(job.id as string, hold);
      try {
        return await runCluster(hold);
      } finally {
        held.delete(job.id as string);
        notify();
      }
    };

    const runCluster = async (hold: Held): Promise<AttemptRecord> => {
      const { job } = hold;
      const cluster = job.data.cluster;
      await waitForMemory(hold);
      // Its lock gone, the cluster is another runner's now: this one lets go without a word to the queue.
      if (hold.lost !== null) throw new WaitingError();
      if (stoppedBy !== null) return handBack(hold);
      // BullMQ counts every start, across runners and reruns: a unique attempt number per cluster.
      const attempt = Math.max(1, job.attemptsStarted);
      const paths = outputPaths(outputDir, cluster, attempt);
      const began = Date.now();
      let execution: Execution;
      try {
        execution = await pool.launch({ cluster, total: clusters, attempt, ...paths });
      } catch (error) {
        if (error instanceof WorkerModuleError) {
          fatal ??= error;
          stop('abort', 'SIGTERM');
          return handBack(hold);
        }
        execution = {
          pid: null,
          pidStart: null,
          finished: Promise.resolve({ exitCode: null, signal: null, error: String((error as Error).message), reportedRss: null }),
        };
      }
      attemptsStarted += 1;
      // Who runs it and since when, the queue knows already (BullMQ's processedBy and processedOn).
      const started: AttemptRecord = { host: queue.host, pid: execution.pid, attempt, startedAt: began };
      const current: RunningAttempt = { execution, stopReason: null, peakRss: null, killTimer: null };
      hold.running = current;
      stats.running += 1;
      emit({ type: 'start', cluster, attempt, pid: execution.pid, stats: snapshot() });
      // A stop or a lost lock that came while the attempt was being launched applies to it too.
      if (hold.lost !== null) stopAttempt(current, 'interrupted', 'SIGKILL');
      else if (stopSignal !== null) stopAttempt(current, 'interrupted', stopSignal);
      const timeout = settings.timeoutMs === null ? null : setTimeout(() => stopAttempt(current, 'timeout', 'SIGTERM'), settings.timeoutMs);
      if (execution.pid !== null) memoryWatch.watch(execution.pid);

      const outcome = await execution.finished;

      if (timeout !== null) clearTimeout(timeout);
      if (current.killTimer !== null) clearTimeout(current.killTimer);
      if (execution.pid !== null) memoryWatch.unwatch(execution.pid);
      hold.running = null;
      stats.running -= 1;
      const stdoutTail = tail(paths.stdoutPath);
      const stderrTail = tail(paths.stderrPath);
      removeIfEmpty(paths.stdoutPath);
      removeIfEmpty(paths.stderrPath);

      // Exit code 0 is the only proof of a finished cluster, even one that was being stopped.
      const ok = outcome.exitCode === 0 && outcome.error === null;
      const why: EndReason = ok ? 'ok' : (current.stopReason ?? 'failed');
      const peakRss =
        outcome.reportedRss !== null && (current.peakRss === null || outcome.reportedRss > current.peakRss) ? outcome.reportedRss : current.peakRss;
      const durationMs = Date.now() - began;
      const error = why === 'interrupted' && hold.lost !== null ? hold.lost : outcome.error;
      const record: AttemptRecord = {
        ...started,
        why,
        exitCode: outcome.exitCode,
        signal: outcome.signal,
        durationMs,
        peakRss,
        error,
        stdoutTail,
        stderrTail,
      };
      const end = { type: 'end', cluster, attempt, why, exitCode: outcome.exitCode, signal: outcome.signal, durationMs, peakRss, error } as const;

      // Done even if its lock looked lost: if it is still this runner's, BullMQ records it done; if
      // another runner has it, BullMQ refuses the stale token and that runner's copy counts.
      if (why === 'ok') {
        stats.done += 1;
        stats.doneThisRun += 1;
        emit({ ...end, retryInMs: null, stats: snapshot() });
        return record;
      }
      if (why === 'interrupted' || hold.lost !== null) {
        emit({ ...end, why: 'interrupted', retryInMs: null, stats: snapshot() });
        return handBack(hold);
      }
      void job.updateProgress(record).catch(() => undefined);
      // attemptsMade counts the failed attempts since the cluster was enqueued or last rerun.
      const retrying = job.attemptsMade < settings.retries;
      if (!retrying) stats.failed += 1;
      emit({ ...end, retryInMs: retrying ? retryDelay(settings, job.attemptsMade + 1) : null, stats: snapshot() });
      const failure = retrying ? new Error(failureText(record)) : new UnrecoverableError(failureText(record));
      failure.stack = failure.message;
      throw failure;
    };

    /**
     * Renews the locks of the clusters this runner holds, in one call every lockDuration/6, and
     * stops a cluster whose lock is lost, or whose last renewal that got through is half a lock
     * duration old (Redis unreachable): BullMQ's stalled check gives a cluster to another runner
     * once its lock expires, and it must not run on here by then. Half leaves room for a renewal
     * lost in a Redis crash and for a slow event loop.
     */
    let renewing = false;
    let lastRenewal = 0;
    const watchLocks = setInterval(() => {
      const now = Date.now();
      for (const hold of held.values()) {
        if (hold.lost === null && now - hold.renewedAt > lockMs * LOCK_GIVE_UP) {
          const seconds = ((now - hold.renewedAt) / 1000).toFixed(1);
          loseLock(hold, `its lock could not be renewed for ${seconds}s (Redis unreachable?), so it was stopped before another runner could take it`);
        }
      }
      if (renewing || worker === null || now - lastRenewal < lockMs / 6) return;
      const holds = [...held.values()].filter((hold) => hold.lost === null);
      if (holds.length === 0) return;
      renewing = true;
      lastRenewal = now;
      worker
        .extendJobLocks(
          holds.map((hold) => hold.job.id as string),
          holds.map((hold) => hold.token),
          lockMs,
        )
        .then((failed) => {
          for (const hold of holds) {
            if (failed.includes(hold.job.id as string)) loseLock(hold, 'its lock was taken over (it expired), so it was stopped');
            else hold.renewedAt = now;
          }
        })
        .catch(() => undefined)
        .finally(() => (renewing = false));
    }, Math.max(50, Math.round(lockMs / 12)));

    const onSignal = (signal: NodeJS.Signals): void => stop(signal === 'SIGINT' ? 'SIGINT' : 'SIGTERM', signal);
    const onAbort = (): void => stop('abort', 'SIGTERM');
    if (settings.handleSignals) {
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
    }
    if (settings.signal?.aborted) onAbort();
    settings.signal?.addEventListener('abort', onAbort);

    let counts = initial;
    try {
      if (stats.done + stats.failed < clusters && stoppedBy === null) {
        worker = new Worker<ClusterJobData, AttemptRecord>(queue.name, processCluster, {
          connection,
          prefix: QUEUE_PREFIX,
          name: queue.host,
          autorun: false,
          concurrency: settings.jobs,
          lockDuration: lockMs,
          // The runner renews its locks itself (above), so it knows when one may have expired.
          skipLockRenewal: true,
          stalledInterval: stalledIntervalMs(lockMs),
          maxStalledCount: MAX_RUNNER_DEATHS,
          // Seconds the fetch waits on an empty queue; shorter makes a finished runner exit sooner.
          drainDelay: 1,
          // A finished cluster's result is written again this soon after Redis comes back.
          runRetryDelay: Math.min(1_000, lockMs / 4),
          settings: { backoffStrategy: (attemptsMade: number) => retryDelay(settings, attemptsMade) },
        });
        worker.on('error', () => undefined);
        // A cluster this runner finished may be the last one: look at once rather than at the next poll.
        worker.on('completed', notify);
        worker.on('failed', notify);
        void worker.run().catch((error: unknown) => {
          fatal ??= error;
          stop('abort', 'SIGTERM');
        });
      }
      let connected = true;
      // Done when every cluster is done or failed for good, by any runner, and nothing runs here.
      while (!(held.size === 0 && (stoppedBy !== null || (counts.completed ?? 0) + (counts.failed ?? 0) >= clusters))) {
        await Promise.race([sleep(STATE_POLL_MS), changes.next]);
        try {
          counts = await jobs.getJobCounts('completed', 'failed');
          stats.done = counts.completed ?? 0;
          stats.failed = counts.failed ?? 0;
          stats.doneThisRun = stats.done - doneBefore;
          if (!connected) emit({ type: 'connection', state: 'back', address: queue.address, error: null, stats: snapshot() });
          connected = true;
        } catch (error) {
          if (connected) emit({ type: 'connection', state: 'lost', address: queue.address, error: (error as Error).message, stats: snapshot() });
          connected = false;
        }
      }
      await worker?.close();
    } finally {
      clearInterval(watchLocks);
      memoryWatch.stop();
      if (settings.handleSignals) {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
      settings.signal?.removeEventListener('abort', onAbort);
      await worker?.close().catch(() => undefined);
    }
    if (fatal !== null) throw fatal;

    const final = await jobs.getJobCounts('completed', 'failed');
    const failedClusters = (await jobs.getFailed(0, -1)).map((job) => job.data.cluster).sort((a, b) => a - b);
    const done = final.completed ?? 0;
    const ok = done === clusters;
    const finalStop = stoppedBy as StopReason | null;
    return {
      ok,
      clusters,
      done,
      doneBefore,
      failed: failedClusters.length,
      notStarted: Math.max(0, clusters - done - failedClusters.length),
      failedClusters,
      attempts: attemptsStarted,
      stoppedBy: finalStop,
      orphansStopped: 0,
      tornLines: 0,
      log: null,
      queue: { url: queue.address, name: queue.name, host: queue.host },
      oldLog: null,
      outputDir,
      durationMs: Date.now() - startedAt,
      scanMs: Math.round(scanMs * 10) / 10,
      runnerPeakRss: process.resourceUsage().maxRSS * 1024,
      exitCode: ok ? 0 : finalStop === 'SIGINT' ? 130 : finalStop === 'SIGTERM' ? 143 : 1,
    };
  } finally {
    await executor?.close();
    await jobs.close().catch(() => undefined);
    redis.disconnect();
  }
}

/** --fresh is refused while clusters of the job run: replacing it under them would run clusters twice. */
async function refuseIfBusy(jobs: ClusterQueue, queue: QueueSettings): Promise<void> {
  const running = await jobs.getActiveCount();
  if (running > 0) throw new QueueBusyError(queue.name, queue.address, running);
}

/** --fresh: removes the job and everything the queue knows of it (BullMQ refuses while clusters run). */
async function startOver(redis: Redis, jobs: ClusterQueue, queue: QueueSettings): Promise<void> {
  await refuseIfBusy(jobs, queue);
  try {
    await jobs.obliterate({ force: false });
  } catch {
    throw new QueueBusyError(queue.name, queue.address, await jobs.getActiveCount());
  }
  const keys = jobKeys(queue.name);
  await redis.del(keys.identity, keys.enqueued);
  // obliterate pauses the queue first; the new job must run.
  await jobs.resume();
}

/**
 * Enqueues clusters 1..N once: ids are the cluster numbers, so a runner adding a cluster another
 * already added (or finished) changes nothing. A marker saves later runners the N round trips.
 */
async function enqueue(redis: Redis, jobs: ClusterQueue, name: string, clusters: number): Promise<void> {
  const { enqueued } = jobKeys(name);
  if ((await redis.exists(enqueued)) === 1) return;
  for (let first = 1; first <= clusters; first += ENQUEUE_BATCH) {
    const batch = [];
    for (let cluster = first; cluster < first + ENQUEUE_BATCH && cluster <= clusters; cluster += 1) {
      batch.push({
        name: 'cluster',
        data: { cluster, total: clusters },
        opts: { jobId: jobId(cluster), attempts: UNLIMITED_ATTEMPTS, backoff: { type: 'cluster-run' }, removeOnComplete: false, removeOnFail: false },
      });
    }
    await jobs.addBulk(batch);
  }
  await redis.set(enqueued, String(clusters));
}

/**
 * A rerun retries the clusters that failed for good before it started (as a rerun of the local
 * mode does), each once however many runners start together: only failures older than this
 * runner qualify, and BullMQ moves a job out of the failed set only once.
 */
async function retryFailedBefore(jobs: ClusterQueue, startedAt: number): Promise<void> {
  if ((await jobs.getFailedCount()) === 0) return;
  for (const job of await jobs.getFailed(0, -1)) {
    if ((job.finishedOn ?? 0) >= startedAt) continue;
    await job.retry('failed', { resetAttemptsMade: true }).catch(() => undefined);
  }
}

/** The failure as BullMQ records it (failedReason): how it ended, then the last lines of its stderr. */
function failureText(record: AttemptRecord): string {
  const how =
    record.why === 'timeout'
      ? 'timed out'
      : record.why === 'rss-limit'
        ? 'stopped over --max-rss'
        : record.signal
          ? `killed by ${record.signal}`
          : record.error && record.exitCode == null
            ? (record.error.split('\n')[0] ?? record.error)
            : `exit code ${record.exitCode}`;
  return `${how} on ${record.host} (attempt ${record.attempt})${record.stderrTail ? `\n${record.stderrTail}` : ''}`;
}

/** The last lines of a file, at most TAIL_LINES and TAIL_BYTES; empty when there is none. */
function tail(path: string): string {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return '';
  }
  try {
    const size = fstatSync(fd).size;
    const length = Math.min(size, TAIL_BYTES);
    const buffer = Buffer.alloc(length);
    readSync(fd, buffer, 0, length, size - length);
    const lines = buffer.toString('utf8').replace(/\n$/, '').split('\n');
    if (length < size) lines.shift(); // cut mid-line
    return lines.slice(-TAIL_LINES).join('\n');
  } finally {
    closeSync(fd);
  }
}
