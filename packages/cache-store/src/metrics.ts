import { SKIP_REASONS, type SkipReason } from './policy.js';

/** The counters at one moment. */
export interface MetricsSnapshot {
  /** Pages memcached answered STORED for. */
  readonly stored: number;
  /** Bytes of those pages as stored (after gzip). */
  readonly storedBytes: number;
  /** Pages not stored, by reason. Every reason is present, most at 0. */
  readonly skipped: Readonly<Record<SkipReason, number>>;
  /** memcached failures: refused, timed out or unreachable. */
  readonly errors: number;
  /** The same failures per server. */
  readonly errorsByServer: Readonly<Record<string, number>>;
  /** Requests that took a concurrent leader's response instead of rendering. */
  readonly singleFlightJoins: number;
  /** Requests the app answered from memcached itself (`serveFromCache`). */
  readonly hits: number;
  /** `serveFromCache` lookups that found nothing (or could not ask). */
  readonly misses: number;
}

/** Counters shared by a page store and the middleware built on it. */
export interface PageCacheMetrics {
  /** A copy of the counters now. */
  snapshot(): MetricsSnapshot;
  /** The counters in Prometheus' text exposition format (version 0.0.4). */
  prometheus(): string;
}

/** The mutable side, for the store and the middleware. */
export class MetricsRecorder implements PageCacheMetrics {
  private stored = 0;
  private storedBytes = 0;
  private readonly skipped = Object.fromEntries(SKIP_REASONS.map((r) => [r, 0])) as Record<SkipReason, number>;
  private readonly errorsByServer: Record<string, number> = {};
  private singleFlightJoins = 0;
  private hits = 0;
  private misses = 0;

  constructor(servers: readonly string[]) {
    for (const server of servers) this.errorsByServer[server] = 0;
  }

  recordStored(bytes: number): void {
    this.stored++;
    this.storedBytes += bytes;
  }

  recordSkipped(reason: SkipReason): void {
    this.skipped[reason]++;
  }

  recordError(server: string): void {
    this.errorsByServer[server] = (this.errorsByServer[server] ?? 0) + 1;
  }

  recordJoin(): void {
    this.singleFlightJoins++;
  }

  recordLookup(hit: boolean): void {
    if (hit) this.hits++;
    else this.misses++;
  }

  snapshot(): MetricsSnapshot {
    return {
      stored: this.stored,
      storedBytes: this.storedBytes,
      skipped: { ...this.skipped },
      errors: Object.values(this.errorsByServer).reduce((a, b) => a + b, 0),
      errorsByServer: { ...this.errorsByServer },
      singleFlightJoins: this.singleFlightJoins,
      hits: this.hits,
      misses: this.misses,
    };
  }

  prometheus(): string {
    const s = this.snapshot();
    const lines: string[] = [];
    const counter = (name: string, help: string, samples: [labels: string, value: number][]): void => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} counter`);
      for (const [labels, value] of samples) lines.push(`${name}${labels} ${value}`);
    };
    counter('sitecache_pages_stored_total', 'Pages written to memcached.', [['', s.stored]]);
    counter('sitecache_stored_bytes_total', 'Bytes of pages written to memcached, as stored.', [['', s.storedBytes]]);
    counter(
      'sitecache_pages_skipped_total',
      'Pages not stored, by reason.',
      SKIP_REASONS.map((reason) => [`{reason="${reason}"}`, s.skipped[reason]]),
    );
    counter(
      'sitecache_memcached_errors_total',
      'memcached commands that failed or timed out, by server.',
      Object.entries(s.errorsByServer).map(([server, n]) => [`{server="${label(server)}"}`, n]),
    );
    counter('sitecache_single_flight_joins_total', 'Requests served a concurrent render of the same page.', [
      ['', s.singleFlightJoins],
    ]);
    counter('sitecache_cache_lookups_total', 'serveFromCache lookups, by result.', [
      ['{result="hit"}', s.hits],
      ['{result="miss"}', s.misses],
    ]);
    return `${lines.join('\n')}\n`;
  }
}

function label(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}
