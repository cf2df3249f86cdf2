import { mkdirSync, renameSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pLimit from 'p-limit';
import { LogMismatchError, WorkerModuleError } from './errors.js';
import type { ProgressEvent, RunStats, StopReason } from './events.js';
import { outputPaths, removeIfEmpty, RunChanges, stopAttemptProcesses, type Execution, type Executor } from './executor.js';
import { lockLog } from './lock.js';
import {
  DONE,
  NOT_DONE,
  NOT_STARTED,
  LogWriter,
  describeJob,
  fileStamp,
  readLog,
  setLogAside,
  type EndReason,
  type LogState,
  type RunRecord,
} from './log.js';
import { TreeMemoryWatch, availableMemory } from './memory.js';
import { normalizeRunOptions, type RunOptions, type RunSettings } from './options.js';
import { LOG_VARIABLE, stopOrphans } from './orphans.js';
import { prepareOutputFolder, type OutputFolder } from './output-folder.js';
import { clusterPool } from './pools.js';

/** What a run did, and where the job stands. */
export interface RunSummary {
  /** True when every cluster is done: the only case the CLI exits 0. */
  readonly ok: boolean;
  readonly clusters: number;
  /** Done clusters, by this run or earlier ones. */
  readonly done: number;
  /** Done clusters this run skipped because earlier runs did them. */
  readonly doneBefore: number;
  /** Clusters tried and not done: failed, timed out, stopped over memory or interrupted. */
  readonly failed: number;
  /** Clusters never started (the run was stopped or halted first). */
  readonly notStarted: number;
  /** The clusters counted in `failed`, ascending. */
  readonly failedClusters: readonly number[];
  /** Attempts this run started. */
  readonly attempts: number;
  /** Why the run stopped early, or null. */
  readonly stoppedBy: StopReason | null;
  /** Processes left running by a runner that died, which this run stopped first. */
  readonly orphansStopped: number;
  /** Log lines skipped because a crash tore them. */
  readonly tornLines: number;
  /** The log's path; null in queue mode. */
  readonly log: string | null;
  /** Queue mode: the queue (its URL without a password), the job's name and this runner's host name; null in local mode. */
  readonly queue: { readonly url: string; readonly name: string; readonly host: string } | null;
  /** Where --fresh moved the old log, or null. */
  readonly oldLog: string | null;
  readonly outputDir: string;
  readonly durationMs: number;
  /** Time spent reading the log (or the queue's state) to resume. */
  readonly scanMs: number;
  /** The runner's own peak resident memory, in bytes. */
  readonly runnerPeakRss: number;
  /** 0 when every cluster is done, 130 or 143 after SIGINT or SIGTERM, 1 otherwise. */
  readonly exitCode: number;
}

/** An attempt in flight, and what the runner knows about it. */
interface RunningAttempt {
  readonly cluster: number;
  readonly attempt: number;
  readonly execution: Execution;
  /** Set when the runner decided to stop it, which then says why it ended. */
  stopReason: EndReason | null;
  peakRss: number | null;
  killTimer: NodeJS.Timeout | null;
}

const MAX_RETRY_DELAY_MS = 60_000;
const MEMORY_POLL_MS = 250;

/**
 * Runs clusters 1..N of a job as child processes (or worker-mode clusters), `jobs` at a time,
 * resuming from the log: clusters the log shows done are skipped, the rest run. Resolves with a
 * summary once every cluster has been tried, or the run was stopped; rejects when the run cannot
 * start (bad option, log of another job, log held by another runner).
 */
export async function runClusters(options: RunOptions): Promise<RunSummary> {
  return runWithSettings(normalizeRunOptions(options));
}

/** {@link runClusters} with options already checked (the CLI checks them under its own flag names). */
export async function runWithSettings(settings: RunSettings): Promise<RunSummary> {
  if (settings.queue !== null) {
    // Loaded only here, so a local run never loads the Redis client.
    const { runQueued } = await import('./queue-runner.js');
    return runQueued(settings, settings.queue);
  }
  const startedAt = Date.now();
  const log = settings.log as string;
  mkdirSync(dirname(log), { recursive: true });
  const lock = await lockLog(log);
  try {
    return await run(settings, log, startedAt);
  } finally {
    lock.release();
  }
}

async function run(settings: RunSettings, log: string, startedAt: number): Promise<RunSummary> {
  const { clusters } = settings;
  const identity: Omit<RunRecord, 'time'> = {
    event: 'run',
    version: 1,
    clusters,
    command: settings.command,
    shell: settings.shell,
    worker: settings.worker,
    pid: process.pid,
    host: hostname(),
  };

  const scanBegan = performance.now();
  let state: LogState | null = readLog(log);
  const scanMs = performance.now() - scanBegan;
  const tornLines = state?.tornLines ?? 0;
  if (state !== null && !settings.fresh && describeJob(state.identity) !== describeJob(identity)) {
    throw new LogMismatchError(log, describeJob(state.identity), describeJob(identity));
  }

  let orphansStopped = 0;
  const stats = { done: 0, failed: 0, running: 0, doneThisRun: 0 };
  const snapshot = (): RunStats => ({ clusters, ...stats, startedAt });
  const emit = (event: ProgressEvent): void => settings.onProgress?.(event);

  // Children of a runner that died may still run their clusters: stop them before anything runs
  // again, and close their attempts in the log they belong to.
  const leftOpen = state?.open ?? new Map();
  const signalled = await stopOrphans(log, leftOpen, settings.graceMs, (orphan) => {
    orphansStopped += 1;
    emit({ type: 'orphan', cluster: orphan.cluster, pid: orphan.pid, stats: snapshot() });
  });
  let writer: LogWriter | null = null;
  if (state !== null && leftOpen.size > 0) {
    writer = new LogWriter(log, state.endsWithNewline);
    for (const start of leftOpen.values()) {
      writer.appendDurable({
        event: 'end',
        cluster: start.cluster,
        attempt: start.attempt,
        why: 'interrupted',
        exitCode: null,
        signal: signalled.get(start.cluster) ?? null,
        durationMs: Math.max(0, Date.now() - Date.parse(start.time)),
        peakRss: null,
        error: 'the runner died while this attempt ran',
        time: new Date().toISOString(),
      });
    }
  }

  const defaultOutputDir = `${log}.output`;
  let oldLog: string | null = null;
  if (state !== null && settings.fresh) {
    await writer?.close();
    writer = null;
    oldLog = setLogAside(log, fileStamp());
    state = null;
  }
  const outputDir = settings.outputDir ?? defaultOutputDir;
  let outputFolder: OutputFolder | null = null;
  let opening: Executor | null = null;
  try {
    outputFolder = prepareOutputFolder(outputDir, oldLog !== null && settings.outputDir === null ? `${oldLog}.output` : null);
    opening = clusterPool(settings, { [LOG_VARIABLE]: log }, outputDir, false);
    await opening.open();
  } catch (error) {
    // Refused before the run record: the log shows nothing of a run that never started, and the
    // disk is as it was. A --fresh's old log goes back first (it is what a rerun resumes from),
    // then the output folders; the refusal is what the caller learns, whatever the clean-up meets.
    await opening?.close();
    await writer?.close();
    if (oldLog !== null) {
      try {
        renameSync(oldLog, log);
      } catch {
        // Left where it is (its name ends in the time it was set aside): the refusal is the error.
      }
    }
    outputFolder?.undo();
    throw error;
  }
  const executor = opening;

  writer ??= new LogWriter(log, state?.endsWithNewline ?? true);
  const resumeLog = writer;
  resumeLog.appendDurable({ ...identity, time: new Date().toISOString() });

  const status = state?.status ?? new Uint8Array(clusters + 1);
  const attempts = state?.attempts ?? new Uint32Array(clusters + 1);
  for (let cluster = 1; cluster <= clusters; cluster += 1) if (status[cluster] === DONE) stats.done += 1;
  const doneBefore = stats.done;

  const running = new Map<number, RunningAttempt>();
  const retryTimers = new Set<NodeJS.Timeout>();
  const retriesUsed = new Map<number, number>();
  let attemptsStarted = 0;
  let failedThisRun = 0;
  let stoppedBy: StopReason | null = null;
  /** The signal the stop sends to running clusters: null for halt soon, which lets them finish. */
  let stopSignal: NodeJS.Signals | null = null;
  let fatal: unknown = null;

  // Everything that waits (the feeder, the memory gate) wakes on any change.
  const changes = new RunChanges();
  const notify = (): void => changes.notify();

  const stopAttempt = (attempt: RunningAttempt, reason: EndReason, signal: NodeJS.Signals): void =>
    stopAttemptProcesses(attempt, reason, signal, settings.graceMs);

  const stop = (reason: StopReason, signal: NodeJS.Signals | null): void => {
    if (stoppedBy !== null) {
      if (signal === null) return;
      if (stopSignal === null) {
        // A signal after a halt that let the running clusters finish: now they are stopped too.
        stopSignal = signal;
        for (const attempt of running.values()) stopAttempt(attempt, 'interrupted', signal);
      } else {
        // A second SIGINT or SIGTERM: the user will not wait for the grace period.
        for (const attempt of running.values()) stopAttempt(attempt, 'interrupted', 'SIGKILL');
      }
      return;
    }
    stoppedBy = reason;
    stopSignal = signal;
    emit({ type: 'stopping', reason, stats: snapshot() });
    for (const timer of retryTimers) clearTimeout(timer);
    retryTimers.clear();
    if (signal !== null) for (const attempt of running.values()) stopAttempt(attempt, 'interrupted', signal);
    notify();
  };

  const memoryWatch = new TreeMemoryWatch((samples) => {
    for (const attempt of running.values()) {
      const pid = attempt.execution.pid;
      const rss = pid === null ? undefined : samples.get(pid);
      if (rss === undefined) continue;
      if (attempt.peakRss === null || rss > attempt.peakRss) attempt.peakRss = rss;
      if (settings.maxRss !== null && rss > settings.maxRss) stopAttempt(attempt, 'rss-limit', 'SIGTERM');
    }
  });

  const waitForMemory = async (): Promise<void> => {
    if (settings.memFree === null) return;
    let announced = false;
    while (stoppedBy === null) {
      const available = availableMemory();
      if (available >= settings.memFree) return;
      if (!announced) emit({ type: 'memory-wait', availableBytes: available, memFree: settings.memFree, stats: snapshot() });
      announced = true;
      await Promise.race([sleep(MEMORY_POLL_MS), changes.next]);
    }
  };

  const runAttempt = async (cluster: number): Promise<void> => {
    await waitForMemory();
    if (stoppedBy !== null) return;
    const attempt = (attempts[cluster] ?? 0) + 1;
    attempts[cluster] = attempt;
    const paths = outputPaths(outputDir, cluster, attempt);
    const plan = { cluster, total: clusters, attempt, ...paths };
    const began = Date.now();
    if (status[cluster] === NOT_STARTED) status[cluster] = NOT_DONE;
    resumeLog.append({ event: 'launch', cluster, attempt, time: new Date(began).toISOString() });
    let execution: Execution;
    try {
      execution = await executor.launch(plan);
    } catch (error) {
      if (error instanceof WorkerModuleError) throw error;
      execution = {
        pid: null,
        pidStart: null,
        finished: Promise.resolve({ exitCode: null, signal: null, error: String((error as Error).message), reportedRss: null }),
      };
    }
    attemptsStarted += 1;
    resumeLog.append({
      event: 'start',
      cluster,
      attempt,
      pid: execution.pid,
      pidStart: execution.pidStart,
      time: new Date(began).toISOString(),
    });
    const current: RunningAttempt = { cluster, attempt, execution, stopReason: null, peakRss: null, killTimer: null };
    running.set(cluster, current);
    stats.running = running.size;
    emit({ type: 'start', cluster, attempt, pid: execution.pid, stats: snapshot() });
    // A stop that came while this attempt was being launched applies to it too.
    if (stopSignal !== null) stopAttempt(current, 'interrupted', stopSignal);
    const timeout =
      settings.timeoutMs === null ? null : setTimeout(() => stopAttempt(current, 'timeout', 'SIGTERM'), settings.timeoutMs);
    if (execution.pid !== null) memoryWatch.watch(execution.pid);

    const outcome = await execution.finished;

    if (timeout !== null) clearTimeout(timeout);
    if (current.killTimer !== null) clearTimeout(current.killTimer);
    if (execution.pid !== null) memoryWatch.unwatch(execution.pid);
    running.delete(cluster);
    stats.running = running.size;
    removeIfEmpty(paths.stdoutPath);
    removeIfEmpty(paths.stderrPath);

    // Exit code 0 is the only proof of a finished cluster, even one that was being stopped.
    const why: EndReason = outcome.exitCode === 0 && outcome.error === null ? 'ok' : (current.stopReason ?? 'failed');
    const peakRss =
      outcome.reportedRss !== null && (current.peakRss === null || outcome.reportedRss > current.peakRss)
        ? outcome.reportedRss
        : current.peakRss;
    const durationMs = Date.now() - began;
    resumeLog.appendDurable({
      event: 'end',
      cluster,
      attempt,
      why,
      exitCode: outcome.exitCode,
      signal: outcome.signal,
      durationMs,
      peakRss,
      ...(outcome.error !== null ? { error: outcome.error } : {}),
      time: new Date().toISOString(),
    });

    let retryInMs: number | null = null;
    if (why === 'ok') {
      status[cluster] = DONE;
      stats.done += 1;
      stats.doneThisRun += 1;
    } else {
      const used = retriesUsed.get(cluster) ?? 0;
      if (why !== 'interrupted' && stoppedBy === null && used < settings.retries) {
        retriesUsed.set(cluster, used + 1);
        retryInMs = Math.min(settings.retryDelayMs * 2 ** used, MAX_RETRY_DELAY_MS);
        const timer = setTimeout(() => {
          retryTimers.delete(timer);
          schedule(cluster);
        }, retryInMs);
        retryTimers.add(timer);
      } else {
        stats.failed += 1;
        if (why !== 'interrupted') failedThisRun += 1;
      }
    }
    emit({
      type: 'end',
      cluster,
      attempt,
      why,
      exitCode: outcome.exitCode,
      signal: outcome.signal,
      durationMs,
      peakRss,
      error: outcome.error,
      retryInMs,
      stats: snapshot(),
    });
    if (settings.halt !== null && failedThisRun >= settings.halt.failAt && stoppedBy === null) {
      stop('halt', settings.halt.when === 'now' ? 'SIGTERM' : null);
    }
  };

  const limit = pLimit(settings.jobs);
  let outstanding = 0;
  const schedule = (cluster: number): void => {
    outstanding += 1;
    limit(() => runAttempt(cluster))
      .catch((error: unknown) => {
        fatal ??= error;
        stop('abort', 'SIGTERM');
      })
      .finally(() => {
        outstanding -= 1;
        notify();
      });
  };

  const onSignal = (signal: NodeJS.Signals): void => stop(signal === 'SIGINT' ? 'SIGINT' : 'SIGTERM', signal);
  const onAbort = (): void => stop('abort', 'SIGTERM');
  if (settings.handleSignals) {
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }
  if (settings.signal?.aborted) onAbort();
  settings.signal?.addEventListener('abort', onAbort);

  try {
    // Feed p-limit lazily, a few clusters ahead, so a million-cluster job holds no million closures.
    for (let cluster = 1; cluster <= clusters && stoppedBy === null; cluster += 1) {
      if (status[cluster] === DONE) continue;
      while (limit.pendingCount >= settings.jobs && stoppedBy === null) await changes.next;
      if (stoppedBy === null) schedule(cluster);
    }
    while (outstanding > 0 || retryTimers.size > 0) await changes.next;
  } finally {
    if (settings.handleSignals) {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
    settings.signal?.removeEventListener('abort', onAbort);
    memoryWatch.stop();
    await executor.close();
    await resumeLog.close();
  }
  if (fatal !== null) throw fatal;

  const failedClusters: number[] = [];
  let notStarted = 0;
  for (let cluster = 1; cluster <= clusters; cluster += 1) {
    if (status[cluster] === NOT_DONE) failedClusters.push(cluster);
    else if (status[cluster] === NOT_STARTED) notStarted += 1;
  }
  const ok = stats.done === clusters;
  const finalStop = stoppedBy as StopReason | null;
  return {
    ok,
    clusters,
    done: stats.done,
    doneBefore,
    failed: failedClusters.length,
    notStarted,
    failedClusters,
    attempts: attemptsStarted,
    stoppedBy: finalStop,
    orphansStopped,
    tornLines,
    log,
    queue: null,
    oldLog,
    outputDir,
    durationMs: Date.now() - startedAt,
    scanMs: Math.round(scanMs * 10) / 10,
    runnerPeakRss: process.resourceUsage().maxRSS * 1024,
    exitCode: ok ? 0 : finalStop === 'SIGINT' ? 130 : finalStop === 'SIGTERM' ? 143 : 1,
  };
}
