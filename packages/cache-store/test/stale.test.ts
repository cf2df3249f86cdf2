import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { cacheKey } from '@sitecache/cache-key';
import { staleKeyConfig } from '@sitecache/nginx-model';
import { memcachedCommand, memcachedGet, startMemcached, type MemcachedServer, type RawResponse } from '@sitecache/test-services';
import { createPageStore, pageCache, type PageStore } from '../src/index.js';
import { internalsOf, type PageStoreInternals } from '../src/page-store.js';
import { eventually, HOST, listenBehind, remainingTtl, requestTo, startApps, startCuttableMemcached, startPurgeRace, STEADY, testConfig, type AppProcesses, type PurgeRace } from './site.js';

const url = (path: string): string => `https://${HOST}${path}`;

describe('stale copies (config.grace)', () => {
  let servers: MemcachedServer[];
  let store: PageStore;
  const held = async (key: string): Promise<string | undefined> => (await memcachedGet(store.serverFor(key), key))?.value.toString();
  const staleKey = (path: string): string => cacheKey(url(path), staleKeyConfig(store.config));

  beforeAll(async () => {
    servers = [await startMemcached(), await startMemcached(), await startMemcached()];
    store = createPageStore(testConfig(servers.map((s) => s.address), { gzip: false, grace: 300 }), STEADY);
  });
  afterAll(async () => {
    await store?.close();
    for (const s of servers ?? []) await s.stop();
  });

  it('stores every page twice: under its key for its TTL, and under its stale key for TTL + grace, each on the server nginx reads that key from', async () => {
    const paths = Array.from({ length: 40 }, (_, i) => `/stale/${i}`);
    for (const path of paths) expect(await store.put(url(path), `<p>${path}</p>`, { ttl: 60 })).toMatchObject({ stored: true, ttl: 60, stale: true });
    for (const path of paths) {
      const key = store.keyFor(url(path));
      expect(await held(key)).toBe(`<p>${path}</p>`);
      expect(await held(staleKey(path))).toBe(`<p>${path}</p>`);
      // Read back to back: on a loaded machine seconds pass between the puts and these reads, so the
      // copies are compared with each other (memcached counts whole seconds: one apart at most).
      const ttl = (await remainingTtl(store.serverFor(key), key)) ?? 0;
      const staleTtl = (await remainingTtl(store.serverFor(staleKey(path)), staleKey(path))) ?? 0;
      expect(ttl).toBeGreaterThan(50);
      expect(ttl).toBeLessThanOrEqual(60);
      expect(staleTtl - ttl).toBeGreaterThanOrEqual(299);
      expect(staleTtl - ttl).toBeLessThanOrEqual(301);
    }
    // The two copies of a page live on different servers for some pages: each write chose its own.
    expect(paths.some((path) => store.serverFor(store.keyFor(url(path))) !== store.serverFor(staleKey(path)))).toBe(true);
  });

  it('purges both copies by default, and only the fresh one with soft', async () => {
    for (const path of ['/purge/hard', '/purge/soft']) await store.put(url(path), `<p>${path}</p>`);
    expect(await store.purge(url('/purge/hard'))).toMatchObject([{ result: 'purged' }]);
    expect(await held(store.keyFor(url('/purge/hard')))).toBeUndefined();
    expect(await held(staleKey('/purge/hard'))).toBeUndefined();
    expect(await store.purge(url('/purge/soft'), { soft: true })).toMatchObject([{ result: 'purged' }]);
    expect(await held(store.keyFor(url('/purge/soft')))).toBeUndefined();
    expect(await held(staleKey('/purge/soft'))).toBe('<p>/purge/soft</p>');
    expect((await store.get(url('/purge/soft'), { stale: true }))?.body.toString()).toBe('<p>/purge/soft</p>');
    expect(await store.purge(url('/purge/never'))).toMatchObject([{ result: 'not-cached' }]);
  });

  it('writes no stale copy with grace 0', async () => {
    const plain = createPageStore(testConfig(servers.map((s) => s.address), { gzip: false }), STEADY);
    try {
      const result = await plain.put(url('/no-grace'), '<p>no grace</p>');
      expect(result).toMatchObject({ stored: true });
      expect(result).not.toHaveProperty('stale');
      expect(await held(staleKey('/no-grace'))).toBeUndefined();
    } finally {
      await plain.close();
    }
  });
});

