import { availableParallelism, hostname } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import { RunnerOptionError } from './errors.js';
import type { ProgressEvent } from './events.js';

/** When to stop a run early because clusters fail, as GNU parallel's `--halt`. */
export interface HaltPolicy {
  /** `now` stops running clusters at once (recorded as interrupted); `soon` lets them finish. */
  readonly when: 'now' | 'soon';
  /** How many clusters may fail before the run halts: a count, or a percentage such as `'10%'` of all clusters. */
  readonly fail: number | `${number}%`;
}

/** Options of {@link runClusters}. Durations are milliseconds or text such as `'30s'`; sizes bytes or text such as `'512M'`. */
export interface RunOptions {
  /** How many clusters the job has: the runner runs clusters 1..clusters. */
  clusters: number;
  /** The resume log: append-only JSON lines, the state of the job. Required unless `queue` is given. */
  log?: string;
  /**
   * Queue mode: the Redis that holds the job, as `redis://HOST:PORT/DB` (`rediss://` for TLS). Every
   * runner given the same queue and `name` works on the same clusters; the queue is the log.
   */
  queue?: string;
  /** Queue mode: the job's name on the queue (letters, digits, `.`, `_`, `-`). */
  name?: string;
  /** Queue mode: this runner's name in the queue's records (default: the machine's host name). */
  host?: string;
  /** Queue mode: how long a cluster's lock outlives its runner; a dead runner's clusters are taken up after it. */
  lockDuration?: number | string;
  /** The command and its arguments. `{}` becomes `i/N`, `{i}` and `{n}` its parts; with no placeholder `i/N` is appended. */
  command?: readonly string[];
  /** Worker mode: a module whose exported function runs one cluster in a long-lived Node worker. */
  worker?: string;
  /** How many clusters run at a time. */
  jobs?: number;
  /** Run the command through `/bin/sh -c`, its words joined by spaces. */
  shell?: boolean;
  /** Start over: the old log is renamed beside the new one instead of resumed. */
  fresh?: boolean;
  /** Where each cluster's stdout and stderr files go. */
  outputDir?: string;
  /** How many more times this run tries a cluster that did not finish. */
  retries?: number;
  /** Delay before the first retry of a cluster; it doubles for each further retry, up to a minute. */
  retryDelay?: number | string;
  /** Longest a cluster may run before it is stopped and recorded as `timeout`. */
  timeout?: number | string;
  /** Time between SIGTERM and SIGKILL when the runner stops a cluster. */
  grace?: number | string;
  /** Stop the run early after failures: `'now,fail=1'`, `'soon,fail=10%'`, or a {@link HaltPolicy}. */
  halt?: string | HaltPolicy;
  /** Start no cluster while the machine's available memory is below this. */
  memFree?: number | string;
  /** Stop a cluster whose process tree's resident memory passes this; in worker mode also replace the worker. */
  maxRss?: number | string;
  /** Worker mode: replace a worker after it has run this many clusters. */
  maxClustersPerWorker?: number;
  /** Working directory of the clusters. */
  cwd?: string;
  /** Extra environment variables for the clusters. */
  env?: Readonly<Record<string, string>>;
  /** Aborting it stops the run as SIGTERM would: running clusters are stopped and recorded as interrupted. */
  signal?: AbortSignal;
  /** Handle SIGINT and SIGTERM while the run lasts: stop launching, stop the clusters, record them. */
  handleSignals?: boolean;
  /** Called for each cluster that starts or ends, for progress displays. */
  onProgress?: (event: ProgressEvent) => void;
}

/** {@link RunOptions} checked and in one unit each: milliseconds, bytes, absolute paths. */
export interface RunSettings {
  readonly clusters: number;
  /** Null in queue mode. */
  readonly log: string | null;
  /** Null in local mode. */
  readonly queue: QueueSettings | null;
  readonly command: readonly string[] | null;
  readonly worker: string | null;
  readonly jobs: number;
  readonly shell: boolean;
  readonly fresh: boolean;
  /** Null when left to the default beside the log, which --fresh moves along with the log. */
  readonly outputDir: string | null;
  readonly retries: number;
  readonly retryDelayMs: number;
  readonly timeoutMs: number | null;
  readonly graceMs: number;
  readonly halt: { readonly when: 'now' | 'soon'; readonly failAt: number } | null;
  readonly memFree: number | null;
  readonly maxRss: number | null;
  readonly maxClustersPerWorker: number | null;
  readonly cwd: string;
  readonly env: Readonly<Record<string, string>>;
  readonly signal: AbortSignal | null;
  readonly handleSignals: boolean;
  readonly onProgress: ((event: ProgressEvent) => void) | null;
}

