import { closeSync, openSync } from 'node:fs';
import { execa } from 'execa';
import { clusterCommand } from './command.js';
import { clusterEnvironment, type AttemptPlan, type Execution, type Executor } from './executor.js';
import { processStartTime } from './proc.js';

/** What the process-per-cluster executor needs from the run. */
export interface ChildSettings {
  readonly log: string;
  readonly command: readonly string[];
  readonly shell: boolean;
  readonly cwd: string;
  readonly env: Readonly<Record<string, string>>;
}

/**
 * Runs each attempt as its own child process, the leader of a new process group so the runner can
 * signal and measure its whole tree. Its stdout and stderr are files the child writes itself:
 * nothing passes through the runner, so a chatty child can never block on a full pipe.
 */
export function processExecutor(settings: ChildSettings): Executor {
  // Built once: merging process.env for every spawn costs more than the rest of a launch.
  const baseEnv: Record<string, string | undefined> = { ...process.env, ...settings.env };
  return {
    async launch(plan: AttemptPlan): Promise<Execution> {
      const { file, args } = clusterCommand(settings.command, plan.cluster, plan.total, settings.shell);
      const stdout = openSync(plan.stdoutPath, 'w');
      const stderr = openSync(plan.stderrPath, 'w');
      const subprocess = (() => {
        try {
          return execa(file, args, {
            cwd: settings.cwd,
            env: { ...baseEnv, ...clusterEnvironment(settings.log, plan) },
            extendEnv: false,
            stdin: 'ignore',
            // A plain fd number goes straight to child_process.spawn (execa's "native" stdio); its
            // types list only 3..9, but any open fd works, and the child then writes the file itself.
            stdout: stdout as 3,
            stderr: stderr as 3,
            detached: true,
            cleanup: false,
            reject: false,
            buffer: false,
          });
        } finally {
          // The child holds its own copies now.
          closeSync(stdout);
          closeSync(stderr);
        }
      })();
      const pid = subprocess.pid ?? null;
      // Read at once, while the child cannot have been reaped yet (even if it already exited).
      const pidStart = pid === null ? null : processStartTime(pid);
      const finished = subprocess.then((result) => {
        const exitCode = result.exitCode ?? null;
        const signal = result.signal ?? null;
        return {
          exitCode,
          signal,
          error: exitCode === null && signal === null ? (result.originalMessage || result.shortMessage || 'the process did not start') : null,
          reportedRss: null,
        };
      });
      return { pid, pidStart, finished };
    },
    async close(): Promise<void> {},
  };
}
