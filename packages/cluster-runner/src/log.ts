import { closeSync, fstatSync, fsync, openSync, readSync, renameSync, writeSync } from 'node:fs';
import { promisify } from 'node:util';
import { LogFormatError } from './errors.js';

/** Why a cluster's attempt ended. Only `ok` (exit code 0) makes a cluster done. */
export type EndReason = 'ok' | 'failed' | 'timeout' | 'rss-limit' | 'interrupted';

/** First record of the log and of every run on it: what job the log belongs to. */
export interface RunRecord {
  readonly event: 'run';
  readonly version: 1;
  readonly clusters: number;
  readonly command: readonly string[] | null;
  readonly shell: boolean;
  readonly worker: string | null;
  readonly pid: number;
  readonly host: string;
  readonly time: string;
}

/**
 * Written just before a cluster's process is started: it takes the attempt number, so a runner
 * killed between starting the process and writing its start record cannot hand the number out again.
 */
export interface LaunchRecord {
  readonly event: 'launch';
  readonly cluster: number;
  readonly attempt: number;
  readonly time: string;
}

/** Written as soon as a cluster's process is running. */
export interface StartRecord {
  readonly event: 'start';
  readonly cluster: number;
  readonly attempt: number;
  /** Null only when the process could not be started at all. */
  readonly pid: number | null;
  /** Start time of `pid` in clock ticks since boot (Linux), so a reused pid is never mistaken for it. */
  readonly pidStart: number | null;
  readonly time: string;
}

/** Written, and fsynced, when an attempt ends. */
export interface EndRecord {
  readonly event: 'end';
  readonly cluster: number;
  readonly attempt: number;
  readonly why: EndReason;
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly durationMs: number;
  /** Highest resident memory of the cluster's process tree seen while it ran; null when it ended before the first sample. */
  readonly peakRss: number | null;
  /** What went wrong when there is no exit code to tell: the process could not start, a worker's function threw. */
  readonly error?: string;
  readonly time: string;
}

export type LogRecord = RunRecord | LaunchRecord | StartRecord | EndRecord;

/** A job in words, the same for a log and a queue, so a mismatch names both sides alike. */
export function describeJob(record: Pick<RunRecord, 'clusters' | 'command' | 'shell' | 'worker'>): string {
  const what = record.worker !== null ? `worker ${record.worker}` : `${record.shell ? '--shell ' : ''}${JSON.stringify(record.command ?? [])}`;
  return `${record.clusters} clusters of ${what}`;
}

/** Per-cluster state, one byte each: with the 4-byte attempt count, a scan keeps 5 bytes per cluster. */
export const NOT_STARTED = 0;
export const NOT_DONE = 1;
export const DONE = 2;

/** What one pass over a log knows. */
export interface LogState {
  /** The log's first run record: the job it belongs to. */
  readonly identity: RunRecord;
  /** Indexed by cluster number (index 0 unused): NOT_STARTED, NOT_DONE or DONE. */
  readonly status: Uint8Array;
  /** Highest attempt number each cluster has had. */
  readonly attempts: Uint32Array;
  /**
   * Attempts that were launched or started and never ended: the runner died, and their processes
   * may still run. A launch with no start yet shows as a start record with a null pid.
   */
  readonly open: Map<number, StartRecord>;
  /** Lines that are not whole records: a line torn by a crash. */
  readonly tornLines: number;
  /** False when the last line is torn: the next record must start on a new line. */
  readonly endsWithNewline: boolean;
  readonly records: number;
}

const CHUNK = 1 << 20;
const NEWLINE = 0x0a;

/**
 * Reads the log at `path` in one pass, whatever its size, or returns null when there is no log yet.
 * A line that is not a whole record (a crash tore it) is counted and skipped, never fatal.
 */
export function readLog(path: string): LogState | null {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  try {
    return scan(path, fd);
  } finally {
    closeSync(fd);
  }
}

