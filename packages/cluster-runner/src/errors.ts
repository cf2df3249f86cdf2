/**
 * An option the runner cannot use. `option` is named as the caller wrote it: `--jobs` on the
 * command line, `jobs` through the API.
 */
export class RunnerOptionError extends Error {
  override readonly name = 'RunnerOptionError';
  readonly option: string;
  readonly value: unknown;

  constructor(option: string, expected: string, value: unknown) {
    super(`Invalid ${option}: expected ${expected}, got ${describe(value)}`);
    this.option = option;
    this.value = value;
  }
}

/** A cluster spec such as `3/10` that is not `i/N` with 1 <= i <= N. */
export class ClusterSpecError extends Error {
  override readonly name = 'ClusterSpecError';
  readonly spec: unknown;

  constructor(spec: unknown, expected = '"i/N" with whole numbers 1 <= i <= N') {
    super(`Invalid cluster ${describe(spec)}: expected ${expected}`);
    this.spec = spec;
  }
}

/**
 * The log was written for another job (another cluster count or command). Mixing the two would
 * mark clusters done that this command never ran.
 */
export class LogMismatchError extends Error {
  override readonly name = 'LogMismatchError';
  readonly log: string;
  /** What the log was written for, and what this run asked for, in the same words. */
  readonly written: string;
  readonly requested: string;

  constructor(log: string, written: string, requested: string) {
    super(
      `Log "${log}" was written for ${written}, but this run is ${requested}. ` +
        'Rerun with the same clusters and command to resume, pass --fresh to start over ' +
        '(the old log is kept beside it), or choose another --log.',
    );
    this.log = log;
    this.written = written;
    this.requested = requested;
  }
}

/** The file given as the log is not a cluster-run log, so the runner will not append to it. */
export class LogFormatError extends Error {
  override readonly name = 'LogFormatError';
  readonly log: string;

  constructor(log: string, reason: string) {
    super(`"${log}" is not a cluster-run log: ${reason}`);
    this.log = log;
  }
}

/** Another runner holds the log: two runners on one log would run clusters twice. */
export class LogLockedError extends Error {
  override readonly name = 'LogLockedError';
  readonly log: string;
  /** The pid of the runner holding the lock. */
  readonly holderPid: number;
  readonly holderHost: string;

  constructor(log: string, holderPid: number, holderHost: string, sameHost: boolean) {
    const who = sameHost ? `pid ${holderPid}` : `pid ${holderPid} on host ${holderHost}`;
    super(`Log "${log}" is in use by another cluster-run (${who}). Wait for it to finish or stop it first.`);
    this.log = log;
    this.holderPid = holderPid;
    this.holderHost = holderHost;
  }
}

/** A `--worker` module that cannot serve clusters: it failed to load or exports no function. */
export class WorkerModuleError extends Error {
  override readonly name = 'WorkerModuleError';
  readonly module: string;

  constructor(module: string, reason: string) {
    super(`Worker module "${module}" cannot run clusters: ${reason}`);
    this.module = module;
  }
}

/** The Redis behind `--queue` cannot be reached: nothing was enqueued. */
export class QueueUnreachableError extends Error {
  override readonly name = 'QueueUnreachableError';
  /** The queue's URL, with any password left out. */
  readonly url: string;

  constructor(url: string, reason: string) {
    super(`Cannot reach Redis at ${url}: ${reason}. Nothing was enqueued.`);
    this.url = url;
  }
}

/**
 * The Redis behind `--queue` may evict keys when it runs out of memory: it would drop jobs and
 * their locks silently, so BullMQ needs `maxmemory-policy noeviction`.
 */
export class QueuePolicyError extends Error {
  override readonly name = 'QueuePolicyError';
  readonly url: string;
  /** The policy the server has. */
  readonly policy: string;

  constructor(url: string, policy: string) {
    super(
      `Redis at ${url} has maxmemory-policy "${policy}", which may evict jobs and their locks; BullMQ needs "noeviction". ` +
        'Set "maxmemory-policy noeviction" in redis.conf (or run CONFIG SET maxmemory-policy noeviction) and start again.',
    );
    this.url = url;
    this.policy = policy;
  }
}

/**
 * The job name on the queue was enqueued for another job (another cluster count or command).
 * Working on it would mark clusters done that this command never ran.
 */
export class QueueMismatchError extends Error {
  override readonly name = 'QueueMismatchError';
  /** The job's name (`--name`). */
  readonly job: string;
  readonly url: string;
  /** What the queue holds, and what this run asked for, in the same words. */
  readonly written: string;
  readonly requested: string;

  constructor(job: string, url: string, written: string, requested: string) {
    super(
      `Job "${job}" on ${url} was enqueued as ${written}, but this run is ${requested}. ` +
        'Rerun with the same clusters and command to work on it, pass --fresh to replace it, or choose another --name.',
    );
    this.job = job;
    this.url = url;
    this.written = written;
    this.requested = requested;
  }
}

/** `--fresh` while runners still work on the job: replacing it under them would run clusters twice. */
export class QueueBusyError extends Error {
  override readonly name = 'QueueBusyError';
  readonly job: string;
  readonly url: string;
  /** Clusters running right now. */
  readonly running: number;

  constructor(job: string, url: string, running: number) {
    super(`Job "${job}" on ${url} has ${running} cluster(s) running: stop its runners (or wait for them) before --fresh starts it over.`);
    this.job = job;
    this.url = url;
    this.running = running;
  }
}

/** `cluster-run status` was asked about a job the queue does not hold. */
export class QueueJobNotFoundError extends Error {
  override readonly name = 'QueueJobNotFoundError';
  readonly job: string;
  readonly url: string;

  constructor(job: string, url: string) {
    super(`No job "${job}" on ${url}: nothing was enqueued under that --name.`);
    this.job = job;
    this.url = url;
  }
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  return JSON.stringify(value) ?? String(value);
}
