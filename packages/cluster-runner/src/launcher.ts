import { fork, type ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { forkTarget } from './_fork-target.js';
import { clusterCommand } from './command.js';
import { clusterEnvironment, signalGroup, type AttemptPlan, type Execution, type Executor, type Outcome } from './executor.js';
import type { LaunchReport, LaunchRequest } from './launcher-entry.js';
import { isRunning } from './proc.js';

/** What the process-per-cluster executor needs from the run. */
export interface LauncherSettings {
  /** The variables that name the job a cluster belongs to (see clusterEnvironment). */
  readonly owner: Readonly<Record<string, string>>;
  /**
   * Whether the clusters die with the runner. A local run leaves them for the next run on its log
   * to find and stop; a queue-mode run kills them, since another machine takes their clusters up.
   */
  readonly stopClustersWithRunner: boolean;
  readonly command: readonly string[];
  readonly shell: boolean;
  readonly cwd: string;
  readonly env: Readonly<Record<string, string>>;
  /** How many launchers: one per job slot, so starts run side by side on every core. */
  readonly launchers: number;
}

/** An attempt a launcher was asked to start: settled by its reports. */
interface Pending {
  readonly started: (started: { pid: number; pidStart: number | null } | null) => void;
  readonly finished: (outcome: Outcome) => void;
  pid: number | null;
  pidStart: number | null;
}

interface Launcher {
  readonly child: ChildProcess;
  readonly attempts: Map<number, Pending>;
  alive: boolean;
}

// tsup's --shims gives the CommonJS build an import.meta.url too.
const entry = forkTarget('launcher-entry', import.meta.url);
/** The launcher's one argument (spelled out in launcher-entry.ts too, which imports nothing of the runner). */
const STOP_CLUSTERS_WITH_RUNNER = '--stop-clusters-with-runner';

/**
 * Runs each attempt as its own child process, started by one of a few small launcher processes
 * (see launcher-entry.ts for why not by the runner itself). Each cluster's process is the leader
 * of a new process group, writes its stdout and stderr to its own files, and is signalled by the
 * runner directly by its pid; the launcher only starts it and reports how it ended.
 */
export class LauncherPool implements Executor {
  private readonly settings: LauncherSettings;
  private readonly launchers: Launcher[] = [];
  private next = 0;
  private ids = 0;

  constructor(settings: LauncherSettings) {
    this.settings = settings;
  }

  /** Launchers start with their first cluster: a command that cannot start fails only its own clusters. */
  async open(): Promise<void> {}

  async launch(plan: AttemptPlan): Promise<Execution> {
    const { file, args } = clusterCommand(this.settings.command, plan.cluster, plan.total, this.settings.shell);
    const launcher = this.pick();
    const id = ++this.ids;
    let settleStart: Pending['started'] = () => undefined;
    let settleFinish: Pending['finished'] = () => undefined;
    const started = new Promise<{ pid: number; pidStart: number | null } | null>((resolve) => (settleStart = resolve));
    const finished = new Promise<Outcome>((resolve) => (settleFinish = resolve));
    const pending: Pending = { started: settleStart, finished: settleFinish, pid: null, pidStart: null };
    launcher.attempts.set(id, pending);
    const request: LaunchRequest = {
      type: 'launch',
      id,
      file,
      args,
      cwd: this.settings.cwd,
      env: clusterEnvironment(this.settings.owner, plan),
      stdoutPath: plan.stdoutPath,
      stderrPath: plan.stderrPath,
    };
    launcher.child.send(request);
    const running = await started;
    return { pid: running?.pid ?? null, pidStart: running?.pidStart ?? null, finished };
  }

  /** The launchers take turns; one that died is replaced. */
  private pick(): Launcher {
    const slot = this.next++ % this.settings.launchers;
    let launcher = this.launchers[slot];
    if (launcher === undefined || !launcher.alive) {
      launcher = this.start();
      this.launchers[slot] = launcher;
    }
    return launcher;
  }

  private start(): Launcher {
    const child = fork(entry.path, this.settings.stopClustersWithRunner ? [STOP_CLUSTERS_WITH_RUNNER] : [], {
      cwd: this.settings.cwd,
      env: { ...process.env, ...this.settings.env },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      // A small heap and no helper threads: every start forks this process (see launcher-entry.ts).
      execArgv: ['--max-semi-space-size=1', '--single-threaded', ...entry.execArgv],
      serialization: 'json',
    });
    const launcher: Launcher = { child, attempts: new Map(), alive: true };
    // A send to a launcher that just died fails here; its exit handler settles the attempts.
    child.on('error', () => undefined);
    child.on('message', (report: LaunchReport) => {
      const pending = launcher.attempts.get(report.id);
      if (!pending) return;
      if (report.type === 'started') {
        pending.pid = report.pid;
        pending.pidStart = report.pidStart;
        pending.started({ pid: report.pid, pidStart: report.pidStart });
        return;
      }
      launcher.attempts.delete(report.id);
      pending.started(null);
      pending.finished({ exitCode: report.exitCode, signal: report.signal, error: report.error, reportedRss: null });
    });
    child.on('exit', (code, signal) => {
      launcher.alive = false;
      // Nothing will report how its clusters end: stop them, and only once they are gone record
      // them as failed, so none runs on unwatched while the runner starts it again.
      const orphaned = [...launcher.attempts.values()];
      launcher.attempts.clear();
      for (const pending of orphaned) {
        pending.started(null);
        void stopGroup(pending.pid, pending.pidStart).then(() =>
          pending.finished({
            exitCode: null,
            signal: null,
            error: `the launcher that started it exited (code ${code}, signal ${signal}), so it was stopped`,
            reportedRss: null,
          }),
        );
      }
    });
    return launcher;
  }

  async close(): Promise<void> {
    await Promise.all(
      this.launchers.map(async (launcher) => {
        if (!launcher.alive) return;
        const exited = new Promise<void>((resolve) => launcher.child.once('exit', () => resolve()));
        if (launcher.child.connected) launcher.child.disconnect();
        await exited;
      }),
    );
  }
}

/** SIGKILLs a cluster's process group and resolves once its leader is gone (or after 10 s, stuck in the kernel). */
async function stopGroup(pid: number | null, pidStart: number | null): Promise<void> {
  if (pid === null) return;
  signalGroup(pid, 'SIGKILL');
  for (let waited = 0; waited < 10_000 && isRunning(pid, pidStart); waited += 10) await sleep(10);
}
