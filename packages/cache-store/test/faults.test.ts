import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { cacheKey } from '@sitecache/cache-key';
import { freePort, memcachedGet, startMemcached, type MemcachedServer, type RawResponse } from '@sitecache/test-services';
import { createHashRing } from '@sitecache/nginx-model';
import { pageCache, type PageCacheMiddleware } from '../src/index.js';
import { eventually, HOST, listen, requestTo, startHeldMemcached, startSite, testConfig, type Site } from './site.js';

const PAGE = `<main>${'<p>a page of some size</p>'.repeat(800)}</main>`;
// Requests per flow, and after how many of them the fault strikes (the others flow on meanwhile).
const REQUESTS = 300;
const FAULT_AFTER = 100;

interface Flow {
  readonly responses: number;
  readonly statuses: Map<number, number>;
  readonly hits: number;
}

/**
 * REQUESTS requests from 8 concurrent clients over `paths`, running `fault` once FAULT_AFTER have
 * been answered. Each test undoes the fault only after the flow is over, so every response
 * arrives while memcached is still down: a request that waited for memcached to come back would
 * hold the flow until the test times out. (nginx gives memcached 250 ms, the generated default;
 * the middleware never waits on memcached for a miss.)
 */
async function flow(send: (path: string) => Promise<RawResponse>, paths: readonly string[], fault: () => Promise<void> | void): Promise<Flow> {
  const statuses = new Map<number, number>();
  let sent = 0;
  let responses = 0;
  let hits = 0;
  const worker = async (): Promise<void> => {
    while (sent < REQUESTS) {
      const path = paths[(sent++ * 7) % paths.length] as string;
      const response: RawResponse = await send(path).catch(() => ({ status: 0, headers: {}, body: Buffer.alloc(0) }));
      if (++responses === FAULT_AFTER) await fault();
      if (response.headers['x-cache'] === 'HIT') hits++;
      statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  return { responses, statuses, hits };
}

/** Pages the writer is done with: stored, or skipped because memcached could not take them then. */
function settled(cache: PageCacheMiddleware): number {
  const { stored, skipped } = cache.metrics.snapshot();
  return stored + skipped['server-down'] + skipped.busy + skipped['memcached-error'];
}

const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown): void => {
  unhandled.push(reason);
};
beforeAll(() => {
  process.on('unhandledRejection', onUnhandled);
});
afterAll(() => {
  process.off('unhandledRejection', onUnhandled);
  expect(unhandled).toEqual([]);
});

describe('memcached faults while requests flow through nginx', () => {
  let site: Site;
  let cache: PageCacheMiddleware;
  let app: Awaited<ReturnType<typeof listen>>;
  const paths = Array.from({ length: 300 }, (_, i) => `/flow/${i}`);

  beforeAll(async () => {
    const appPort = await freePort();
    site = await startSite({ memcachedCount: 3, appPort });
    cache = pageCache(site.config, { retryIntervalMs: 300, logger: { warn: () => undefined } });
    app = await listen(
      (req, res) =>
        cache(req, res, () => {
          res.setHeader('Content-Type', 'text/html; charset=utf-8');
          res.end(`${PAGE}${req.url}`);
        }),
      appPort,
    );
    // Warm: the pages stored, so the flows below mix hits with the misses a fault causes.
    for (const path of paths) await site.request(path);
    await eventually(() => settled(cache) === paths.length, 'the warm-up stores to settle');
  });
  afterAll(async () => {
    await site?.stop();
    await app?.stop();
    await cache?.close();
  });

  /** Requests new pages that nginx's ring puts on `victim` until every one of them is stored there. */
  const storedAgainOn = async (victim: MemcachedServer, prefix: string): Promise<void> => {
    const ring = createHashRing(site.config.memcached);
    const fresh = Array.from({ length: 200 }, (_, i) => `${prefix}/${i}`).filter(
      (path) => ring.serverFor(cacheKey(`https://${HOST}${path}`)) === victim.address,
    );
    expect(fresh.length).toBeGreaterThan(20);
    await eventually(
      async () => {
        for (const path of fresh) await site.request(path);
        const found = await Promise.all(fresh.map((path) => memcachedGet(victim.address, cacheKey(`https://${HOST}${path}`))));
        return found.every((item) => item !== null);
      },
      `pages to be stored on ${victim.address} again`,
      10_000,
    );
  };

  const expectAllServed = (result: Flow): void => {
    expect([...result.statuses]).toEqual([[200, REQUESTS]]);
  };

  it('answers every request 200 while a memcached is killed, none waiting for it, and stores there again once it is back', async () => {
    const victim = site.memcached[0] as MemcachedServer;
    const errorsBefore = cache.metrics.snapshot().errorsByServer[victim.address] ?? 0;
    const result = await flow((path) => site.request(path), paths, () => victim.process.signal('SIGKILL'));
    expectAllServed(result);
    expect(result.hits).toBeGreaterThan(0);
    expect(victim.process.alive()).toBe(false);
    // Seen as the server's failure, whichever command met it first (a render's claim, most often).
    expect(cache.metrics.snapshot().errorsByServer[victim.address] ?? 0).toBeGreaterThan(errorsBefore);

    await victim.restart();
    await storedAgainOn(victim, '/after-restart');
  });

  it('answers every request 200 while a memcached is stopped (SIGSTOP: accepting, silent), none waiting for it', async () => {
    const victim = site.memcached[1] as MemcachedServer;
    const errorsBefore = cache.metrics.snapshot().errorsByServer[victim.address] ?? 0;
    try {
      const result = await flow(
        (path) => site.request(`${path}?stopped`),
        paths,
        () => victim.process.signal('SIGSTOP'),
      );
      expectAllServed(result);
      // The writer's own timeout (not memcached coming back) ends the stores stuck on it.
      await eventually(() => (cache.metrics.snapshot().errorsByServer[victim.address] ?? 0) > errorsBefore, 'the stuck stores to count as errors');
    } finally {
      victim.process.signal('SIGCONT');
    }
    // Woken again (SIGCONT): after the retry interval the writer finds it answering and stores there again.
    await storedAgainOn(victim, '/after-sigcont');
  });
});

describe('the store is off the response path', () => {
  it('sends the whole response while the store of its page is still waiting for memcached', async () => {
    const held = await startHeldMemcached();
    // One connection, so the replies below answer the commands in the order they were sent.
    const cache = pageCache(testConfig([held.address], { gzip: false }), {
      connectTimeoutMs: 1_000,
      commandTimeoutMs: 4_000,
      connectionsPerServer: 1,
      logger: { warn: () => undefined },
    });
    const app = await listen((req, res) =>
      cache(req, res, () => {
        res.setHeader('Content-Type', 'text/html; charset=utf-8');
        res.end(`${PAGE}${req.url}`);
      }),
    );
    const key = cacheKey(`https://${HOST}/while-silent`);
    try {
      const responding = requestTo(app.port, '/while-silent');
      // Before it renders, the request claims the page: its lock, and the purge marker, count of
      // purges by tag and flush token it renders under.
      await eventually(() => held.received().includes('sitecache:flushed\r\n'), 'the claim to arrive');
      expect(held.received()).toMatch(new RegExp(`^add ${key}.lock 0 11 1\r\n1\r\nget ${key}.purged tag:[0-9a-f]{32}.generation sitecache:flushed\r\n$`));
      held.answer('STORED\r\nEND\r\n');
      const response = await responding;
      // The visitor has the whole page, and the connection closed...
      expect(response.status).toBe(200);
      expect(response.body.toString()).toBe(`${PAGE}/while-silent`);
      // ...while its store has reached memcached and waits for the answer: the marker read again
      // (a purge since the claim would stop the set), then the set.
      const marks = (): number => held.received().split(`get ${key}.purged sitecache:flushed\r\n`).length - 1;
      await eventually(() => marks() === 1, 'the marker to be read before the set');
      held.answer('END\r\n');
      await eventually(() => held.received().endsWith(`${PAGE}/while-silent\r\n`), 'the set command to arrive');
      expect(held.received()).toContain(`set ${key} 8 600 ${PAGE.length + 13}\r\n`);
      expect(cache.metrics.snapshot()).toMatchObject({ stored: 0, errors: 0 });
      held.answer('STORED\r\n');
      // After the set it reads the purge marker again: unchanged, so the page stays.
      await eventually(() => marks() === 2, 'the marker to be read after the set');
      held.answer('END\r\n');
      await eventually(() => cache.metrics.snapshot().stored === 1, 'the store to finish once memcached answers');
    } finally {
      await app.stop();
      await cache.close();
      await held.stop();
    }
  });
});

describe('memcached faults with serveFromCache and no nginx', () => {
  let server: MemcachedServer;
  let cache: PageCacheMiddleware;
  let app: Awaited<ReturnType<typeof listen>>;
  const paths = Array.from({ length: 50 }, (_, i) => `/direct/${i}`);

  beforeAll(async () => {
    server = await startMemcached();
    cache = pageCache(testConfig([server.address]), { serveFromCache: true, logger: { warn: () => undefined } });
    app = await listen((req, res) =>
      cache(req, res, () => {
        res.setHeader('Content-Type', 'text/html; charset=utf-8');
        res.end(`${PAGE}${req.url}`);
      }),
    );
    for (const path of paths) await requestTo(app.port, path);
    await eventually(() => settled(cache) === paths.length, 'the stores to settle');
  });
  afterAll(async () => {
    server?.process.signal('SIGCONT');
    await app?.stop();
    await cache?.close();
    await server?.stop();
  });

  it('answers every request 200 while its memcached is stopped, none waiting for it, then hits again after SIGCONT', async () => {
    const result = await flow((path) => requestTo(app.port, path), paths, () => server.process.signal('SIGSTOP'));
    expectServed(result);
    expect(result.hits).toBeGreaterThan(0);
    server.process.signal('SIGCONT');
    await eventually(async () => (await requestTo(app.port, paths[0] as string)).headers['x-cache'] === 'HIT', 'hits after SIGCONT', 5_000);
  });

  const expectServed = (result: Flow): void => {
    expect([...result.statuses]).toEqual([[200, REQUESTS]]);
  };
});
