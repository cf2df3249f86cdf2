import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { gunzipSync } from 'node:zlib';
import { cacheKey } from '@sitecache/cache-key';
import { ConfigError, parseConfig, type SitecacheConfig } from '@sitecache/config';
import { GZIP_FLAG, staleKeyConfig } from '@sitecache/nginx-model';
import { freePort, memcachedGet, startMemcached, type MemcachedServer } from '@sitecache/test-services';
import {
  CacheStoreOptionError,
  createPageStore,
  PageAddressError,
  UnsupportedServerError,
  type PageStore,
  type PageStoreOptions,
  type PutResult,
} from '../src/index.js';
import { eventually, HOST, remainingTtl, startHeldMemcached, STEADY } from './site.js';

const siteConfig = (memcached: string[], fields: Record<string, unknown> = {}): SitecacheConfig =>
  parseConfig({ hosts: [HOST, 'example.test'], memcached, app: ['127.0.0.1:9'], ...fields });

describe('a page store', () => {
  let servers: MemcachedServer[];
  const stores: PageStore[] = [];
  const open = (fields: Record<string, unknown> = {}, options: PageStoreOptions = {}): PageStore => {
    const store = createPageStore(
      siteConfig(servers.map((s) => s.address), fields),
      { ...STEADY, ...options },
    );
    stores.push(store);
    return store;
  };

  beforeAll(async () => {
    servers = [await startMemcached(), await startMemcached()];
  });
  afterEach(async () => {
    for (const store of stores.splice(0)) await store.close();
  });
  afterAll(async () => {
    for (const s of servers ?? []) await s.stop();
  });

  it('stores the raw bytes with the binary flag only, on the server the ring picks', async () => {
    const store = open({ gzip: false });
    const body = Buffer.from('<p>caf\u00e9 \r\n END\r\n raw bytes \x00\xff</p>', 'latin1');
    const result = await store.put(`https://${HOST}/raw`, body);
    expect(result).toMatchObject({ stored: true, bytes: body.length, ttl: 600 });
    const key = cacheKey(`https://${HOST}/raw`);
    const server = store.serverFor(key);
    expect(result.server).toBe(server);
    expect(await memcachedGet(server, key)).toEqual({ flags: 8, value: body });
    const other = servers.map((s) => s.address).find((a) => a !== server) as string;
    expect(await memcachedGet(other, key)).toBeNull();
  });

  it('stores real gzip under the flag bit the nginx config names when gzip is on', async () => {
    const store = open({ gzip: true });
    const html = `<html>${'<p>gzip me</p>'.repeat(500)}</html>`;
    const result = await store.put(`https://${HOST}/zipped`, html);
    expect(result.stored).toBe(true);
    const key = cacheKey(`https://${HOST}/zipped`);
    const item = await memcachedGet(store.serverFor(key), key);
    expect(item?.flags).toBe(8 | GZIP_FLAG);
    expect(gunzipSync(item?.value as Buffer).toString()).toBe(html);
    expect(item?.value.length).toBeLessThan(html.length / 10);
  });

  it('takes the TTL from s-maxage, then max-age, then Expires - Date, then config.ttl, and an explicit ttl over all', async () => {
    const store = open({ gzip: false, ttl: 321 });
    const date = new Date(Math.floor(Date.now() / 1000) * 1000 - 30_000);
    const after = (seconds: number): string => new Date(date.getTime() + seconds * 1000).toUTCString();
    const cases: [string, Parameters<PageStore['put']>[2], number][] = [
      ['/ttl/s-maxage', { headers: { 'cache-control': 'public, max-age=60, s-maxage=120', expires: after(500) } }, 120],
      ['/ttl/max-age', { headers: { 'cache-control': 'public, MAX-AGE=90', expires: after(500) } }, 90],
      ['/ttl/expires', { headers: { 'cache-control': 'public', date: date.toUTCString(), expires: after(75) } }, 75],
      ['/ttl/config', { headers: { 'cache-control': 'public' } }, 321],
      ['/ttl/unreadable-expires', { headers: { expires: 'soon' } }, 321],
      ['/ttl/none', {}, 321],
      ['/ttl/explicit', { ttl: 45, headers: { 'cache-control': 's-maxage=120' } }, 45],
    ];
    for (const [path, options, expected] of cases) {
      const result = await store.put(`https://${HOST}${path}`, 'x', options);
      expect(result).toMatchObject({ stored: true, ttl: expected });
      const ttl = await remainingTtl(result.server, result.key);
      expect(ttl).toBeGreaterThanOrEqual(expected - 2);
      expect(ttl).toBeLessThanOrEqual(expected);
    }
    // What Expires leaves is at least a second: a TTL of 0 would tell memcached "never expire".
    const now = await store.put(`https://${HOST}/ttl/expires-now`, 'x', { headers: { date: date.toUTCString(), expires: date.toUTCString() } });
    expect(now).toMatchObject({ stored: true, ttl: 1 });
  });

  it('sends a TTL above 30 days as an absolute time, so memcached keeps the page rather than dropping it', async () => {
    const store = open({ gzip: false });
    const fortyDays = 40 * 24 * 3600;
    const result = await store.put(`https://${HOST}/long`, 'long-lived', { headers: { 'cache-control': `s-maxage=${fortyDays}` } });
    expect(result).toMatchObject({ stored: true, ttl: fortyDays });
    expect(await memcachedGet(result.server, result.key)).not.toBeNull();
    expect(await remainingTtl(result.server, result.key)).toBeGreaterThan(fortyDays - 5);
  });

  it('stores the largest page memcached takes and skips one byte more as too-large, never as an error', async () => {
    const store = open({ gzip: false });
    const url = `https://${HOST}/big`;
    const limit = 1024 * 1024 - cacheKey(url).length - 64;
    const fits = await store.put(url, Buffer.alloc(limit, 'a'));
    expect(fits.stored).toBe(true);
    expect((await memcachedGet(fits.server, fits.key))?.value.length).toBe(limit);
    const over = await store.put(`https://${HOST}/big`, Buffer.alloc(limit + 1, 'a'));
    expect(over).toMatchObject({ stored: false, reason: 'too-large' });
    expect(store.metrics.snapshot()).toMatchObject({ errors: 0, stored: 1 });
    expect(store.metrics.snapshot().skipped['too-large']).toBe(1);
  });

  it('judges a gzip page by its stored size, and a page above the guard before compressing it', async () => {
    const store = open({ gzip: true });
    const compressible = await store.put(`https://${HOST}/compressible`, Buffer.alloc(900 * 1024, 'a'));
    expect(compressible.stored).toBe(true);
    const huge = await store.put(`https://${HOST}/huge`, Buffer.alloc(2 * 1024 * 1024, 'a'));
    expect(huge).toMatchObject({ stored: false, reason: 'too-large' });
  });

  it('follows a configured item limit when memcached runs with a larger -I', async () => {
    const big = await startMemcached({ maxItemSize: '2m' });
    try {
      const store = createPageStore(siteConfig([big.address], { gzip: false }), { ...STEADY, maxItemBytes: 2 * 1024 * 1024 });
      stores.push(store);
      const result = await store.put(`https://${HOST}/two-megabytes`, Buffer.alloc(1536 * 1024, 'b'));
      expect(result.stored).toBe(true);
      expect((await memcachedGet(big.address, result.key))?.value.length).toBe(1536 * 1024);
    } finally {
      await big.stop();
    }
  });

  it('reads back what it stored, with its gzip flag, and nothing for a page never stored', async () => {
    const store = open({ gzip: true });
    await store.put(`https://${HOST}/read`, '<p>read me</p>');
    const page = await store.get(`https://${HOST}/read`);
    expect(page?.gzip).toBe(true);
    expect(gunzipSync(page?.body as Buffer).toString()).toBe('<p>read me</p>');
    expect(await store.get(`https://${HOST}/never`)).toBeUndefined();
  });

  it('keys a request exactly as nginx does: host lowercased, port and trailing dot dropped, raw target', async () => {
    const store = open({ gzip: false });
    const result = await store.put({ url: '/a%2Fb?x=1&&y', headers: { host: 'WWW.Example.TEST.:8080' } }, 'req');
    expect(result.key).toBe(cacheKey(`https://${HOST}/a%2Fb?x=1&&y`));
  });

  it('purges one URL, a path under every configured host, and says which pages were not cached', async () => {
    const store = open({ gzip: false });
    await store.put(`https://${HOST}/news`, 'www news');
    await store.put('https://example.test/news', 'bare news');
    await store.put(`https://${HOST}/one`, 'one');
    const one = await store.purge(`https://${HOST}/one`);
    expect(one).toEqual([expect.objectContaining({ url: `https://${HOST}/one`, result: 'purged' })]);
    const both = await store.purge(['/news', '/missing']);
    expect(both.map((p) => [p.url, p.result])).toEqual([
      [`https://${HOST}/news`, 'purged'],
      ['https://example.test/news', 'purged'],
      [`https://${HOST}/missing`, 'not-cached'],
      ['https://example.test/missing', 'not-cached'],
    ]);
    expect(await store.get(`https://${HOST}/news`)).toBeUndefined();
  });

  it('refuses a URL nginx never looks up: relative without a slash, or another scheme than the config', async () => {
    const store = open();
    await expect(store.put('news', 'x')).rejects.toThrow(PageAddressError);
    await expect(store.purge(`http://${HOST}/news`)).rejects.toThrow(/configured scheme "https"/);
  });

  it('empties every server with purgeAll and reports per-server stats', async () => {
    const store = open({ gzip: false });
    for (let i = 0; i < 20; i++) await store.put(`https://${HOST}/stats/${i}`, 'x'.repeat(100));
    await store.get(`https://${HOST}/stats/0`);
    await store.get(`https://${HOST}/stats/none`);
    const before = await store.stats();
    expect(before.map((s) => s.server)).toEqual(servers.map((s) => s.address));
    expect(before.every((s) => s.up)).toBe(true);
    expect(before.reduce((n, s) => n + s.items, 0)).toBeGreaterThanOrEqual(20);
    expect(before.reduce((n, s) => n + s.hits, 0)).toBeGreaterThanOrEqual(1);
    expect(before.reduce((n, s) => n + s.misses, 0)).toBeGreaterThanOrEqual(1);
    expect(await store.purgeAll()).toEqual(servers.map((s) => ({ server: s.address, ok: true })));
    for (let i = 0; i < 20; i++) expect(await store.get(`https://${HOST}/stats/${i}`)).toBeUndefined();
  });

  it('refuses a unix socket or IPv6 server that memcache-client cannot reach, and bad options, by name', () => {
    expect(() => createPageStore(siteConfig(['unix:/run/memcached.sock']))).toThrow(UnsupportedServerError);
    expect(() => createPageStore(siteConfig(['[::1]:11211']))).toThrow(/IPv6/);
    expect(() => createPageStore(siteConfig(['127.0.0.1:1']), { commandTimeoutMs: 0 })).toThrow(CacheStoreOptionError);
    expect(() => createPageStore(siteConfig(['127.0.0.1:1']), { retry: 1 } as PageStoreOptions)).toThrow(/"retry"/);
  });

  it('takes the config as written in sitecache.config.json, a plain object, and stores there', async () => {
    const store = createPageStore({ hosts: [HOST], memcached: servers.map((s) => s.address), app: ['127.0.0.1:9'], gzip: false }, STEADY);
    stores.push(store);
    const result = await store.put(`https://${HOST}/plain`, '<p>plain</p>');
    expect(result).toMatchObject({ stored: true, ttl: 600 });
    expect((await memcachedGet(result.server, result.key))?.value.toString()).toBe('<p>plain</p>');
  });

  it('throws ConfigError naming the field when a plain config has a bad one', () => {
    const written = JSON.parse(`{ "hosts": ["${HOST}"], "memcached": ["127.0.0.1"], "app": ["127.0.0.1:9"] }`);
    let error: unknown;
    try {
      stores.push(createPageStore(written, STEADY));
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect(error).toMatchObject({ field: 'memcached[0]', value: '127.0.0.1' });
  });

  it('resolves a put with reason "closed" after close', async () => {
    const store = open();
    await store.close();
    expect(await store.put(`https://${HOST}/late`, 'x')).toMatchObject({ stored: false, reason: 'closed' });
  });
});

// memcached down, silent or restarted: the writer never fails its caller and never waits long.
describe('a page store when memcached fails', () => {
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

  const timed = async <T>(work: () => Promise<T>): Promise<[T, number]> => {
    const start = performance.now();
    const value = await work();
    return [value, performance.now() - start];
  };

  it('skips without waiting for a timeout when nothing listens, backs off, and warns once per interval', async () => {
    const warnings: string[] = [];
    const address = `127.0.0.1:${await freePort()}`;
    // Timeouts far longer than a refused connection takes: a put that waited for one would show.
    const store = createPageStore(siteConfig([address]), {
      connectTimeoutMs: 10_000,
      commandTimeoutMs: 10_000,
      retryIntervalMs: 1_000,
      logger: { warn: (m) => warnings.push(m) },
    });
    try {
      const [first, ms] = await timed(() => store.put(`https://${HOST}/down`, 'x'));
      expect(first).toMatchObject({ stored: false, reason: 'memcached-error' });
      expect(ms).toBeLessThan(10_000);
      // Backing off: the next put does not even try (no new error), it is skipped at once.
      expect(await store.put(`https://${HOST}/down`, 'x')).toMatchObject({ stored: false, reason: 'server-down' });
      expect(store.metrics.snapshot().errorsByServer[address]).toBe(1);
      await new Promise((r) => setTimeout(r, 1_100));
      expect(await store.put(`https://${HOST}/down`, 'x')).toMatchObject({ reason: 'memcached-error' });
      expect(store.metrics.snapshot().errorsByServer[address]).toBe(2);
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toContain(address);
    } finally {
      await store.close();
    }
  });

  it('answers within connect + command timeout when memcached accepts but never replies (SIGSTOP), and never queues past the bound', async () => {
    const server = await startMemcached();
    const store = createPageStore(siteConfig([server.address], { gzip: false }), {
      commandTimeoutMs: 200,
      connectTimeoutMs: 100,
      retryIntervalMs: 60_000,
      maxPendingPerServer: 4,
      logger: { warn: () => undefined },
    });
    try {
      expect((await store.put(`https://${HOST}/before`, 'x')).stored).toBe(true);
      server.process.signal('SIGSTOP');
      const [results, ms] = await timed(() => Promise.all(Array.from({ length: 20 }, (_, i) => store.put(`https://${HOST}/stopped/${i}`, 'x'))));
      // The promised limit: connect + command timeout + the store's 50 ms margin (350 ms). Kept as a
      // bound, at five times that for timers on a loaded machine: without the store's own race, a
      // put would wait for memcached (SIGSTOP: for ever).
      expect(ms).toBeLessThan(5 * (100 + 200 + 50));
      expect(results.filter((r) => !r.stored && r.reason === 'busy')).toHaveLength(16);
      expect(results.filter((r) => !r.stored && r.reason === 'memcached-error')).toHaveLength(4);
      // The server is known down now: a lookup does not even ask it (no new error), it misses.
      const errors = store.metrics.snapshot().errors;
      expect(await store.get(`https://${HOST}/before`)).toBeUndefined();
      expect(store.metrics.snapshot().errors).toBe(errors);
    } finally {
      server.process.signal('SIGCONT');
      await store.close();
      await server.stop();
    }
  });

  it('skips a put as "busy" once the pages being written to its server would pass maxQueuedBytesPerServer, counts it, and takes puts again once memcached answers', async () => {
    const server = await startMemcached();
    const store = createPageStore(siteConfig([server.address], { gzip: false }), { ...STEADY, commandTimeoutMs: 60_000, maxQueuedBytesPerServer: 25_000 });
    const url = (name: string): string => `https://${HOST}/queued/${name}`;
    try {
      expect((await store.put(url('connect'), 'x')).stored).toBe(true);
      server.process.signal('SIGSTOP');
      const page = 'p'.repeat(10_000);
      const held = [store.put(url('1'), page), store.put(url('2'), page)];
      expect(await store.put(url('3'), page)).toMatchObject({ stored: false, reason: 'busy' });
      // What still fits is taken, up to the byte.
      held.push(store.put(url('4'), 'q'.repeat(5_000)));
      expect(await store.put(url('5'), 'r')).toMatchObject({ stored: false, reason: 'busy' });
      expect(store.metrics.snapshot().skipped.busy).toBe(2);
      server.process.signal('SIGCONT');
      expect((await Promise.all(held)).map((result) => result.stored)).toEqual([true, true, true]);
      expect(await store.put(url('3'), page)).toMatchObject({ stored: true, bytes: 10_000 });
    } finally {
      server.process.signal('SIGCONT');
      await store.close();
      await server.stop();
    }
  });

  it('takes a page larger than maxQueuedBytesPerServer when nothing else is being written to its server', async () => {
    const server = await startMemcached();
    const store = createPageStore(siteConfig([server.address], { gzip: false }), { ...STEADY, maxQueuedBytesPerServer: 1024 });
    try {
      expect(await store.put(`https://${HOST}/queued/large`, 'l'.repeat(4096))).toMatchObject({ stored: true, bytes: 4096 });
      expect(() => createPageStore(siteConfig([server.address]), { maxQueuedBytesPerServer: 0 })).toThrow(/"maxQueuedBytesPerServer": expected a whole number/);
    } finally {
      await store.close();
      await server.stop();
    }
  });

  it('stores again by itself once a killed memcached is restarted', async () => {
    const server = await startMemcached();
    const store = createPageStore(siteConfig([server.address], { gzip: false }), { retryIntervalMs: 200, logger: { warn: () => undefined } });
    try {
      expect((await store.put(`https://${HOST}/r`, 'before')).stored).toBe(true);
      server.process.signal('SIGKILL');
      await new Promise((r) => setTimeout(r, 50));
      const during = await store.put(`https://${HOST}/r`, 'during');
      expect(during.stored).toBe(false);
      await server.restart();
      const deadline = Date.now() + 5_000;
      let after = await store.put(`https://${HOST}/r`, 'after');
      while (!after.stored && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
        after = await store.put(`https://${HOST}/r`, 'after');
      }
      expect(after.stored).toBe(true);
      expect((await memcachedGet(server.address, after.key))?.value.toString()).toBe('after');
    } finally {
      await store.close();
      await server.stop();
    }
  });

  it('counts a refusal memcached answers with as an error without backing off from the server', async () => {
    const server = await startMemcached();
    const store = createPageStore(siteConfig([server.address], { gzip: false }), { ...STEADY, maxItemBytes: 4 * 1024 * 1024 });
    try {
      const refused = await store.put(`https://${HOST}/too-big-for-memcached`, Buffer.alloc(2 * 1024 * 1024));
      expect(refused).toMatchObject({ stored: false, reason: 'memcached-error' });
      expect((await store.put(`https://${HOST}/next`, 'fine')).stored).toBe(true);
      expect(store.metrics.snapshot().errors).toBe(1);
    } finally {
      await store.close();
      await server.stop();
    }
  });
});

describe('the memory a put holds', () => {
  /** A full collection, as V8 makes when its old generation fills (jest's VM hides --expose-gc's gc). */
  /** `html` in memory of its own: Buffer.from(string) takes it from a shared pool (64 KB on Node 24). */
  const ownMemory = (html: string): Buffer => {
    const bytes = Buffer.alloc(Buffer.byteLength(html));
    bytes.write(html);
    return bytes;
  };

  /**
   * Until `memory` is collected, while memcached still has not answered: the socket lets go of the
   * bytes once its write completes, a little after memcached has them. A WeakRef keeps its target
   * to the end of the task that read it, so each check collects in a task of its own.
   */
  const collected = (memory: WeakRef<ArrayBuffer> | undefined): Promise<void> =>
    eventually(() => {
      collect();
      return memory?.deref() === undefined;
    }, 'the page\'s memory to be collected', 3_000);

  const collect = (): void => {
    setFlagsFromString('--expose-gc');
    (runInNewContext('gc') as () => void)();
  };

  it('lets go of the page once its set went out, while it waits for memcached to answer', async () => {
    const held = await startHeldMemcached();
    const store = createPageStore(siteConfig([held.address], { gzip: false }), { ...STEADY, connectionsPerServer: 1 });
    const key = cacheKey(`https://${HOST}/held`);
    try {
      // Memory of its own, watched as such: the store keeps a view of the caller's bytes, not the
      // caller's Buffer object.
      const html = `<p>held page</p>${'x'.repeat(20_000)}`;
      let memory: WeakRef<ArrayBuffer> | undefined;
      const put = ((): Promise<PutResult> => {
        const body = ownMemory(html);
        memory = new WeakRef(body.buffer as ArrayBuffer);
        return store.put(`https://${HOST}/held`, body);
      })();
      await eventually(() => held.received().endsWith(`get ${key}.purged sitecache:flushed\r\n`), 'the marker to be read');
      held.answer('END\r\n');
      await eventually(() => held.received().endsWith(`${html}\r\n`), 'the set to reach memcached');
      await collected(memory);
      held.answer('STORED\r\n');
      await eventually(() => held.received().endsWith(`get ${key}.purged sitecache:flushed\r\n`) && held.received().split(`get ${key}.purged sitecache:flushed`).length === 3, 'the marker to be read again');
      held.answer('END\r\n');
      expect(await put).toMatchObject({ stored: true, bytes: html.length });
    } finally {
      await store.close();
      await held.stop();
    }
  });

  it('lets go of the page once its set went out, though its stale copy\'s server is down and that set never ran', async () => {
    const held = await startHeldMemcached();
    const down = `127.0.0.1:${await freePort()}`;
    const config = siteConfig([held.address, down], { gzip: false, grace: 300 });
    const store = createPageStore(config, { ...STEADY, connectionsPerServer: 1, retryIntervalMs: 60_000, logger: { warn: () => undefined } });
    // Pages on the held server whose stale copies go to the server that is down.
    const [first, second] = Array.from({ length: 400 }, (_, i) => `https://${HOST}/split/${i}`).filter(
      (page) => store.serverFor(store.keyFor(page)) === held.address && store.serverFor(cacheKey(page, staleKeyConfig(config))) === down,
    );
    const reads = (): number => held.received().split(' sitecache:flushed\r\n').length - 1;
    const answerPut = async (page: string, html: string, readsBefore: number): Promise<void> => {
      await eventually(() => reads() === readsBefore + 1, 'the marker to be read');
      held.answer('END\r\n');
      await eventually(() => held.received().endsWith(`${html}\r\n`), 'the set to reach memcached');
    };
    try {
      // The first put's stale copy meets the server down: the store leaves that server alone a while.
      const one = store.put(first as string, '<p>first</p>');
      await answerPut(first as string, '<p>first</p>', 0);
      held.answer('STORED\r\n');
      await eventually(() => reads() === 2, 'the marker to be read again');
      held.answer('END\r\n');
      expect(await one).toMatchObject({ stored: true, stale: false });

      // The second put's stale set is refused before it runs; the page's set went out. The page has
      // memory of its own, watched as such: the store keeps a view of the caller's bytes, not the
      // caller's Buffer object.
      const html = `<p>second</p>${'x'.repeat(20_000)}`;
      let memory: WeakRef<ArrayBuffer> | undefined;
      const two = ((): Promise<PutResult> => {
        const bytes = ownMemory(html);
        memory = new WeakRef(bytes.buffer as ArrayBuffer);
        return store.put(second as string, bytes);
      })();
      await answerPut(second as string, html, 2);
      await collected(memory);
      held.answer('STORED\r\n');
      await eventually(() => reads() === 4, 'the marker to be read again');
      held.answer('END\r\n');
      expect(await two).toMatchObject({ stored: true, stale: false });
    } finally {
      await store.close();
      await held.stop();
    }
  });
});

describe('closing a page store', () => {
  it('lets a put in flight finish and store its page, refuses new puts as "closed", and logs no failure', async () => {
    const held = await startHeldMemcached();
    const warnings: string[] = [];
    const store = createPageStore(siteConfig([held.address], { gzip: false }), { ...STEADY, connectionsPerServer: 1, logger: { warn: (m) => warnings.push(m) } });
    const key = cacheKey(`https://${HOST}/in-flight`);
    try {
      const inFlight = store.put(`https://${HOST}/in-flight`, '<p>in flight</p>');
      // A put reads the page's purge marker before and after its set.
      await eventually(() => held.received().endsWith(`get ${key}.purged sitecache:flushed\r\n`), 'the marker to be read');
      held.answer('END\r\n');
      await eventually(() => held.received().endsWith('<p>in flight</p>\r\n'), 'the set to reach memcached');
      let closed = false;
      const closing = store.close().then(() => (closed = true));
      expect(await store.put(`https://${HOST}/late`, 'x')).toMatchObject({ stored: false, reason: 'closed' });
      expect(held.received()).not.toContain('/late');
      expect(closed).toBe(false);
      held.answer('STORED\r\n');
      await eventually(() => held.received().endsWith(`get ${key}.purged sitecache:flushed\r\n`), 'the marker to be read again');
      held.answer('END\r\n');
      expect(await inFlight).toMatchObject({ stored: true, bytes: '<p>in flight</p>'.length });
      await closing;
      expect(store.metrics.snapshot()).toMatchObject({ stored: 1, errors: 0, skipped: expect.objectContaining({ closed: 1, 'memcached-error': 0 }) });
      expect(warnings).toEqual([]);
    } finally {
      await store.close();
      await held.stop();
    }
  });

  it('gives up on a put memcached does not answer within closeTimeoutMs: it resolves "closed", not as a memcached failure', async () => {
    const held = await startHeldMemcached();
    const warnings: string[] = [];
    const store = createPageStore(siteConfig([held.address], { gzip: false }), {
      ...STEADY,
      commandTimeoutMs: 30_000,
      closeTimeoutMs: 100,
      connectionsPerServer: 1,
      logger: { warn: (m) => warnings.push(m) },
    });
    try {
      const stuck = store.put(`https://${HOST}/stuck`, '<p>stuck</p>');
      await eventually(() => held.received().endsWith(`get ${cacheKey(`https://${HOST}/stuck`)}.purged sitecache:flushed\r\n`), 'the marker to be read');
      held.answer('END\r\n');
      await eventually(() => held.received().endsWith('<p>stuck</p>\r\n'), 'the set to reach memcached');
      await store.close();
      expect(await stuck).toMatchObject({ stored: false, reason: 'closed' });
      expect(store.metrics.snapshot()).toMatchObject({ stored: 0, errors: 0, skipped: expect.objectContaining({ closed: 1, 'memcached-error': 0 }) });
      expect(warnings).toEqual([expect.stringContaining('1 page')]);
      expect(warnings.join()).not.toContain('failed');
    } finally {
      await store.close();
      await held.stop();
    }
  });

  it('validates closeTimeoutMs like the other options', () => {
    expect(() => createPageStore(siteConfig(['127.0.0.1:1']), { closeTimeoutMs: -1 })).toThrow(/"closeTimeoutMs": expected a whole number/);
  });
});