/** Where a queue-mode job lives, and who this runner is. */
export interface QueueSettings {
  /** As given; it may hold a password. */
  readonly url: string;
  /** The URL without its password, for messages and summaries. */
  readonly address: string;
  readonly name: string;
  readonly host: string;
  readonly lockDurationMs: number;
}

/** How an option is called where it came from: `jobs` in the API, `--jobs` on the command line. */
export type OptionNamer = (key: keyof RunOptions) => string;

const apiName: OptionNamer = (key) => key;

/** Checks every option and fills the defaults; the first bad option throws a {@link RunnerOptionError}. */
export function normalizeRunOptions(options: RunOptions, name: OptionNamer = apiName): RunSettings {
  const clusters = wholeNumber(name('clusters'), options.clusters, 1);
  const queue = queueSettings(options, name);
  if (queue !== null && options.log !== undefined) {
    throw new RunnerOptionError(name('log'), `no log with ${name('queue')}: the queue is the log`, options.log);
  }
  if (queue === null && (typeof options.log !== 'string' || options.log === '')) {
    throw new RunnerOptionError(name('log'), 'the path of the log file', options.log);
  }
  if (queue !== null && options.halt !== undefined) {
    // Each runner would halt on its own failures only, while the others go on: not what halt promises.
    throw new RunnerOptionError(name('halt'), `no halt policy with ${name('queue')}`, options.halt);
  }
  const cwd = options.cwd === undefined ? process.cwd() : resolve(options.cwd);
  const worker = options.worker === undefined ? null : options.worker;
  if (worker !== null && (typeof worker !== 'string' || worker === '')) {
    throw new RunnerOptionError(name('worker'), 'the path of a module', worker);
  }
  const command = options.command === undefined ? null : [...options.command];
  if (worker === null && (command === null || command.length === 0)) {
    throw new RunnerOptionError(name('command'), 'a command to run for each cluster (or a worker module)', command ?? undefined);
  }
  if (worker !== null && command !== null && command.length > 0) {
    throw new RunnerOptionError(name('command'), 'no command in worker mode: the worker module runs the clusters', command);
  }
  if (command !== null && command.some((word) => typeof word !== 'string')) {
    throw new RunnerOptionError(name('command'), 'a list of strings', command);
  }
  const retryDelayMs = duration(name('retryDelay'), options.retryDelay, 1_000);
  const timeoutMs = options.timeout === undefined ? null : duration(name('timeout'), options.timeout, 0);
  if (timeoutMs === 0) throw new RunnerOptionError(name('timeout'), 'a duration above zero', options.timeout);
  return {
    clusters,
    log: queue === null ? resolve(cwd, options.log as string) : null,
    queue,
    command,
    worker: worker === null ? null : isAbsolute(worker) ? worker : resolve(cwd, worker),
    jobs: options.jobs === undefined ? availableParallelism() : wholeNumber(name('jobs'), options.jobs, 1),
    shell: flag(name('shell'), options.shell),
    fresh: flag(name('fresh'), options.fresh),
    outputDir: options.outputDir === undefined ? null : resolve(cwd, options.outputDir),
    retries: options.retries === undefined ? 0 : wholeNumber(name('retries'), options.retries, 0),
    retryDelayMs,
    timeoutMs,
    graceMs: duration(name('grace'), options.grace, 10_000),
    halt: haltPolicy(name('halt'), options.halt, clusters),
    memFree: options.memFree === undefined ? null : size(name('memFree'), options.memFree),
    maxRss: options.maxRss === undefined ? null : size(name('maxRss'), options.maxRss),
    maxClustersPerWorker:
      options.maxClustersPerWorker === undefined ? null : wholeNumber(name('maxClustersPerWorker'), options.maxClustersPerWorker, 1),
    cwd,
    env: { ...(options.env ?? {}) },
    signal: options.signal ?? null,
    handleSignals: options.handleSignals ?? true,
    onProgress: options.onProgress ?? null,
  };
}

const JOB_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;
const DEFAULT_LOCK_MS = 30_000;

function queueSettings(options: RunOptions, name: OptionNamer): QueueSettings | null {
  if (options.queue === undefined) {
    for (const key of ['name', 'host', 'lockDuration'] as const) {
      if (options[key] !== undefined) throw new RunnerOptionError(name(key), `${name('queue')} with it`, options[key]);
    }
    return null;
  }
  const target = queueTarget(options.queue, options.name, name);
  if (options.host !== undefined && (typeof options.host !== 'string' || options.host.trim() === '')) {
    throw new RunnerOptionError(name('host'), 'a name for this runner', options.host);
  }
  const lockDurationMs = duration(name('lockDuration'), options.lockDuration, DEFAULT_LOCK_MS);
  if (lockDurationMs < 1_000) throw new RunnerOptionError(name('lockDuration'), 'a duration of at least 1s', options.lockDuration);
  return { ...target, host: options.host ?? hostname(), lockDurationMs };
}

