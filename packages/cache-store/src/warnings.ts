/** Where the store and the middleware report trouble. */
export interface PageStoreLogger {
  warn(message: string): void;
}

/** Topics a WarningLog remembers at once: topics may carry request data (an error's message). */
export const MAX_TOPICS = 1000;

/**
 * Warnings about trouble that repeats: one line per topic (a server, an error message) at most
 * once per interval, saying how many were held back since the last one. Past MAX_TOPICS topics
 * logged within an interval, new topics share one line per interval, so a flood of distinct
 * messages grows neither the memory nor the log.
 */
export class WarningLog {
  private readonly topics = new Map<string, { at: number; held: number }>();
  /** The topics that found no room: when one was last logged, and how many were held back since. */
  private overflow = { at: Number.NEGATIVE_INFINITY, held: 0 };
  /** When the oldest topic left by the last pruning turns quiet: no pruning frees one before. */
  private pruneAfter = 0;

  constructor(
    private readonly logger: PageStoreLogger,
    private readonly intervalMs: number,
  ) {}

  /** Logs `message` unless `topic` was logged less than an interval ago. Never throws. */
  warn(topic: string, message: string): void {
    const now = Date.now();
    const seen = this.topics.get(topic);
    if (seen && now - seen.at < this.intervalMs) {
      seen.held++;
      return;
    }
    // Forget the quiet topics rather than grow.
    if (!seen && this.topics.size >= MAX_TOPICS && now >= this.pruneAfter) {
      let oldest = now;
      for (const [name, entry] of this.topics) {
        if (now - entry.at >= this.intervalMs) this.topics.delete(name);
        else oldest = Math.min(oldest, entry.at);
      }
      this.pruneAfter = oldest + this.intervalMs;
    }
    if (!seen && this.topics.size >= MAX_TOPICS) {
      if (now - this.overflow.at < this.intervalMs) {
        this.overflow.held++;
        return;
      }
      const others = this.overflow.held;
      this.overflow = { at: now, held: 0 };
      this.say(`${message} (over ${MAX_TOPICS} kinds of warning within the interval; ${others} of new kinds held back since the last such line)`);
      return;
    }
    const held = seen?.held ?? 0;
    this.topics.set(topic, { at: now, held: 0 });
    this.say(held > 0 ? `${message} (${held} more since the last warning)` : message);
  }

  /** Logs `message` now. Never throws: a broken logger must not turn into a broken page. */
  say(message: string): void {
    try {
      this.logger.warn(message);
    } catch {
      // Nowhere left to report it.
    }
  }
}

/** An error's message for a warning. Never throws, whatever was thrown. */
export function describeError(error: unknown): string {
  try {
    return error instanceof Error ? error.message : String(error);
  } catch {
    return 'an error that cannot be described';
  }
}