describe('one render per page across app processes', () => {
  let servers: MemcachedServer[];
  let store: PageStore;
  let apps: AppProcesses;
  const RENDER_MS = 300;

  beforeAll(async () => {
    servers = [await startMemcached(), await startMemcached()];
    // appTimeout 1: the render lock lives 1 to 2 seconds, so a killed renderer's lock is soon gone.
    const config = testConfig(servers.map((s) => s.address), { gzip: true, grace: 300, appTimeout: 1 });
    store = createPageStore(config, STEADY);
    apps = await startApps(4, { config, renderMs: RENDER_MS, options: { serveFromCache: true, singleFlightWaitMs: 1_000, ...STEADY, logger: undefined } });
  });
  afterAll(async () => {
    await apps?.stop();
    await store?.close();
    for (const s of servers ?? []) await s.stop();
  });

  const rendersOf = (path: string): number => apps.renders().filter((r) => r.url === path).length;
  /** Leaves the page as an expired one looks: its stale copy, no fresh copy. */
  const expired = async (path: string): Promise<void> => {
    await store.put(url(path), `<p>${path} old</p>`, { ttl: 60 });
    await memcachedCommand(store.serverFor(store.keyFor(url(path))), `delete ${store.keyFor(url(path))}\r\nget sitecache-test-no-such-key\r\n`);
  };
  const burst = (path: string, count: number): Promise<RawResponse[]> =>
    Promise.all(Array.from({ length: count }, (_, i) => requestTo(apps.ports[i % apps.ports.length] as number, path)));
  const labels = (responses: RawResponse[]): Record<string, number> => {
    const counts: Record<string, number> = {};
    for (const r of responses) counts[r.headers['x-cache'] ?? 'none'] = (counts[r.headers['x-cache'] ?? 'none'] ?? 0) + 1;
    return counts;
  };

  it('renders an expired page once for 200 concurrent requests to 4 processes; the others answer with its stale copy or the new page', async () => {
    await expired('/hot');
    const responses = await burst('/hot', 200);
    // The renderer deletes its lock once the page is stored: well before the lock (at least 1 s) would expire.
    const key = store.keyFor(url('/hot'));
    await eventually(async () => (await memcachedGet(store.serverFor(key), `${key}.lock`)) === null, 'the lock to be deleted', 800);
    expect(rendersOf('/hot')).toBe(1);
    expect(responses.every((r) => r.status === 200)).toBe(true);
    const counts = labels(responses);
    expect(counts.MISS).toBe(1);
    expect((counts.STALE ?? 0) + (counts.HIT ?? 0)).toBe(199);
    for (const r of responses.filter((r) => r.headers['x-cache'] === 'STALE')) expect(r.body.toString()).toBe('<p>/hot old</p>');
    const rendered = responses.find((r) => r.headers['x-cache'] === 'MISS');
    expect(rendered?.body.toString()).toMatch(/^<p>\/hot render 1 of process \d+<\/p>$/);
    // The new page is stored, and the next request in any process is a hit on it.
    await eventually(async () => (await requestTo(apps.ports[3] as number, '/hot')).headers['x-cache'] === 'HIT', 'a hit on the new page');
    expect(rendersOf('/hot')).toBe(1);

  });

  it('without a stale copy, the other processes wait for the page and answer with it', async () => {
    const responses = await burst('/cold', 40);
    expect(rendersOf('/cold')).toBe(1);
    expect(responses.every((r) => r.status === 200)).toBe(true);
    expect(labels(responses)).toEqual({ MISS: expect.any(Number), HIT: expect.any(Number) });
    // The renderer's own process shares its response with the requests that came meanwhile (MISS).
    const misses = responses.filter((r) => r.headers['x-cache'] === 'MISS').map((r) => r.body.toString());
    expect(new Set(misses).size).toBe(1);
    expect(responses.filter((r) => r.headers['x-cache'] === 'HIT').every((r) => r.body.toString() === misses[0])).toBe(true);
  });

  it('lets the lock of a renderer that was killed expire by itself: stale copies meanwhile, then one render elsewhere', async () => {
    await expired('/orphan');
    const first = requestTo(apps.ports[0] as number, '/orphan').catch(() => undefined);
    await eventually(() => rendersOf('/orphan') === 1, 'the first render to start');
    // Killed mid-render: its lock stays behind in memcached, and nothing deletes it.
    const killed = apps.renders().find((r) => r.url === '/orphan')?.pid;
    apps.kill(killed as number);
    await first;
    const during = await requestTo(apps.ports[1] as number, '/orphan');
    expect([during.status, during.headers['x-cache'], during.body.toString()]).toEqual([200, 'STALE', '<p>/orphan old</p>']);
    // The lock lives appTimeout (1 s here) and at most a second more; then a request in another process renders.
    await eventually(async () => (await requestTo(apps.ports[2] as number, '/orphan')).headers['x-cache'] === 'MISS', 'a render after the lock expired', 5_000);
    expect(rendersOf('/orphan')).toBe(2);
  });
});

