import { statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { EndReason } from './log.js';

/** One attempt at one cluster, as the runner hands it to a way of running clusters. */
export interface AttemptPlan {
  readonly cluster: number;
  readonly total: number;
  readonly attempt: number;
  readonly stdoutPath: string;
  readonly stderrPath: string;
}

/** How an attempt's process ended. */
export interface Outcome {
  readonly exitCode: number | null;
  readonly signal: string | null;
  /** Set when there is more to say than an exit code: it could not start, a worker's function threw. */
  readonly error: string | null;
  /** Resident memory a worker reported at the end of the cluster. */
  readonly reportedRss: number | null;
}

/** An attempt that is running. */
export interface Execution {
  /** The process running the cluster, leader of its own process group; null if it never started. */
  readonly pid: number | null;
  readonly pidStart: number | null;
  readonly finished: Promise<Outcome>;
}

/** A way of running clusters: a process per cluster, or a pool of long-lived workers. */
export interface Executor {
  /** Gets ready before any cluster starts; throws when clusters cannot run at all (a bad worker module). */
  open(): Promise<void>;
  launch(plan: AttemptPlan): Promise<Execution>;
  /** Ends what the executor keeps between clusters (idle workers). */
  close(): Promise<void>;
}

/**
 * The environment every cluster process gets: its cluster, and what owns it: the log
 * (`CLUSTER_RUN_LOG`, which the orphan checks look for) or the queue and job.
 */
export function clusterEnvironment(owner: Readonly<Record<string, string>>, plan: Pick<AttemptPlan, 'cluster' | 'total' | 'attempt'>): Record<string, string> {
  return {
    ...owner,
    CLUSTER_RUN_CLUSTER: `${plan.cluster}/${plan.total}`,
    CLUSTER_RUN_ATTEMPT: String(plan.attempt),
  };
}

/** Files of one attempt's output. Attempts get their own files, so a retry never hides why the last one failed. */
export function outputPaths(outputDir: string, cluster: number, attempt: number): { stdoutPath: string; stderrPath: string } {
  const base = join(outputDir, `cluster-${cluster}.attempt-${attempt}`);
  return { stdoutPath: `${base}.stdout`, stderrPath: `${base}.stderr` };
}

/** Sends `signal` to a cluster's whole process group, or to the process alone if it has no group. */
export function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

/** Removes an output file the cluster never wrote to: most clusters print nothing, and N empty files help no one. */
export function removeIfEmpty(path: string): void {
  try {
    if (statSync(path).size === 0) unlinkSync(path);
  } catch {
    // gone already
  }
}

/** What the runner knows of an attempt it started, enough to stop it. */
export interface StoppableAttempt {
  readonly execution: Execution;
  /** Set when the runner decided to stop it, which then says why it ended. */
  stopReason: EndReason | null;
  killTimer: NodeJS.Timeout | null;
}

/**
 * Stops an attempt's process group with `signal`, and with SIGKILL `graceMs` later unless that was
 * already the signal. The first reason given is the one its end record names.
 */
export function stopAttemptProcesses(attempt: StoppableAttempt, reason: EndReason, signal: NodeJS.Signals, graceMs: number): void {
  if (attempt.execution.pid === null) return;
  const pid = attempt.execution.pid;
  if (attempt.stopReason === null) attempt.stopReason = reason;
  signalGroup(pid, signal);
  if (signal !== 'SIGKILL' && attempt.killTimer === null) {
    attempt.killTimer = setTimeout(() => signalGroup(pid, 'SIGKILL'), graceMs);
  }
}

/** Wakes everything that waits for the run to change (a cluster ended, a slot freed, a stop). */
export class RunChanges {
  private wake: () => void = () => {};
  private pending = new Promise<void>((resolve) => (this.wake = resolve));

  /** Resolves at the next change. */
  get next(): Promise<void> {
    return this.pending;
  }

  notify(): void {
    const wake = this.wake;
    this.pending = new Promise<void>((resolve) => (this.wake = resolve));
    wake();
  }
}
