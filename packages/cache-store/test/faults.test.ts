import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { cacheKey } from '@sitecache/cache-key';
import { freePort, memcachedGet, startMemcached, type MemcachedServer, type RawResponse } from '@sitecache/test-services';
import { createHashRing } from '@sitecache/nginx-model';
import { pageCache, type PageCacheMiddleware } from '../src/index.js';
import { eventually, HOST, listen, requestTo, startSite, testConfig, type Site } from './site.js';

// nginx gives memcached 250 ms (the generated default) before the app renders, and the
// middleware never waits on memcached for a miss: no user waits anywhere near this.
const LATENCY_BOUND_MS = 1_000;
const PAGE = `<main>${'<p>a page of some size</p>'.repeat(800)}</main>`;

interface Flow {
  readonly responses: number;
  readonly statuses: Map<number, number>;
  readonly hits: number;
  readonly slowest: number;
}

/**
 * Requests from `workers` concurrent clients over `paths` for `ms`, running `fault` a third of
 * the way in. Every request is bounded and the loop stops by itself.
 */
async function flow(send: (path: string) => Promise<RawResponse>, paths: readonly string[], ms: number, fault: () => Promise<void> | void): Promise<Flow> {
  const statuses = new Map<number, number>();
  let responses = 0;
  let hits = 0;
  let slowest = 0;
  const end = Date.now() + ms;
  const faultAt = setTimeout(() => void fault(), ms / 3);
  const worker = async (w: number): Promise<void> => {
    for (let i = w; Date.now() < end; i += 7) {
      const start = performance.now();
      const response: RawResponse = await send(paths[i % paths.length] as string).catch(() => ({ status: 0, headers: {}, body: Buffer.alloc(0) }));
      slowest = Math.max(slowest, performance.now() - start);
      responses++;
      if (response.headers['x-cache'] === 'HIT') hits++;
      statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
    }
  };
  await Promise.all(Array.from({ length: 8 }, (_, w) => worker(w)));
  clearTimeout(faultAt);
  return { responses, statuses, hits, slowest };
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
    expect(result.responses).toBeGreaterThan(100);
    expect([...result.statuses]).toEqual([[200, result.responses]]);
    expect(result.slowest).toBeLessThan(LATENCY_BOUND_MS);
  };

  it('answers every request 200 within the bound when a memcached is killed, and stores there again once it is back', async () => {
    const victim = site.memcached[0] as MemcachedServer;
    const result = await flow((path) => site.request(path), paths, 2_000, () => victim.process.signal('SIGKILL'));
    expectAllServed(result);
    expect(result.hits).toBeGreaterThan(0);
    expect(victim.process.alive()).toBe(false);

    await victim.restart();
    await storedAgainOn(victim, '/after-restart');
  });

  it('answers every request 200 within the bound while a memcached is stopped (SIGSTOP: accepting, silent)', async () => {
    const victim = site.memcached[1] as MemcachedServer;
    const errorsBefore = cache.metrics.snapshot().errorsByServer[victim.address] ?? 0;
    try {
      const result = await flow(
        (path) => site.request(`${path}?stopped`),
        paths,
        2_500,
        () => victim.process.signal('SIGSTOP'),
      );
      expectAllServed(result);
      expect(cache.metrics.snapshot().errorsByServer[victim.address]).toBeGreaterThan(errorsBefore);
    } finally {
      victim.process.signal('SIGCONT');
    }
    // Woken again (SIGCONT): after the retry interval the writer finds it answering and stores there again.
    await storedAgainOn(victim, '/after-sigcont');
  });
});

describe('the store is off the response path', () => {
  it('sends the whole response while the store of its page is still waiting for memcached', async () => {
    // A memcached that takes every command and answers only when told to: a deterministic "slow".
    const sockets: Socket[] = [];
    let received = '';
    const silent = createServer((socket) => {
      sockets.push(socket);
      socket.on('data', (chunk) => (received += chunk.toString('latin1')));
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const address = `127.0.0.1:${(silent.address() as AddressInfo).port}`;
    const cache = pageCache(testConfig([address], { gzip: false }), { connectTimeoutMs: 1_000, commandTimeoutMs: 4_000, logger: { warn: () => undefined } });
    const app = await listen((req, res) =>
      cache(req, res, () => {
        res.setHeader('Content-Type', 'text/html; charset=utf-8');
        res.end(`${PAGE}${req.url}`);
      }),
    );
    try {
      const response = await requestTo(app.port, '/while-silent');
      // The visitor has the whole page, and the connection closed...
      expect(response.status).toBe(200);
      expect(response.body.toString()).toBe(`${PAGE}/while-silent`);
      // ...while its store has reached memcached and waits for the answer.
      await eventually(() => received.endsWith(`${PAGE}/while-silent\r\n`), 'the set command to arrive');
      expect(received).toMatch(new RegExp(`^set ${cacheKey(`https://${HOST}/while-silent`)} 8 600 ${PAGE.length + 13}\r\n`));
      expect(cache.metrics.snapshot()).toMatchObject({ stored: 0, errors: 0 });
      for (const socket of sockets) socket.write('STORED\r\n');
      await eventually(() => cache.metrics.snapshot().stored === 1, 'the store to finish once memcached answers');
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
      await app.stop();
      await cache.close();
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

  it('answers every request 200 within the bound while its memcached is stopped, then hits again after SIGCONT', async () => {
    const result = await flow((path) => requestTo(app.port, path), paths, 2_000, () => server.process.signal('SIGSTOP'));
    expectServed(result);
    expect(result.hits).toBeGreaterThan(0);
    server.process.signal('SIGCONT');
    await eventually(async () => (await requestTo(app.port, paths[0] as string)).headers['x-cache'] === 'HIT', 'hits after SIGCONT', 5_000);
  });

  const expectServed = (result: Flow): void => {
    expect([...result.statuses]).toEqual([[200, result.responses]]);
    expect(result.slowest).toBeLessThan(LATENCY_BOUND_MS);
  };
});