describe('a purge is never undone by a render that began before it', () => {
  let race: PurgeRace;
  let purger: PageStore;
  let apps: AppProcesses;
  const RENDER_MS = 500;

  beforeAll(async () => {
    // The purge comes from this process, the renders from the app's.
    race = await startPurgeRace(RENDER_MS);
    ({ purger, apps } = race);
  });
  afterAll(async () => {
    await race?.stop();
  });

  it('purged 100 ms into a 500 ms render, the page is not stored: the next request is a miss that renders the new page (100 pages at once)', async () => {
    const port = apps.ports[0] as number;
    const paths = Array.from({ length: 100 }, (_, i) => `/purged/${i}`);
    const outcomes = await Promise.all(
      paths.map(async (path) => {
        let answeredAt = Number.POSITIVE_INFINITY;
        const responding = requestTo(port, path).then((response) => {
          answeredAt = Date.now();
          return response;
        });
        await eventually(() => apps.renders().some((r) => r.url === path), `the render of ${path} to start`);
        await new Promise((resolve) => setTimeout(resolve, 100));
        await purger.purge(url(path));
        const purgedAt = Date.now();
        const first = await responding;
        const next = await requestTo(port, path);
        return { path, purgedDuringRender: purgedAt < answeredAt, first, next };
      }),
    );
    for (const { path, purgedDuringRender, first, next } of outcomes) {
      expect(purgedDuringRender).toBe(true);
      expect([first.status, first.headers['x-cache'], first.body.toString()]).toEqual([200, 'MISS', expect.stringContaining(`${path} render 1 `)]);
      expect([next.status, next.headers['x-cache'], next.body.toString()]).toEqual([200, 'MISS', expect.stringContaining(`${path} render 2 `)]);
    }
    // Neither copy of the first render survived: the second render's page is the one stored.
    await eventually(async () => (await purger.get(url('/purged/0')))?.body.toString().includes('render 2 ') === true, 'the new page to be stored');
    expect((await purger.get(url('/purged/0'), { stale: true }))?.body.toString()).toContain('render 2 ');
  });

  it('purgeAll (flush_all) 100 ms into a 500 ms render, which empties the purge markers too: the page is not stored', async () => {
    const port = apps.ports[0] as number;
    // Twice: the first purgeAll meets servers never flushed before, the second replaces a token.
    for (const round of [1, 2]) {
      const paths = Array.from({ length: 20 }, (_, i) => `/flushed/${round}/${i}`);
      const answers = paths.map((path) => requestTo(port, path));
      await eventually(() => paths.every((path) => apps.renders().some((r) => r.url === path)), 'the renders to start');
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(await purger.purgeAll()).toEqual(race.servers.map((server) => ({ server: server.address, ok: true })));
      for (const answer of await Promise.all(answers)) expect(answer.headers['x-cache']).toBe('MISS');
      // Give a put that should not happen the time to happen, then look in memcached itself.
      await new Promise((resolve) => setTimeout(resolve, 300));
      for (const path of paths) {
        expect({ path, page: await purger.get(url(path)), stale: await purger.get(url(path), { stale: true }) }).toEqual({ path, page: undefined, stale: undefined });
      }
    }
  });
});

