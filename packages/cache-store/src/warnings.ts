/** Where the store and the middleware report trouble. */
export interface PageStoreLogger {
  warn(message: string): void;
}

/**
 * Warnings about trouble that repeats: one line per topic (a server, an error message) at most
 * once per interval, saying how many were held back since the last one.
 */
export class WarningLog {
  private readonly topics = new Map<string, { at: number; held: number }>();

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
    // Topics may carry request data (an error's message): forget the quiet ones rather than grow.
    if (!seen && this.topics.size >= 1000) {
      for (const [name, entry] of this.topics) if (now - entry.at >= this.intervalMs) this.topics.delete(name);
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
