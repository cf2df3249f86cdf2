// One side of a miss-path row in a process of its own, so that its garbage collections, its
// off-heap memory and its CPU time are its own: the app alone, or the app behind pageCache.
// Driven by bench:store over IPC: "start" a round, "stop" it (answered with the round's figures), "exit".
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { constants, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks';
import type { SitecacheConfigInput } from '@sitecache/config';
import { pageCache, type PageCacheMiddleware } from '../src/index.js';
import { appOf, type RenderCost } from './app.js';

export interface SideSpec {
  readonly cost: RenderCost;
  /** The app behind pageCache with this config; none: the app alone. */
  readonly config?: SitecacheConfigInput;
}

/** What one side did in one round. */
export interface RoundFigures {
  /** Full (mark-compact) collections. */
  readonly major: number;
  /** Young-generation collections (scavenges). */
  readonly minor: number;
  /** Time spent in collections, ms. */
  readonly gcMs: number;
  /** The most `process.memoryUsage().arrayBuffers` was at (sampled every 20 ms), bytes. */
  readonly peakArrayBuffers: number;
  /** CPU time of the process, user + system, µs. */
  readonly cpuUs: number;
  readonly requests: number;
  /** With pageCache, since the process started: pages stored, and not stored by reason. */
  readonly stored?: number;
  readonly skipped?: Readonly<Record<string, number>>;
  readonly errors?: number;
}

export type SideMessage = { type: 'ready'; port: number } | { type: 'started' } | { type: 'round'; figures: RoundFigures };

// perf_hooks names the kinds by V8's GCType bits.
const MAJOR = constants.NODE_PERFORMANCE_GC_MAJOR;
const MINOR = constants.NODE_PERFORMANCE_GC_MINOR;

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2] as string) as SideSpec;
  const app = appOf(spec.cost);
  const cache: PageCacheMiddleware | undefined = spec.config ? pageCache(spec.config, { logger: { warn: () => undefined } }) : undefined;
  let requests = 0;
  const server = createServer(
    cache
      ? (req, res) => {
          requests++;
          cache(req, res, () => app(req, res));
        }
      : (req, res) => {
          requests++;
          app(req, res);
        },
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));

  let major = 0;
  let minor = 0;
  let gcMs = 0;
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries() as (PerformanceEntry & { detail?: { kind?: number } })[]) {
      const kind = entry.detail?.kind;
      if (kind === MAJOR) major++;
      else if (kind === MINOR) minor++;
      gcMs += entry.duration;
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  let peak = 0;
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().arrayBuffers);
  }, 20);
  let cpu = process.cpuUsage();

  const reply = (message: SideMessage): void => void process.send?.(message);
  process.on('message', (message: { type: string }) => {
    if (message.type === 'start') {
      major = minor = gcMs = requests = 0;
      peak = process.memoryUsage().arrayBuffers;
      cpu = process.cpuUsage();
      reply({ type: 'started' });
    } else if (message.type === 'stop') {
      const used = process.cpuUsage(cpu);
      // The observer hears of a collection on a later turn of the loop.
      setTimeout(() => {
        const metrics = cache?.metrics.snapshot();
        reply({
          type: 'round',
          figures: {
            major,
            minor,
            gcMs,
            peakArrayBuffers: peak,
            cpuUs: used.user + used.system,
            requests,
            ...(metrics ? { stored: metrics.stored, skipped: metrics.skipped, errors: metrics.errors } : {}),
          },
        });
      }, 20);
    } else if (message.type === 'exit') {
      clearInterval(sampler);
      observer.disconnect();
      server.closeAllConnections();
      server.close();
      void (cache ? cache.close() : Promise.resolve()).finally(() => process.exit(0));
    }
  });
  // The bench went away without a word (killed): so does this side.
  process.once('disconnect', () => process.exit(0));
  reply({ type: 'ready', port: (server.address() as AddressInfo).port });
}

main().catch((error: Error) => {
  console.error(`bench side failed: ${error.stack ?? error.message}`);
  process.exit(1);
});
