import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';

// The process the runner forks to start cluster processes for it. Starting a process forks its
// parent, and on Linux a fork costs time in proportion to the parent's resident memory (measured
// here: about 1.5 ms from a bare Node process, 3.5 ms from the runner with execa loaded, 8 ms
// once a parent holds 150 MB). So the runner keeps K of these small processes, which load nothing
// but node:child_process, start clusters side by side on every core, and report pids and exits.

/** What the runner asks: start one attempt. The launcher's own environment is the clusters' base environment. */
export interface LaunchRequest {
  readonly type: 'launch';
  readonly id: number;
  readonly file: string;
  readonly args: readonly string[];
  readonly cwd: string;
  /** Added to the base environment: the cluster, the attempt, the log. */
  readonly env: Readonly<Record<string, string>>;
  readonly stdoutPath: string;
  readonly stderrPath: string;
}

/** What the launcher answers: the attempt's process runs, or could not start, or ended. */
export type LaunchReport =
  | { readonly type: 'started'; readonly id: number; readonly pid: number; readonly pidStart: number | null }
  | { readonly type: 'exit'; readonly id: number; readonly exitCode: number | null; readonly signal: string | null; readonly error: string | null };

function send(report: LaunchReport): void {
  process.send?.(report);
}

/**
 * The start time of a process in clock ticks since boot, from /proc (null elsewhere). proc.ts has
 * the same reading, but importing it would pull the bundle's shared chunk (the runner, p-limit)
 * into every launcher, whose memory each fork copies.
 */
function startTime(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const value = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
    return Number.isFinite(value) ? value : null;
  } catch {
    return null;
  }
}

/** Process groups of the clusters this launcher started that have not exited. */
const running = new Set<number>();

function launch(request: LaunchRequest): void {
  let stdout: number | null = null;
  let stderr: number | null = null;
  try {
    stdout = openSync(request.stdoutPath, 'w');
    stderr = openSync(request.stderrPath, 'w');
    // Its output goes to files the child writes itself: nothing passes through a pipe that could fill up.
    // Detached: the leader of its own process group, so the runner can signal and measure its whole tree.
    const child = spawn(request.file, request.args, {
      cwd: request.cwd,
      env: { ...process.env, ...request.env },
      stdio: ['ignore', stdout, stderr],
      detached: true,
    });
    let reported = false;
    const pid = child.pid;
    if (pid !== undefined) running.add(pid);
    child.once('error', (error) => {
      if (reported) return;
      reported = true;
      send({ type: 'exit', id: request.id, exitCode: null, signal: null, error: error.message });
    });
    child.once('exit', (exitCode, signal) => {
      if (pid !== undefined) running.delete(pid);
      if (reported) return;
      reported = true;
      send({ type: 'exit', id: request.id, exitCode, signal, error: null });
    });
    // Read at once, while the child cannot have been reaped yet (even if it already exited).
    if (child.pid !== undefined) send({ type: 'started', id: request.id, pid: child.pid, pidStart: startTime(child.pid) });
  } catch (error) {
    send({ type: 'exit', id: request.id, exitCode: null, signal: null, error: (error as Error).message });
  } finally {
    // The child holds its own copies now.
    if (stdout !== null) closeSync(stdout);
    if (stderr !== null) closeSync(stderr);
  }
}

if (!process.send) {
  process.stderr.write('cluster-run launcher: this process is started by cluster-run, not by hand\n');
  process.exit(2);
}
// Ctrl-C reaches the runner's whole process group: the runner decides what happens to the
// clusters, so the launcher must not die of it.
process.on('SIGINT', () => undefined);
process.on('SIGTERM', () => undefined);
// The runner is gone (done, or killed): stop at once. In a local run the clusters' processes live
// on, in their own groups, for the next run on the log to find, exactly as if the runner had
// started them itself. In queue mode (the runner's flag, spelled as in launcher.ts) another machine
// takes their clusters up once the lock expires, so they must not run on: they die with the runner.
const stopClustersWithRunner = process.argv.includes('--stop-clusters-with-runner');
process.on('disconnect', () => {
  if (stopClustersWithRunner) {
    for (const pid of running) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  process.exit(0);
});
process.on('message', (request: LaunchRequest) => {
  if (request?.type === 'launch') launch(request);
});
