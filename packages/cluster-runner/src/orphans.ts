import { setTimeout as sleep } from 'node:timers/promises';
import type { StartRecord } from './log.js';
import { environmentValue, hasProc, listProcesses, readProcess, type ProcessInfo } from './proc.js';

/** The environment variable that marks every process a runner starts with the log it belongs to. */
export const LOG_VARIABLE = 'CLUSTER_RUN_LOG';

/** A process a dead runner left behind. */
export interface Orphan {
  readonly pid: number;
  readonly startTime: number;
  /** The cluster it was running, from its start record; null when the log cannot tell. */
  readonly cluster: number | null;
}

const POLL_MS = 50;
/** After SIGKILL the kernel needs a moment; a process that outlives this is stuck (state D) and the run refuses to go on. */
const KILL_WAIT_MS = 10_000;

/**
 * Finds the processes of clusters that a runner of this log started and that are still alive:
 * the pids of open start records (checked against their start time, so a reused pid is left
 * alone), the members of their process groups, and any process carrying this log in its
 * environment (one started in the instant between its launch and start records).
 */
export function findOrphans(log: string, open: ReadonlyMap<number, StartRecord>): Orphan[] {
  // Every attempt of the log ended, so none of its processes can be alive: no scan, and no reading
  // of other processes' environments.
  if (!hasProc || open.size === 0) return [];
  const byGroup = new Map<number, StartRecord>();
  const unnamed: StartRecord[] = [];
  for (const start of open.values()) {
    if (start.pid !== null && start.pidStart !== null) byGroup.set(start.pid, start);
    else unnamed.push(start);
  }
  // A process the log does not name by pid runs an attempt that was launched and never recorded as
  // started: its cluster is known when only one such attempt is open.
  const unnamedCluster = unnamed.length === 1 ? (unnamed[0]?.cluster ?? null) : null;
  const found: Orphan[] = [];
  for (const info of listProcesses()) {
    if (info.pid === process.pid) continue;
    const start = byGroup.get(info.pgid) ?? byGroup.get(info.pid);
    if (start && belongsTo(info, start)) {
      found.push({ pid: info.pid, startTime: info.startTime, cluster: start.cluster });
    } else if (environmentValue(info.pid, LOG_VARIABLE) === log) {
      // Only this one variable is read. Run as root, this reads it from every user's processes.
      found.push({ pid: info.pid, startTime: info.startTime, cluster: unnamedCluster });
    }
  }
  return found;
}

/**
 * A process belongs to a start record if it is that process, or a member of its process group
 * that started after it. A pid is never reused while its process group lives, so the group test
 * cannot catch a stranger.
 */
function belongsTo(info: ProcessInfo, start: StartRecord): boolean {
  if (start.pidStart === null) return false;
  if (info.pid === start.pid) return info.startTime === start.pidStart;
  return info.pgid === start.pid && info.startTime >= start.pidStart;
}

/**
 * Stops the orphans of `log`: SIGTERM, then SIGKILL to those still alive after `graceMs`, and
 * waits until they are gone. Returns the signal each cluster's process got (null when none was
 * found alive). `onOrphan` hears of each process as it is found.
 */
export async function stopOrphans(
  log: string,
  open: ReadonlyMap<number, StartRecord>,
  graceMs: number,
  onOrphan: (orphan: Orphan) => void,
): Promise<Map<number, 'SIGTERM' | 'SIGKILL'>> {
  const signalled = new Map<number, 'SIGTERM' | 'SIGKILL'>();
  const seen = new Set<string>();
  const began = Date.now();
  for (;;) {
    const orphans = findOrphans(log, open);
    if (orphans.length === 0) return signalled;
    const elapsed = Date.now() - began;
    if (elapsed > graceMs + KILL_WAIT_MS) {
      const pids = orphans.map((orphan) => orphan.pid).join(', ');
      throw new Error(`Processes left by a dead run of "${log}" do not exit even after SIGKILL: pid ${pids}`);
    }
    const signal = elapsed >= graceMs ? 'SIGKILL' : 'SIGTERM';
    for (const orphan of orphans) {
      const key = `${orphan.pid}:${orphan.startTime}`;
      const first = !seen.has(key);
      if (first) {
        seen.add(key);
        onOrphan(orphan);
      }
      if (!first && signal === 'SIGTERM') continue;
      // Checked again just before the signal: the pid must still be the same process.
      if (readProcess(orphan.pid)?.startTime !== orphan.startTime) continue;
      try {
        process.kill(orphan.pid, signal);
      } catch {
        continue; // it exited meanwhile
      }
      if (orphan.cluster !== null && signalled.get(orphan.cluster) !== 'SIGKILL') signalled.set(orphan.cluster, signal);
    }
    await sleep(POLL_MS);
  }
}
