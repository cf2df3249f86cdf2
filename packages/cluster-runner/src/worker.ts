import { fork, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { forkTarget } from './_fork-target.js';
import type { Cluster } from './cluster.js';
import { WorkerModuleError } from './errors.js';
import { removeIfEmpty, signalGroup, type AttemptPlan, type Execution, type Executor, type Outcome } from './executor.js';
import { processStartTime } from './proc.js';

/** One attempt at one cluster, as a worker module's function receives it. */
export interface ClusterAttempt extends Cluster {
  /** 1 for the first attempt at this cluster in this log, then 2, 3, ... */
  readonly attempt: number;
}

/**
 * What a `--worker` module exports (as its default export or as `runCluster`): runs one cluster.
 * The cluster is done when the returned promise resolves, failed when it rejects. What it writes
 * to stdout and stderr goes to that cluster's output files.
 */
export type ClusterFunction = (cluster: ClusterAttempt) => unknown;

/** What the pool needs from the run. */
export interface WorkerSettings {
  /** The variables that name the job a cluster belongs to (see clusterEnvironment). */
  readonly owner: Readonly<Record<string, string>>;
  readonly module: string;
  readonly cwd: string;
  readonly env: Readonly<Record<string, string>>;
  readonly outputDir: string;
  readonly maxClustersPerWorker: number | null;
  readonly maxRss: number | null;
}

/** What a worker tells the runner: loaded, failed to load, or one cluster finished. */
type WorkerMessage =
  | { readonly type: 'ready' }
  | { readonly type: 'fatal'; readonly error: string }
  | { readonly type: 'done'; readonly error: string | null; readonly rss: number };

interface Worker {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly pidStart: number | null;
  clustersRun: number;
  alive: boolean;
  /** Settles the attempt the worker is running. */
  current: ((outcome: Outcome) => void) | null;
  readonly exited: Promise<void>;
}

// tsup's --shims gives the CommonJS build an import.meta.url too.
const entry = forkTarget('worker-entry', import.meta.url);
/** How long a retiring worker may take to exit before it is killed. */
const RETIRE_GRACE_MS = 5_000;

/**
 * Worker mode: long-lived Node processes (child_process.fork) that take cluster after cluster
 * over IPC, so a child's start-up is paid once per worker instead of once per cluster. A worker
 * is replaced after `maxClustersPerWorker` clusters or when its RSS passes `maxRss` after a
 * cluster, as Celery's max_tasks_per_child and max_memory_per_child.
 */
export class WorkerPool implements Executor {
  private readonly settings: WorkerSettings;
  private readonly idle: Worker[] = [];
  private readonly workers = new Set<Worker>();
  private started = 0;

  constructor(settings: WorkerSettings) {
    this.settings = settings;
  }

  /**
   * Starts the first worker, which loads the module: a module that does not load or exports no
   * function is refused here, before any cluster starts. The worker then takes the first cluster.
   */
  async open(): Promise<void> {
    this.idle.push(await this.start());
  }

  async launch(plan: AttemptPlan): Promise<Execution> {
    const worker = this.idle.pop() ?? (await this.start());
    const finished = new Promise<Outcome>((resolve) => {
      worker.current = resolve;
    });
    worker.child.send({ type: 'run', ...plan });
    return {
      pid: worker.pid,
      pidStart: worker.pidStart,
      finished: finished.then((outcome) => {
        this.afterCluster(worker, outcome);
        return outcome;
      }),
    };
  }

  private async start(): Promise<Worker> {
    this.started += 1;
    const base = join(this.settings.outputDir, `worker-${this.started}`);
    const stdoutPath = `${base}.stdout`;
    const stderrPath = `${base}.stderr`;
    const stdout = openSync(stdoutPath, 'w');
    const stderr = openSync(stderrPath, 'w');
    let child: ChildProcess;
    try {
      child = fork(entry.path, [], {
        cwd: this.settings.cwd,
        env: { ...process.env, ...this.settings.env, ...this.settings.owner, CLUSTER_RUN_WORKER_MODULE: this.settings.module },
        stdio: ['ignore', stdout, stderr, 'ipc'],
        // Node's flags as the runner got them (fork's default), plus a loader when the source runs.
        execArgv: [...process.execArgv, ...entry.execArgv],
        detached: true,
      });
    } finally {
      closeSync(stdout);
      closeSync(stderr);
    }
    if (child.pid === undefined) throw new WorkerModuleError(this.settings.module, 'node could not be started for a worker');
    const pid = child.pid;
    let markExited: () => void = () => {};
    const worker: Worker = {
      child,
      pid,
      pidStart: processStartTime(pid),
      clustersRun: 0,
      alive: true,
      current: null,
      exited: new Promise<void>((resolve) => {
        markExited = resolve;
      }),
    };
    this.workers.add(worker);
    const ready = new Promise<void>((resolve, reject) => {
      child.on('message', (message: WorkerMessage) => {
        if (message.type === 'ready') resolve();
        else if (message.type === 'fatal') reject(new WorkerModuleError(this.settings.module, message.error));
        else if (message.type === 'done') {
          const settle = worker.current;
          worker.current = null;
          settle?.({ exitCode: message.error === null ? 0 : null, signal: null, error: message.error, reportedRss: message.rss });
        }
      });
      child.on('exit', (code, signal) => {
        worker.alive = false;
        this.workers.delete(worker);
        const index = this.idle.indexOf(worker);
        if (index >= 0) this.idle.splice(index, 1);
        removeIfEmpty(stdoutPath);
        removeIfEmpty(stderrPath);
        reject(new WorkerModuleError(this.settings.module, `its worker exited (code ${code}, signal ${signal}) before it was ready; see ${stderrPath}`));
        const settle = worker.current;
        worker.current = null;
        settle?.({
          exitCode: code,
          signal,
          error: signal === null ? `the worker exited with code ${code} during the cluster` : null,
          reportedRss: null,
        });
        markExited();
      });
    });
    try {
      await ready;
    } catch (error) {
      signalGroup(pid, 'SIGKILL');
      throw error;
    }
    return worker;
  }

  private afterCluster(worker: Worker, outcome: Outcome): void {
    if (!worker.alive) return;
    worker.clustersRun += 1;
    const { maxClustersPerWorker, maxRss } = this.settings;
    const worn = maxClustersPerWorker !== null && worker.clustersRun >= maxClustersPerWorker;
    const grown = maxRss !== null && outcome.reportedRss !== null && outcome.reportedRss > maxRss;
    if (worn || grown) void this.retire(worker);
    else this.idle.push(worker);
  }

  /** Lets a worker exit on its own (it exits when its IPC channel closes), killing it if it lingers. */
  private async retire(worker: Worker): Promise<void> {
    if (worker.child.connected) worker.child.disconnect();
    const timer = setTimeout(() => signalGroup(worker.pid, 'SIGKILL'), RETIRE_GRACE_MS);
    await worker.exited;
    clearTimeout(timer);
  }

  async close(): Promise<void> {
    this.idle.length = 0;
    await Promise.all([...this.workers].map((worker) => this.retire(worker)));
  }
}
