import type { OutgoingHttpHeaders } from 'node:http';
import type { StoredPage } from './page-store.js';

/** A finished response that may be handed to every request for the same page. */
export interface SharedResponse {
  readonly status: number;
  readonly headers: OutgoingHttpHeaders;
  readonly body: Buffer;
}

/**
 * A copy from memcached handed to the requests waiting for a page: each answers with it as nginx
 * would answer that request (gzip or not), marked `HIT` or `STALE`.
 */
export interface StoredCopy {
  readonly stored: StoredPage;
  readonly label: 'HIT' | 'STALE';
}

/** What a follower is answered with. */
export type FlightAnswer = SharedResponse | StoredCopy;

/** The render in progress for one key: its leader settles it once, with a page or with nothing. */
export interface Flight {
  /**
   * Answers the followers waiting now, and those that join from now on, with `answer` at once,
   * while the flight goes on (the stale copy, while a render is under way).
   */
  meanwhile(answer: FlightAnswer): void;
  /** Hands `answer` to every follower waiting (undefined: they render themselves), and ends the flight. */
  settle(answer: FlightAnswer | undefined): void;
}

interface Waiting {
  readonly waiters: Set<(answer: FlightAnswer | undefined) => void>;
  interim: FlightAnswer | undefined;
}

/**
 * Concurrent misses for one key in one process render once: the first request leads, the
 * others wait for its response, each for at most `waitMs`, and then render themselves.
 */
export class SingleFlight {
  private readonly flights = new Map<string, Waiting>();

  /** Starts a flight for `key`, or returns undefined when one is already under way. */
  lead(key: string): Flight | undefined {
    if (this.flights.has(key)) return undefined;
    const flight: Waiting = { waiters: new Set(), interim: undefined };
    this.flights.set(key, flight);
    let settled = false;
    const wakeAll = (answer: FlightAnswer | undefined): void => {
      for (const wake of flight.waiters) wake(answer);
      flight.waiters.clear();
    };
    return {
      meanwhile: (answer) => {
        if (settled) return;
        flight.interim = answer;
        wakeAll(answer);
      },
      settle: (answer) => {
        if (settled) return;
        settled = true;
        if (this.flights.get(key) === flight) this.flights.delete(key);
        wakeAll(answer);
      },
    };
  }

  /**
   * Waits for the leader of `key`: its answer, or undefined when there is no flight, the
   * leader's response cannot be shared, or `waitMs` passed first.
   */
  join(key: string, waitMs: number): Promise<FlightAnswer | undefined> | undefined {
    const flight = this.flights.get(key);
    if (!flight) return undefined;
    if (flight.interim) return Promise.resolve(flight.interim);
    return new Promise((resolve) => {
      const wake = (answer: FlightAnswer | undefined): void => {
        clearTimeout(timer);
        flight.waiters.delete(wake);
        resolve(answer);
      };
      const timer = setTimeout(() => wake(undefined), waitMs);
      flight.waiters.add(wake);
    });
  }

  /** Keys with a render under way. */
  get size(): number {
    return this.flights.size;
  }
}
