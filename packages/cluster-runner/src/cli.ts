#!/usr/bin/env node
import { parseArgs } from 'node:util';
import {
  ClusterSpecError,
  LogFormatError,
  LogLockedError,
  LogMismatchError,
  QueueBusyError,
  QueueJobNotFoundError,
  QueueMismatchError,
  QueuePolicyError,
  QueueUnreachableError,
  RunnerOptionError,
  WorkerModuleError,
} from './errors.js';
import { normalizeRunOptions, queueTarget, type RunOptions } from './options.js';
import { progressDisplay } from './progress.js';
import { runWithSettings } from './runner.js';

const HELP = `Usage: cluster-run --clusters N --log FILE [options] -- COMMAND [ARGS...]
       cluster-run --clusters N --log FILE --worker MODULE [options]
       cluster-run --clusters N --queue redis://HOST:PORT/DB --name JOB [options] -- COMMAND [ARGS...]
       cluster-run status --queue redis://HOST:PORT/DB --name JOB [--json]

Runs clusters 1..N of a big job, K at a time, each as its own process: in ARGS, {} becomes
i/N, {i} and {n} its parts; with no placeholder, i/N is appended. The log records every start
and end: run the same command again to resume, and only clusters not done run again.
With --queue the job lives in Redis (BullMQ) instead of a log: the same command on several
machines shares its N clusters, each machine running K at a time.

Options:
  -n, --clusters N               how many clusters: runs 1..N (required)
      --log FILE                 the resume log, JSON lines (required; not with --queue)
  -j, --jobs K                   clusters at a time (default: the number of CPUs)
      --output-dir DIR           each cluster's stdout and stderr files (default: FILE.output,
                                 with --queue JOB.output in the working directory)
      --fresh                    start over; the old log is kept beside it as FILE.<time>
                                 (with --queue: the job is replaced, refused while it runs)
      --shell                    run COMMAND through /bin/sh -c
      --retries R                try a failed cluster up to R more times (default 0): in this run,
                                 or with --queue on any machine
      --retry-delay DURATION     wait before the first retry, doubling after (default 1s)
      --timeout DURATION         stop a cluster that runs longer than this (default: none)
      --grace DURATION           wait between SIGTERM and SIGKILL when stopping (default 10s)
      --halt WHEN,fail=N         now or soon after N failed clusters, or N% (default never;
                                 not with --queue)
      --mem-free SIZE            start no cluster while available memory is below SIZE
      --max-rss SIZE             stop a cluster whose process tree uses more memory than SIZE
      --worker MODULE            worker mode: K long-lived Node workers run the module's function
      --max-clusters-per-worker M  worker mode: replace a worker after M clusters
      --json                     print the summary as JSON on standard output
  -h, --help                     show this help

Across machines:
      --queue URL                the job's Redis, redis://HOST:PORT/DB (replaces --log)
      --name JOB                 the job's name on the queue (required with --queue)
      --host NAME                this runner's name in the queue's records (default: host name)
      --lock-duration DURATION   a dead runner's clusters are taken up after this (default 30s)

DURATION: 500ms, 30s, 5m, 1h (a bare number is seconds). SIZE: 512M, 2G, 100k (powers of 1024).
Exit status: 0 when every cluster is done, 1 when some are not, 2 when the run cannot start,
130 or 143 after SIGINT or SIGTERM.
`;

const STATUS_HELP = `Usage: cluster-run status --queue redis://HOST:PORT/DB --name JOB [--json]

Prints where a job run with --queue stands: done, running (on which host, for how long),
waiting, failed (with exit codes and the last line of stderr), and an ETA.
Exit status: 0, or 2 when the queue cannot be read or holds no such job.
`;

/** Whole numbers stay text when they do not parse, so the error shows what was typed. */
function count(text: string | undefined): number | string | undefined {
  return text !== undefined && /^\d+$/.test(text) ? Number(text) : text;
}

async function status(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { queue: { type: 'string' }, name: { type: 'string' }, json: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false } },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(STATUS_HELP);
    return 0;
  }
  const target = queueTarget(values.queue, values.name, (key) => `--${key}`);
  const { readQueueStatus, formatStatus } = await import('./queue-status.js');
  const found = await readQueueStatus(target);
  process.stdout.write(values.json ? `${JSON.stringify(found)}\n` : formatStatus(found));
  return 0;
}

