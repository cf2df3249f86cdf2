import { existsSync, readFileSync, readdirSync } from 'node:fs';

/** One process as Linux's /proc/PID/stat shows it. */
export interface ProcessInfo {
  readonly pid: number;
  readonly ppid: number;
  /** Process group: the runner starts each cluster as the leader of its own group. */
  readonly pgid: number;
  /** R, S, D, Z (zombie), ... */
  readonly state: string;
  /** Start time in clock ticks since boot: with the pid, it names one process even after the pid is reused. */
  readonly startTime: number;
  readonly rssBytes: number;
}

/** Whether this machine has Linux's /proc, which process start times and tree RSS come from. */
export const hasProc: boolean = existsSync('/proc/self/stat');

let pageSizeBytes: number | undefined;

/** Pages to bytes: statm and stat count pages, status counts kB; their ratio is the page size (4k, 16k or 64k). */
function pageSize(): number {
  if (pageSizeBytes !== undefined) return pageSizeBytes;
  pageSizeBytes = 4096;
  try {
    const rssKb = Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'latin1'))?.[1]);
    const rssPages = Number(readFileSync('/proc/self/statm', 'latin1').split(' ')[1]);
    if (rssKb > 0 && rssPages > 0) pageSizeBytes = 2 ** Math.round(Math.log2((rssKb * 1024) / rssPages));
  } catch {
    // keep 4k, the page size of nearly every x86-64 and arm64 Linux
  }
  return pageSizeBytes;
}

/** Reads one process, or null when it does not exist (or /proc is missing). */
export function readProcess(pid: number): ProcessInfo | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return null;
  }
  return parseStat(text);
}

function parseStat(text: string): ProcessInfo | null {
  // The command name sits in parentheses and may hold spaces or parentheses itself.
  const close = text.lastIndexOf(')');
  if (close < 0) return null;
  const pid = Number(text.slice(0, text.indexOf(' ')));
  const fields = text.slice(close + 2).split(' ');
  if (fields.length < 22) return null;
  return {
    pid,
    state: fields[0] ?? '?',
    ppid: Number(fields[1]),
    pgid: Number(fields[2]),
    startTime: Number(fields[19]),
    rssBytes: Number(fields[21]) * pageSize(),
  };
}

/** The start time of a process that just started, for its start record; null without /proc. */
export function processStartTime(pid: number): number | null {
  return readProcess(pid)?.startTime ?? null;
}

/** True while the process is running (not a zombie) and is the one that started at `startTime`. */
export function isRunning(pid: number, startTime: number | null): boolean {
  if (!hasProc || startTime === null) return false;
  const info = readProcess(pid);
  return info !== null && info.startTime === startTime && !isDead(info.state);
}

/** A zombie has exited and only waits to be reaped: children of a dead runner may stay so if pid 1 never reaps. */
export function isDead(state: string): boolean {
  return state === 'Z' || state === 'X' || state === 'x';
}

/** Every live process on the machine (one pass over /proc). */
export function listProcesses(): ProcessInfo[] {
  if (!hasProc) return [];
  const found: ProcessInfo[] = [];
  for (const name of readdirSync('/proc')) {
    const code = name.charCodeAt(0);
    if (code < 48 || code > 57) continue;
    let text: string;
    try {
      text = readFileSync(`/proc/${name}/stat`, 'latin1');
    } catch {
      continue; // it exited while we looked
    }
    const info = parseStat(text);
    if (info && !isDead(info.state)) found.push(info);
  }
  return found;
}

/**
 * The value of one variable in the process's environment, as it was when the process started; null
 * when it is not set or the file is unreadable (another user's process, unless run as root). The
 * kernel hands over the whole environment; only the entry for `name` is picked out, nothing else is kept.
 */
export function environmentValue(pid: number, name: string): string | null {
  let environ: string;
  try {
    environ = readFileSync(`/proc/${pid}/environ`, 'utf8');
  } catch {
    return null;
  }
  const prefix = `${name}=`;
  for (const entry of environ.split('\0')) {
    if (entry.startsWith(prefix)) return entry.slice(prefix.length);
  }
  return null;
}

/** Resident memory of each process group among `pgids`, summed over the group's live members. */
export function groupRss(pgids: ReadonlySet<number>): Map<number, number> {
  const totals = new Map<number, number>();
  if (pgids.size === 0) return totals;
  for (const info of listProcesses()) {
    if (pgids.has(info.pgid)) totals.set(info.pgid, (totals.get(info.pgid) ?? 0) + info.rssBytes);
  }
  return totals;
}

/** This process's start time, for the lock file. */
export function ownStartTime(): number | null {
  return processStartTime(process.pid);
}
