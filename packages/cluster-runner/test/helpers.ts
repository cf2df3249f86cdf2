import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { makeTempDir, type TempDir } from '@sitecache/test-services';

/** A test's own folder, with the paths of its job's log and of the stamps its clusters leave. */
export async function jobFolder(name: string): Promise<{ dir: TempDir; log: string; stamps: string }> {
  const dir = await makeTempDir(name);
  return { dir, log: join(dir.path, 'job.log'), stamps: join(dir.path, 'stamps') };
}

/**
 * The CLI as users run it, from the source under test (through tsx's loader, resolved to an
 * absolute URL since tests run it in other folders), so that a test never runs a stale build. The
 * built files are tested where the build itself is the point: the CommonJS and lazy-loading tests
 * and the installed-packages test.
 */
const CLI = [
  '--import',
  pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href,
  fileURLToPath(new URL('../src/cli.ts', import.meta.url)),
];

/** A fixture script's absolute path. */
export function fixture(name: string): string {
  return fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));
}

type CliOptions = { reject: false; cwd?: string; env?: Record<string, string>; stdin: 'ignore' };

/** Starts `cluster-run ARGS` with extra environment for the clusters (and flags for node itself). */
export function cli(
  args: readonly string[],
  options: { cwd?: string; env?: Record<string, string>; nodeArgs?: readonly string[] } = {},
): ResultPromise<CliOptions> {
  const command = [...(options.nodeArgs ?? []), ...CLI, ...args];
  return execa(process.execPath, command, { reject: false, cwd: options.cwd, env: options.env, stdin: 'ignore' } satisfies CliOptions);
}

/** The log's records (torn lines left out). */
export function readRecords(log: string): Array<Record<string, unknown>> {
  const records: Array<Record<string, unknown>> = [];
  for (const line of readFileSync(log, 'utf8').split('\n')) {
    if (line === '') continue;
    try {
      records.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // torn
    }
  }
  return records;
}

export interface Stamp {
  readonly what: 'start' | 'end' | 'term';
  readonly cluster: number;
  readonly attempt: number;
  readonly pid: number;
}

/** The stamps clusters appended, in the order they happened. */
export function readStamps(path: string): Stamp[] {
  return stampLines(path).map((line) => {
    const [what, cluster, attempt, pid] = line.split(' ');
    return { what: what as Stamp['what'], cluster: Number(cluster), attempt: Number(attempt), pid: Number(pid) };
  });
}

/**
 * What the stamps prove went wrong: a cluster started while another copy of it still ran, an
 * attempt started twice, or a cluster started again after the attempt the log records as done.
 */
export function stampViolations(stamps: readonly Stamp[], log: string): string[] {
  const problems: string[] = [];
  const runningNow = new Map<number, Set<number>>();
  const startedAttempts = new Set<string>();
  const doneAttempt = new Map<number, number>();
  for (const record of readRecords(log)) {
    if (record.event === 'end' && record.why === 'ok') doneAttempt.set(record.cluster as number, record.attempt as number);
  }
  for (const stamp of stamps) {
    const running = runningNow.get(stamp.cluster) ?? new Set<number>();
    runningNow.set(stamp.cluster, running);
    if (stamp.what === 'start') {
      if (running.size > 0) problems.push(`cluster ${stamp.cluster} attempt ${stamp.attempt} started while pid ${[...running].join(',')} ran it`);
      const key = `${stamp.cluster}/${stamp.attempt}`;
      if (startedAttempts.has(key)) problems.push(`cluster ${stamp.cluster} attempt ${stamp.attempt} started twice`);
      startedAttempts.add(key);
      const done = doneAttempt.get(stamp.cluster);
      if (done !== undefined && stamp.attempt > done) problems.push(`cluster ${stamp.cluster} ran again (attempt ${stamp.attempt}) after attempt ${done} was done`);
      running.add(stamp.pid);
    } else {
      running.delete(stamp.pid);
    }
  }
  return problems;
}

/** How many times each cluster started, from the stamps. */
export function startsPerCluster(stamps: readonly Stamp[]): Map<number, number> {
  const counts = new Map<number, number>();
  for (const stamp of stamps) if (stamp.what === 'start') counts.set(stamp.cluster, (counts.get(stamp.cluster) ?? 0) + 1);
  return counts;
}

/** True while a process with this pid exists and is not a zombie. */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** Waits until `check` holds, polling (a check that throws, say on a file not there yet, does not hold); fails after `timeoutMs`. */
export async function waitFor(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const until = Date.now() + timeoutMs;
  const holds = (): boolean => {
    try {
      return check();
    } catch {
      return false;
    }
  };
  while (!holds()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A line a queue-mode cluster (fixtures/queue-child.mjs) appended to the shared stamps file. */
export interface QueueStamp {
  readonly what: 'start' | 'end' | 'twice' | 'dead';
  readonly cluster: number;
  readonly attempt: number;
  readonly pid: number;
  /** The runner's --host (start and end), or the other copy's pid (twice). */
  readonly host: string;
  /** 'ok' or 'failed' on an end. */
  readonly result: string;
}

export function readQueueStamps(path: string): QueueStamp[] {
  return stampLines(path).map((line) => {
    const [what, cluster, attempt, pid, host = '', result = ''] = line.split(' ');
    if (what === 'twice') return { what, cluster: Number(cluster), attempt: 0, pid: Number(attempt), host: pid ?? '', result: '' };
    return { what: what as QueueStamp['what'], cluster: Number(cluster), attempt: Number(attempt), pid: Number(pid), host, result };
  });
}

/**
 * Copies of one cluster that ran at the same time, from the stamps: a start while another process
 * had started the cluster and neither ended it nor was seen dead (`dead PID` lines, which a test
 * appends once it saw a killed runner's children gone), and every `twice` a child reported itself.
 */
export function overlaps(stamps: readonly QueueStamp[]): string[] {
  const problems: string[] = [];
  const running = new Map<number, Set<number>>();
  for (const stamp of stamps) {
    if (stamp.what === 'twice') {
      problems.push(`cluster ${stamp.cluster}: pid ${stamp.pid} found pid ${stamp.host} running it too`);
      continue;
    }
    if (stamp.what === 'dead') {
      for (const pids of running.values()) pids.delete(stamp.pid);
      continue;
    }
    const pids = running.get(stamp.cluster) ?? new Set<number>();
    running.set(stamp.cluster, pids);
    if (stamp.what === 'start') {
      if (pids.size > 0) problems.push(`cluster ${stamp.cluster} started on ${stamp.host} while pid ${[...pids].join(',')} ran it`);
      pids.add(stamp.pid);
    } else pids.delete(stamp.pid);
  }
  return problems;
}

/** The most clusters running at once, from the stamps (all runners, or the runners `hosts` names). */
export function peakConcurrency(stamps: readonly QueueStamp[], hosts?: ReadonlySet<string>): number {
  let running = 0;
  let peak = 0;
  for (const stamp of stamps) {
    if (hosts && !hosts.has(stamp.host)) continue;
    if (stamp.what === 'start') peak = Math.max(peak, ++running);
    else if (stamp.what === 'end') running -= 1;
  }
  return peak;
}

/** The lines clusters appended to a stamp file, none before the first cluster wrote one. */
function stampLines(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return [];
  }
  return text.split('\n').filter(Boolean);
}