/** A job on a queue: the Redis URL (and the same without its password) and the job's name, checked. */
export function queueTarget(queue: unknown, job: unknown, name: OptionNamer): Pick<QueueSettings, 'url' | 'address' | 'name'> {
  let url: URL;
  try {
    url = new URL(String(queue));
  } catch {
    throw new RunnerOptionError(name('queue'), 'a Redis URL such as redis://HOST:PORT/DB', queue);
  }
  if ((url.protocol !== 'redis:' && url.protocol !== 'rediss:') || url.hostname === '' || !/^\/?\d*$/.test(url.pathname)) {
    throw new RunnerOptionError(name('queue'), 'a Redis URL such as redis://HOST:PORT/DB', queue);
  }
  if (typeof job !== 'string' || !JOB_NAME.test(job)) {
    throw new RunnerOptionError(name('name'), 'the job\'s name: letters, digits, ".", "_" or "-", at most 100', job);
  }
  const address = new URL(url.href);
  address.password = '';
  address.username = '';
  return { url: url.href, address: address.href, name: job };
}

/** A whole number >= min. */
export function wholeNumber(option: string, value: unknown, min: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw new RunnerOptionError(option, `a whole number >= ${min}`, value);
  }
  return value;
}

const DURATION = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$/;
const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };

/**
 * A duration in milliseconds from a number of milliseconds or text: `500ms`, `30s`, `5m`, `1h`;
 * bare text numbers are seconds, as in GNU parallel's `--timeout 30`.
 */
export function duration(option: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0) return value;
  const match = typeof value === 'string' ? DURATION.exec(value.trim()) : null;
  if (!match) throw new RunnerOptionError(option, 'a duration such as 500ms, 30s, 5m or 1h', value);
  return Math.round(Number(match[1]) * (DURATION_UNITS[match[2] ?? 's'] ?? 1_000));
}

const SIZE = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?$/i;
const SIZE_POWERS: Record<string, number> = { '': 0, k: 1, m: 2, g: 3, t: 4 };

/** A size in bytes from a number of bytes or text: `512M`, `2G`, `1.5GiB`, `64k` (powers of 1024). */
export function size(option: string, value: unknown): number {
  if (typeof value === 'number' && Number.isFinite(value) && value > 0) return Math.round(value);
  const match = typeof value === 'string' ? SIZE.exec(value.trim()) : null;
  const bytes = match ? Number(match[1]) * 1024 ** (SIZE_POWERS[(match[2] ?? '').toLowerCase()] ?? 0) : 0;
  if (!match || bytes <= 0) throw new RunnerOptionError(option, 'a size above zero such as 512M, 2G or 100k', value);
  return Math.round(bytes);
}

const HALT = /^(now|soon),fail=(\d+)(%?)$/;

function haltPolicy(option: string, value: unknown, clusters: number): RunSettings['halt'] {
  if (value === undefined || value === 'never') return null;
  let when: unknown;
  let fail: unknown;
  if (typeof value === 'string') {
    const match = HALT.exec(value.trim());
    if (!match) throw new RunnerOptionError(option, 'never, now,fail=N, soon,fail=N or now,fail=N%', value);
    when = match[1];
    fail = match[3] ? `${match[2]}%` : Number(match[2]);
  } else if (typeof value === 'object' && value !== null) {
    ({ when, fail } = value as HaltPolicy);
  }
  if (when !== 'now' && when !== 'soon') throw new RunnerOptionError(option, 'when: "now" or "soon"', value);
  if (typeof fail === 'string' && /^\d+(\.\d+)?%$/.test(fail)) {
    const percent = Number(fail.slice(0, -1));
    if (percent <= 0 || percent > 100) throw new RunnerOptionError(option, 'a failure percentage above 0 and at most 100', value);
    return { when, failAt: Math.max(1, Math.ceil((clusters * percent) / 100)) };
  }
  if (typeof fail === 'number' && Number.isSafeInteger(fail) && fail >= 1) return { when, failAt: fail };
  throw new RunnerOptionError(option, 'fail=N with N >= 1, or fail=N%', value);
}

function flag(option: string, value: unknown): boolean {
  if (value === undefined) return false;
  if (typeof value !== 'boolean') throw new RunnerOptionError(option, 'true or false', value);
  return value;
}