function scan(path: string, fd: number): LogState | null {
  let identity: RunRecord | null = null;
  let status = new Uint8Array(0);
  let attempts = new Uint32Array(0);
  const open = new Map<number, StartRecord>();
  let tornLines = 0;
  let records = 0;
  let lineNumber = 0;

  const take = (line: string): void => {
    lineNumber += 1;
    if (line.trim() === '') return;
    let record: LogRecord;
    try {
      record = JSON.parse(line) as LogRecord;
    } catch {
      tornLines += 1;
      return;
    }
    if (identity === null) {
      if (record?.event !== 'run' || !Number.isSafeInteger(record.clusters) || record.clusters < 1) {
        throw new LogFormatError(path, `line ${lineNumber} is not the run record a cluster-run log starts with`);
      }
      identity = record;
      status = new Uint8Array(record.clusters + 1);
      attempts = new Uint32Array(record.clusters + 1);
      records += 1;
      return;
    }
    if (record?.event !== 'launch' && record?.event !== 'start' && record?.event !== 'end') {
      if (record?.event === 'run') records += 1;
      else tornLines += 1;
      return;
    }
    const cluster = record.cluster;
    if (!(cluster >= 1 && cluster < status.length) || !Number.isSafeInteger(cluster)) {
      tornLines += 1;
      return;
    }
    records += 1;
    if (record.attempt > (attempts[cluster] ?? 0)) attempts[cluster] = record.attempt;
    if (record.event === 'launch') {
      open.set(cluster, { event: 'start', cluster, attempt: record.attempt, pid: null, pidStart: null, time: record.time });
      if (status[cluster] === NOT_STARTED) status[cluster] = NOT_DONE;
      return;
    }
    if (record.event === 'start') {
      open.set(cluster, record);
      if (status[cluster] === NOT_STARTED) status[cluster] = NOT_DONE;
      return;
    }
    if (open.get(cluster)?.attempt === record.attempt) open.delete(cluster);
    // Once done, a cluster stays done: the runner never starts it again.
    if (record.why === 'ok') status[cluster] = DONE;
    else if (status[cluster] !== DONE) status[cluster] = NOT_DONE;
  };

  const buffer = Buffer.allocUnsafe(CHUNK);
  let carry: Buffer | null = null;
  let lastByte = NEWLINE;
  for (;;) {
    const read = readSync(fd, buffer, 0, CHUNK, null);
    if (read === 0) break;
    lastByte = buffer[read - 1] ?? NEWLINE;
    let start = 0;
    for (let end = buffer.indexOf(NEWLINE, 0); end !== -1 && end < read; end = buffer.indexOf(NEWLINE, start)) {
      if (carry) {
        take(Buffer.concat([carry, buffer.subarray(0, end)]).toString('utf8'));
        carry = null;
      } else {
        take(buffer.toString('utf8', start, end));
      }
      start = end + 1;
    }
    if (start < read) carry = carry ? Buffer.concat([carry, buffer.subarray(start, read)]) : Buffer.from(buffer.subarray(start, read));
  }
  const endsWithNewline = carry === null && lastByte === NEWLINE;
  if (carry) take(carry.toString('utf8'));
  if (identity === null) {
    if (tornLines <= 1) return null; // empty, or only a torn first line: a log that never got going
    throw new LogFormatError(path, 'it holds no run record');
  }
  return { identity, status, attempts, open, tornLines, endsWithNewline, records };
}

/**
 * Appends records to the log, opened with O_APPEND so each write lands whole at the end. Each
 * record is written at once (one small write: it is in the kernel's hands before the runner takes
 * its next step, so a SIGKILL of the runner cannot lose it). fsyncs, which can take milliseconds,
 * run off the event loop: every end record is covered by an fsync issued after it was written, and
 * records that end while one is under way share the next (a group commit), so a busy run neither
 * blocks on the disk nor piles up fsyncs.
 */
export class LogWriter {
  readonly path: string;
  private readonly fd: number;
  private syncWanted = false;
  private syncing: Promise<void> | null = null;
  private failure: unknown = null;

  constructor(path: string, endsWithNewline: boolean) {
    this.path = path;
    this.fd = openSync(path, 'a');
    // A torn last line gets its own line, so the next record is not glued to it.
    if (!endsWithNewline && fstatSync(this.fd).size > 0) this.write('\n');
  }

  private write(text: string): void {
    const data = Buffer.from(text);
    for (let written = 0; written < data.length; ) written += writeSync(this.fd, data, written);
  }

  /** Writes a record. Throws a write error (a full disk). */
  append(record: LogRecord): void {
    if (this.failure !== null) throw this.failure;
    this.write(`${JSON.stringify(record)}\n`);
  }

  /** Writes a record and has an fsync cover it. */
  appendDurable(record: LogRecord): void {
    this.append(record);
    this.syncWanted = true;
    this.syncing ??= this.sync();
  }

  private async sync(): Promise<void> {
    try {
      while (this.syncWanted) {
        this.syncWanted = false;
        await fsyncAsync(this.fd);
      }
    } catch (error) {
      this.failure = error;
    } finally {
      this.syncing = null;
    }
  }

  /** Waits until the durable records so far are on disk. Throws an fsync error. */
  async flush(): Promise<void> {
    while (this.syncing !== null) await this.syncing;
    if (this.failure !== null) throw this.failure;
  }

  async close(): Promise<void> {
    try {
      await this.flush();
    } finally {
      closeSync(this.fd);
    }
  }
}

const fsyncAsync = promisify(fsync);

/** Moves the log aside as `LOG.<time>` for --fresh, and returns the new name. */
export function setLogAside(path: string, suffix: string): string {
  const aside = `${path}.${suffix}`;
  renameSync(path, aside);
  return aside;
}

/** A file-name-safe timestamp: `2026-11-26T21-23-00-123Z`. */
export function fileStamp(date = new Date()): string {
  return date.toISOString().replace(/[:.]/g, '-');
}
