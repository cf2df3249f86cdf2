import type { Executor } from './executor.js';
import { LauncherPool } from './launcher.js';
import type { RunSettings } from './options.js';
import { WorkerPool } from './worker.js';

/**
 * What runs a job's clusters, as its settings ask: K long-lived workers with `--worker`, else K
 * launchers of COMMAND. `owner` marks every cluster's environment as this run's (the log's path, or
 * the queue and job); `stopClustersWithRunner` makes launchers kill their clusters when the runner
 * goes away (queue mode: another machine takes them up).
 */
export function clusterPool(settings: RunSettings, owner: Readonly<Record<string, string>>, outputDir: string, stopClustersWithRunner: boolean): Executor {
  return settings.worker !== null
    ? new WorkerPool({
        owner,
        module: settings.worker,
        cwd: settings.cwd,
        env: settings.env,
        outputDir,
        maxClustersPerWorker: settings.maxClustersPerWorker,
        maxRss: settings.maxRss,
      })
    : new LauncherPool({
        owner,
        stopClustersWithRunner,
        command: settings.command ?? [],
        shell: settings.shell,
        cwd: settings.cwd,
        env: settings.env,
        launchers: settings.jobs,
      });
}
