import { closeSync, openSync, readFileSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { LogLockedError } from './errors.js';
import { hasProc, isRunning, ownStartTime } from './proc.js';

/** The runner that holds a log, as written in `LOG.lock`. */
interface LockHolder {
  readonly pid: number;
  readonly startTime: number | null;
  readonly host: string;
}

/** An exclusive hold on one log. */
export interface LogLock {
  readonly path: string;
  /** Gives the log up; only removes the lock file while it is still this runner's. */
  release(): void;
}

/** A lock file still being written by its creator is given this long before it counts as torn. */
const TORN_AFTER_MS = 1_000;
/** A takeover guard left by a runner that died during the takeover itself. */
const STALE_GUARD_MS = 5_000;

/**
 * Takes the lock of `log`: the file `LOG.lock`, created exclusively (O_EXCL) and naming this runner.
 * A lock whose holder has died (its pid gone, or reused by a process with another start time) is
 * taken over; a live holder makes this throw {@link LogLockedError} naming its pid.
 */
export async function lockLog(log: string): Promise<LogLock> {
  const path = `${log}.lock`;
  const me: LockHolder = { pid: process.pid, startTime: ownStartTime(), host: hostname() };
  const content = `${JSON.stringify({ ...me, since: new Date().toISOString() })}\n`;
  for (;;) {
    try {
      const fd = openSync(path, 'wx');
      try {
        writeSync(fd, content);
      } finally {
        closeSync(fd);
      }
      return { path, release: () => releaseIfMine(path, me) };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const seen = readHolder(path);
    if (seen === null) continue;
    if (seen.holder === null) {
      // Its creator may be between open and write; only a torn file that stays torn is stale.
      if (ageMs(path) < TORN_AFTER_MS) {
        await sleep(20);
        continue;
      }
    } else if (holderAlive(seen.holder)) {
      throw new LogLockedError(log, seen.holder.pid, seen.holder.host, seen.holder.host === me.host);
    }
    await takeOver(path, seen.text);
  }
}

/** Removes a stale lock, unless another runner replaced it meanwhile. A guard file serialises takeovers. */
async function takeOver(path: string, staleText: string): Promise<void> {
  const guard = `${path}.takeover`;
  try {
    closeSync(openSync(guard, 'wx'));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    if (ageMs(guard) > STALE_GUARD_MS) unlinkQuietly(guard);
    await sleep(20);
    return;
  }
  try {
    const now = readText(path);
    if (now === staleText) unlinkQuietly(path);
  } finally {
    unlinkQuietly(guard);
  }
}

/** The lock file's text and holder; holder null when the file is torn. Null when there is no lock file. */
function readHolder(path: string): { holder: LockHolder | null; text: string } | null {
  const text = readText(path);
  if (text === null) return null;
  try {
    const holder = JSON.parse(text) as LockHolder;
    if (typeof holder.pid === 'number' && typeof holder.host === 'string') return { holder, text };
  } catch {
    // torn: its writer died between creating and writing it
  }
  return { holder: null, text };
}

function holderAlive(holder: LockHolder): boolean {
  // A lock from another host (a log on a shared disk) cannot be checked from here: it stands.
  if (holder.host !== hostname()) return true;
  if (hasProc && holder.startTime !== null) return isRunning(holder.pid, holder.startTime);
  try {
    process.kill(holder.pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function releaseIfMine(path: string, me: LockHolder): void {
  const seen = readHolder(path);
  if (seen?.holder && seen.holder.pid === me.pid && seen.holder.startTime === me.startTime) unlinkQuietly(path);
}

function readText(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

function ageMs(path: string): number {
  try {
    return Date.now() - statSync(path).mtimeMs;
  } catch {
    return 0;
  }
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}
