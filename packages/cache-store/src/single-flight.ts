import type { OutgoingHttpHeaders } from 'node:http';

/** A finished response that may be handed to every request for the same page. */
export interface SharedResponse {
  readonly status: number;
  readonly headers: OutgoingHttpHeaders;
  readonly body: Buffer;
}

/** The render in progress for one key: its leader settles it once, with a page or with nothing. */
export interface Flight {
  /** Hands `response` to every follower waiting (undefined: they render themselves), and ends the flight. */
  settle(response: SharedResponse | undefined): void;
}

/**
 * Concurrent misses for one key in one process render once: the first request leads, the
 * others wait for its response, each for at most `waitMs`, and then render themselves.
 */
export class SingleFlight {
  private readonly flights = new Map<string, Set<(response: SharedResponse | undefined) => void>>();

  /** Starts a flight for `key`, or returns undefined when one is already under way. */
  lead(key: string): Flight | undefined {
    if (this.flights.has(key)) return undefined;
    const waiters = new Set<(response: SharedResponse | undefined) => void>();
    this.flights.set(key, waiters);
    let settled = false;
    return {
      settle: (response) => {
        if (settled) return;
        settled = true;
        if (this.flights.get(key) === waiters) this.flights.delete(key);
        for (const wake of waiters) wake(response);
        waiters.clear();
      },
    };
  }

  /**
   * Waits for the leader of `key`: its response, or undefined when there is no flight, the
   * leader's response cannot be shared, or `waitMs` passed first.
   */
  join(key: string, waitMs: number): Promise<SharedResponse | undefined> | undefined {
    const waiters = this.flights.get(key);
    if (!waiters) return undefined;
    return new Promise((resolve) => {
      const wake = (response: SharedResponse | undefined): void => {
        clearTimeout(timer);
        waiters.delete(wake);
        resolve(response);
      };
      const timer = setTimeout(() => wake(undefined), waitMs);
      waiters.add(wake);
    });
  }

  /** Keys with a render under way. */
  get size(): number {
    return this.flights.size;
  }
}