describe('purgeAll across servers', () => {
  it('leaves no stale copy on another server that was flushed before the page\'s own', async () => {
    const memcached = [await startMemcached(), await startMemcached()];
    // The purging store reaches the first server over a slow link: its first flush comes 1.5 s late.
    const slow = await startCuttableMemcached(memcached[0]?.address as string);
    const renderer = createPageStore(testConfig(memcached.map((m) => m.address), { gzip: false, grace: 300 }), STEADY);
    const purger = createPageStore(testConfig([slow.address, memcached[1]?.address as string], { gzip: false, grace: 300 }), STEADY);
    try {
      // A page on the first server whose stale copy is on the second.
      const path = Array.from({ length: 200 }, (_, i) => `/spread/${i}`).find((p) => {
        const page = url(p);
        return renderer.serverFor(renderer.keyFor(page)) === memcached[0]?.address && renderer.serverFor(cacheKey(page, staleKeyConfig(renderer.config))) === memcached[1]?.address;
      }) as string;
      expect(path).toBeDefined();
      await purger.purgeAll(); // the servers hold flush tokens
      const internals = internalsOf(renderer) as PageStoreInternals;
      const claim = await internals.claim(renderer.keyFor(url(path)), true);
      slow.delay(1_500);
      const purging = purger.purgeAll();
      // The second server is flushed by now; the first is not, so the put's reads there see no flush.
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(await internals.putClaimed(url(path), '<p>rendered before purgeAll</p>', {}, claim.mark)).toMatchObject({ stored: true, stale: true });
      slow.delay(0);
      expect((await purging).every((result) => result.ok)).toBe(true);
      expect([await renderer.get(url(path)), await renderer.get(url(path), { stale: true })]).toEqual([undefined, undefined]);
    } finally {
      await renderer.close();
      await purger.close();
      await slow.stop();
      for (const m of memcached) await m.stop();
    }
  });
});

describe('a render whose claim could not read the purge marker', () => {
  it('is not stored (reason memcached-error): a purge made during the render stays done, though memcached answers the put', async () => {
    const memcached = await startMemcached();
    const relay = await startCuttableMemcached(memcached.address);
    // The app reaches memcached through the relay; the purge goes to memcached itself.
    const cache = pageCache(testConfig([relay.address], { gzip: false }), { ...STEADY, retryIntervalMs: 1 });
    const purger = createPageStore(testConfig([memcached.address], { gzip: false }), STEADY);
    let rendering = false;
    let finish: () => void = () => undefined;
    const rendered = new Promise<void>((resolve) => (finish = resolve));
    const app = await listenBehind(cache, (_req, res) => {
      rendering = true;
      void rendered.then(() => {
        res.setHeader('Content-Type', 'text/html; charset=utf-8');
        res.end('<p>before the purge</p>');
      });
    });
    try {
      relay.cut();
      const answer = requestTo(app.port, '/unclaimed');
      // The render begins once the claim has failed; memcached is back for the put.
      await eventually(() => rendering, 'the render to begin');
      relay.mend();
      expect(await purger.purge(url('/unclaimed'))).toMatchObject([{ result: 'not-cached' }]);
      finish();
      expect([(await answer).headers['x-cache'], (await answer).body.toString()]).toEqual(['MISS', '<p>before the purge</p>']);
      const settled = (): number => {
        const { stored, skipped } = cache.metrics.snapshot();
        return stored + skipped['memcached-error'] + skipped.purged;
      };
      await eventually(() => settled() === 1, 'the put to be done');
      expect(await purger.get(url('/unclaimed'))).toBeUndefined();
      expect(cache.metrics.snapshot()).toMatchObject({ stored: 0, skipped: { 'memcached-error': 1, purged: 0 } });
      // The next render claims with memcached up, and is stored.
      const next = requestTo(app.port, '/unclaimed');
      await eventually(async () => (await purger.get(url('/unclaimed'))) !== undefined, 'the next render to be stored');
      expect((await next).headers['x-cache']).toBe('MISS');
    } finally {
      await app.stop();
      await cache.close();
      await purger.close();
      await relay.stop();
      await memcached.stop();
    }
  });
});
