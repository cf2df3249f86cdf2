import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa, type ResultPromise } from 'execa';

/** A service process the harness started, with the ways a test stops or faults it. */
export interface ServiceProcess {
  readonly pid: number;
  /** True until the process has exited. */
  alive(): boolean;
  /**
   * Sends a signal as a fault would: SIGKILL, SIGSTOP, SIGCONT. SIGSTOP returns once the process is
   * stopped, so what the test does next meets a frozen process.
   */
  signal(signal: NodeJS.Signals): void;
  /** Stops the process (SIGTERM, then SIGKILL after `graceMs`) and waits for it to exit. */
  stop(graceMs?: number): Promise<void>;
  /** All the process wrote to stderr so far. */
  stderr(): string;
}

export function spawnService(
  file: string,
  args: readonly string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): ServiceProcess {
  const child: ResultPromise = execa(file, args, {
    cwd: options.cwd,
    env: options.env,
    extendEnv: options.env === undefined,
    reject: false,
    cleanup: true,
    stdin: 'ignore',
    stdout: 'ignore',
    stderr: 'pipe',
    buffer: false,
  });
  let exited = false;
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    // Keep only the tail: a chatty service must not grow the test's memory.
    stderr = (stderr + chunk).slice(-64 * 1024);
  });
  const done = child.then(() => {
    exited = true;
  });
  if (child.pid === undefined) throw new Error(`could not start ${file}`);
  const pid = child.pid;
  return {
    pid,
    alive: () => !exited,
    signal(signal) {
      if (exited) return;
      process.kill(pid, signal);
      if (signal === 'SIGSTOP') waitUntilStopped(pid);
    },
    async stop(graceMs = 5_000) {
      if (exited) return;
      // A stopped (SIGSTOP) process ignores SIGTERM until continued.
      process.kill(pid, 'SIGCONT');
      process.kill(pid, 'SIGTERM');
      // The grace timer is cancelled once the process is gone, so a test file can end at once
      // (a pending timer kept jest's workers alive past their suites).
      const grace = new AbortController();
      const timedOut = await Promise.race([
        done.then(() => false),
        sleep(graceMs, true, { signal: grace.signal }).catch(() => false),
      ]);
      grace.abort();
      if (timedOut && !exited) process.kill(pid, 'SIGKILL');
      await done;
    },
    stderr: () => stderr,
  };
}

// The kernel stops a process asynchronously: a busy one on the other core runs on for a moment.
// Linux shows a stopped process as state T in /proc/PID/stat (the field after the parenthesized name).
function waitUntilStopped(pid: number): void {
  const deadline = Date.now() + 2_000;
  while (Date.now() < deadline) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      return; // gone, or no /proc: nothing to wait for
    }
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    if (state === 'T' || state === 't') return;
  }
  throw new Error(`process ${pid} did not stop within 2 s of SIGSTOP`);
}
