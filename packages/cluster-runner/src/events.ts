import type { EndReason } from './log.js';

/** Counts of the whole job at the moment of an event. */
export interface RunStats {
  readonly clusters: number;
  /** Done clusters, including those done by earlier runs (and in queue mode by other runners). */
  readonly done: number;
  /** Clusters whose last attempt failed and that will not be retried (in queue mode: failed for good, on any runner). */
  readonly failed: number;
  readonly running: number;
  /** Clusters done since this run started, for the rate: by this runner, or in queue mode by every runner. */
  readonly doneThisRun: number;
  /** When this run started (ms since the epoch). */
  readonly startedAt: number;
}

/** Why a run stopped before every cluster was tried. */
export type StopReason = 'SIGINT' | 'SIGTERM' | 'abort' | 'halt';

/** What {@link RunOptions.onProgress} receives. */
export type ProgressEvent =
  | {
      readonly type: 'start';
      readonly cluster: number;
      readonly attempt: number;
      readonly pid: number | null;
      readonly stats: RunStats;
    }
  | {
      readonly type: 'end';
      readonly cluster: number;
      readonly attempt: number;
      readonly why: EndReason;
      readonly exitCode: number | null;
      readonly signal: string | null;
      readonly durationMs: number;
      readonly peakRss: number | null;
      readonly error: string | null;
      /** Set when this run will try the cluster again after this many milliseconds. */
      readonly retryInMs: number | null;
      readonly stats: RunStats;
    }
  | {
      /** A process left running by a runner that died, stopped before its cluster runs again. */
      readonly type: 'orphan';
      readonly cluster: number | null;
      readonly pid: number;
      readonly stats: RunStats;
    }
  | { readonly type: 'memory-wait'; readonly availableBytes: number; readonly memFree: number; readonly stats: RunStats }
  | {
      /** Queue mode: the runner lost its connection to Redis (and keeps trying), or has it back. */
      readonly type: 'connection';
      readonly state: 'lost' | 'back';
      /** The queue's URL, without a password. */
      readonly address: string;
      readonly error: string | null;
      readonly stats: RunStats;
    }
  | { readonly type: 'stopping'; readonly reason: StopReason; readonly stats: RunStats };
