import { readFileSync } from 'node:fs';
import { freemem } from 'node:os';
import { groupRss, hasProc } from './proc.js';

/**
 * Memory the machine can give new processes without swapping: MemAvailable, as GNU parallel's
 * --memfree reads it (free memory alone ignores the page cache the kernel would drop).
 */
export function availableMemory(): number {
  if (hasProc) {
    try {
      const match = /^MemAvailable:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'latin1'));
      if (match) return Number(match[1]) * 1024;
    } catch {
      // fall back below
    }
  }
  return freemem();
}

/** How often the process trees' memory is sampled: a watchdog's reaction time, not a hard limit. */
export const RSS_SAMPLE_MS = 200;

/**
 * Samples the resident memory of process groups (each cluster's process tree) in one pass over
 * /proc per tick, while there is any group to watch.
 */
export class TreeMemoryWatch {
  private readonly groups = new Set<number>();
  private timer: NodeJS.Timeout | null = null;
  private readonly onSample: (samples: Map<number, number>) => void;
  private readonly intervalMs: number;

  constructor(onSample: (samples: Map<number, number>) => void, intervalMs = RSS_SAMPLE_MS) {
    this.onSample = onSample;
    this.intervalMs = intervalMs;
  }

  watch(pgid: number): void {
    if (!hasProc) return;
    this.groups.add(pgid);
    if (this.timer === null) {
      this.timer = setInterval(() => this.sample(), this.intervalMs);
      // Sampling alone must not keep the runner alive.
      this.timer.unref();
    }
  }

  unwatch(pgid: number): void {
    this.groups.delete(pgid);
    if (this.groups.size === 0 && this.timer !== null) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  private sample(): void {
    if (this.groups.size > 0) this.onSample(groupRss(this.groups));
  }

  stop(): void {
    this.groups.clear();
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }
}