async function main(argv: string[]): Promise<number> {
  if (argv[0] === 'status') return status(argv.slice(1));
  const separator = argv.indexOf('--');
  const own = separator >= 0 ? argv.slice(0, separator) : argv;
  const { values, positionals } = parseArgs({
    args: own,
    options: {
      clusters: { type: 'string', short: 'n' },
      log: { type: 'string' },
      jobs: { type: 'string', short: 'j' },
      'output-dir': { type: 'string' },
      fresh: { type: 'boolean' },
      shell: { type: 'boolean' },
      retries: { type: 'string' },
      'retry-delay': { type: 'string' },
      timeout: { type: 'string' },
      grace: { type: 'string' },
      halt: { type: 'string' },
      'mem-free': { type: 'string' },
      'max-rss': { type: 'string' },
      worker: { type: 'string' },
      'max-clusters-per-worker': { type: 'string' },
      queue: { type: 'string' },
      name: { type: 'string' },
      host: { type: 'string' },
      'lock-duration': { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const command = separator >= 0 ? argv.slice(separator + 1) : positionals;
  if (separator >= 0 && positionals.length > 0) {
    throw new RunnerOptionError('arguments', 'options before -- and the command after it', positionals.join(' '));
  }
  const display = progressDisplay(process.stderr);
  const options: RunOptions = {
    clusters: count(values.clusters) as number,
    ...(values.log !== undefined ? { log: values.log } : {}),
    ...(values.queue !== undefined ? { queue: values.queue } : {}),
    ...(values.name !== undefined ? { name: values.name } : {}),
    ...(values.host !== undefined ? { host: values.host } : {}),
    ...(values['lock-duration'] !== undefined ? { lockDuration: values['lock-duration'] } : {}),
    ...(command.length > 0 ? { command } : {}),
    ...(values.worker !== undefined ? { worker: values.worker } : {}),
    ...(values.jobs !== undefined ? { jobs: count(values.jobs) as number } : {}),
    ...(values['output-dir'] !== undefined ? { outputDir: values['output-dir'] } : {}),
    ...(values.fresh !== undefined ? { fresh: values.fresh } : {}),
    ...(values.shell !== undefined ? { shell: values.shell } : {}),
    ...(values.retries !== undefined ? { retries: count(values.retries) as number } : {}),
    ...(values['retry-delay'] !== undefined ? { retryDelay: values['retry-delay'] } : {}),
    ...(values.timeout !== undefined ? { timeout: values.timeout } : {}),
    ...(values.grace !== undefined ? { grace: values.grace } : {}),
    ...(values.halt !== undefined ? { halt: values.halt } : {}),
    ...(values['mem-free'] !== undefined ? { memFree: values['mem-free'] } : {}),
    ...(values['max-rss'] !== undefined ? { maxRss: values['max-rss'] } : {}),
    ...(values['max-clusters-per-worker'] !== undefined
      ? { maxClustersPerWorker: count(values['max-clusters-per-worker']) as number }
      : {}),
    handleSignals: true,
    onProgress: display.onProgress,
  };
  const flags: Record<string, string> = { command: 'COMMAND (after --)', outputDir: '--output-dir', retryDelay: '--retry-delay' };
  const settings = normalizeRunOptions(options, (key) => flags[key] ?? `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`);
  const summary = await runWithSettings(settings);
  display.finish(summary);
  if (values.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
  return summary.exitCode;
}

/** Errors that mean "this run cannot start" rather than a fault in the runner. */
const REFUSALS = [
  RunnerOptionError,
  ClusterSpecError,
  LogMismatchError,
  LogFormatError,
  LogLockedError,
  WorkerModuleError,
  QueueUnreachableError,
  QueuePolicyError,
  QueueMismatchError,
  QueueBusyError,
  QueueJobNotFoundError,
];

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: Error) => {
    process.stderr.write(`cluster-run: ${error.message}\n`);
    const usage = (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') === true;
    if (usage) process.stderr.write(`\n${process.argv[2] === 'status' ? STATUS_HELP : HELP}`);
    process.exitCode = usage || REFUSALS.some((kind) => error instanceof kind) ? 2 : 1;
  },
);
