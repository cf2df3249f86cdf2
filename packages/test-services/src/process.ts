import { execa, type ResultPromise } from 'execa';
import { setTimeout as sleep } from 'node:timers/promises';

/** A service process the harness started, with the ways a test stops or faults it. */
export interface ServiceProcess {
  readonly pid: number;
  /** True until the process has exited. */
  alive(): boolean;
  /** Sends a signal as a fault would: SIGKILL, SIGSTOP, SIGCONT. */
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
      if (!exited) process.kill(pid, signal);
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
