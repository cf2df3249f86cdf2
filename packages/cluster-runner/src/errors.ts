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

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  return JSON.stringify(value) ?? String(value);
}
