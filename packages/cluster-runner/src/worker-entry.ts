import { closeSync, openSync, writeSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import type { ClusterFunction } from './worker.js';

// The process `cluster-run --worker` forks: loads the worker module once, then runs the clusters
// the runner sends it, one at a time, over IPC.

interface RunMessage {
  readonly type: 'run';
  readonly cluster: number;
  readonly total: number;
  readonly attempt: number;
  readonly stdoutPath: string;
  readonly stderrPath: string;
}

function send(message: object, then?: () => void): void {
  process.send?.(message, undefined, {}, () => then?.());
}

function describe(error: unknown): string {
  return error instanceof Error ? (error.stack ?? error.message) : String(error);
}

/** The module's cluster function: its default export or a named `runCluster`, also behind CommonJS interop. */
function clusterFunction(module: Record<string, unknown>): ClusterFunction | null {
  for (const candidate of [module.default, module.runCluster, (module.default as Record<string, unknown> | undefined)?.runCluster]) {
    if (typeof candidate === 'function') return candidate as ClusterFunction;
  }
  return null;
}

/** Sends the process's stdout or stderr writes (console.log included) to a cluster's own file. */
function redirect(stream: NodeJS.WriteStream, fd: number): () => void {
  const original = stream.write;
  stream.write = ((chunk: string | Uint8Array, encoding?: BufferEncoding | ((error?: Error | null) => void), callback?: (error?: Error | null) => void) => {
    const done = typeof encoding === 'function' ? encoding : callback;
    writeSync(fd, typeof chunk === 'string' ? Buffer.from(chunk, typeof encoding === 'string' ? encoding : 'utf8') : chunk);
    if (done) process.nextTick(done);
    return true;
  }) as typeof stream.write;
  return () => {
    stream.write = original;
  };
}

async function runOne(run: ClusterFunction, message: RunMessage): Promise<void> {
  const stdout = openSync(message.stdoutPath, 'w');
  const stderr = openSync(message.stderrPath, 'w');
  const restoreStdout = redirect(process.stdout, stdout);
  const restoreStderr = redirect(process.stderr, stderr);
  process.env.CLUSTER_RUN_CLUSTER = `${message.cluster}/${message.total}`;
  process.env.CLUSTER_RUN_ATTEMPT = String(message.attempt);
  let error: string | null = null;
  try {
    await run({ index: message.cluster, total: message.total, attempt: message.attempt });
  } catch (thrown) {
    error = describe(thrown);
  } finally {
    restoreStdout();
    restoreStderr();
    closeSync(stdout);
    closeSync(stderr);
  }
  send({ type: 'done', cluster: message.cluster, attempt: message.attempt, error, rss: process.memoryUsage.rss() });
}

async function main(): Promise<void> {
  if (!process.send) {
    process.stderr.write('cluster-run worker: this process is started by `cluster-run --worker MODULE`, not by hand\n');
    process.exit(2);
  }
  // The runner is gone (it died or retires this worker): stop at once, as a killed process would.
  // In queue mode another machine takes the cluster up once its lock expires, so whatever the
  // cluster started dies too: the worker leads its own process group, and kills all of it.
  process.on('disconnect', () => {
    if (process.env.CLUSTER_RUN_QUEUE !== undefined) {
      try {
        process.kill(-process.pid, 'SIGKILL');
      } catch {
        // not a group leader (started by hand): exiting is all there is to do
      }
    }
    process.exit(0);
  });
  const modulePath = process.env.CLUSTER_RUN_WORKER_MODULE ?? '';
  let run: ClusterFunction | null;
  try {
    run = clusterFunction((await import(pathToFileURL(modulePath).href)) as Record<string, unknown>);
  } catch (error) {
    send({ type: 'fatal', error: `it failed to load: ${describe(error)}` }, () => process.exit(1));
    return;
  }
  if (run === null) {
    send({ type: 'fatal', error: 'it exports no function (export a default function or one named runCluster)' }, () => process.exit(1));
    return;
  }
  const cluster = run;
  process.on('message', (message: RunMessage) => {
    if (message?.type === 'run') void runOne(cluster, message);
  });
  send({ type: 'ready' });
}

void main();
