import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { memcachedGet, startMemcached, type MemcachedServer } from '@sitecache/test-services';
import Fastify, { type FastifyInstance } from 'fastify';
import { CacheStoreOptionError, createPageStore, pageCache, PageTagError, purgeHandler, tagPage, type PageCacheMiddleware, type PageStore } from '../src/index.js';
import { fastifyPageCache } from '../src/fastify.js';
import { internalsOf } from '../src/page-store.js';
import { CLASS_SPANS, CLOCK_MARGIN, entryKey, entryKeysToRead, tagHash } from '../src/tag-index.js';
import { eventually, HOST, listen, mapLimit, remainingTtl, requestTo, startPurgeRace, STEADY, testConfig, type AppProcesses, type PurgeRace } from './site.js';

const url = (path: string): string => `https://${HOST}${path}`;

describe('tagged pages', () => {
  let servers: MemcachedServer[];
  let cache: PageCacheMiddleware;
  let store: PageStore;
  let app: Awaited<ReturnType<typeof listen>>;

  beforeAll(async () => {
    servers = [await startMemcached(), await startMemcached(), await startMemcached()];
    const config = testConfig(servers.map((s) => s.address), { gzip: false, grace: 300 });
    cache = pageCache(config, { ...STEADY, serveFromCache: true });
    store = cache.store;
    app = await listen((req, res) =>
      cache(req, res, () => {
        res.setHeader('Content-Type', 'text/html; charset=utf-8');
        const path = req.url ?? '/';
        if (path.startsWith('/article/')) tagPage(res, `article:${path.slice(9)}`, 'home');
        if (path === '/too-many') res.setHeader('Surrogate-Key', Array.from({ length: 65 }, (_, i) => `t${i}`).join(' '));
        if (path === '/spaced') tagPage(res, 'fine', 'not fine');
        const long = /^\/long-tag\/(\d+)(\/tagPage)?$/.exec(path);
        if (long?.[2]) tagPage(res, 'x'.repeat(Number(long[1])));
        else if (long) res.setHeader('Surrogate-Key', `home ${'x'.repeat(Number(long[1]))}`);
        if (path === '/late') {
          res.write('<p>');
          tagPage(res, 'too-late');
        }
        if (path === '/raw-head') res.writeHead(200, { 'Surrogate-Key': 'raw home', 'Content-Type': 'text/html; charset=utf-8' });
        res.end(`<p>${path}</p>`);
      }),
    );
  });
  afterAll(async () => {
    await app?.stop();
    await cache?.close();
    for (const s of servers ?? []) await s.stop();
  });

  it('takes Surrogate-Key off the miss, stores and indexes the page, and its hits never carry the header', async () => {
    for (const path of ['/article/1', '/raw-head']) {
      const miss = await requestTo(app.port, path);
      expect([miss.status, miss.headers['x-cache'], miss.headers['surrogate-key']]).toEqual([200, 'MISS', undefined]);
      await eventually(async () => (await store.get(url(path))) !== undefined, `${path} to be stored`);
      const hit = await requestTo(app.port, path);
      expect([hit.headers['x-cache'], hit.headers['surrogate-key'], hit.body.toString()]).toEqual(['HIT', undefined, `<p>${path}</p>`]);
    }
    const purge = await store.purgeTags('raw');
    expect(purge.purged).toBe(1);
    expect(await store.get(url('/raw-head'))).toBeUndefined();
    expect(await store.get(url('/article/1'))).toBeDefined();
  });

  it('does not store a page whose tags cannot be indexed, or came after its head went out (reason "tags"), and hides the header all the same', async () => {
    const before = cache.metrics.snapshot().skipped.tags;
    for (const path of ['/too-many', '/spaced']) {
      const response = await requestTo(app.port, path);
      expect([response.status, response.headers['surrogate-key']]).toEqual([200, undefined]);
    }
    const late = await requestTo(app.port, '/late');
    expect([late.status, late.body.toString()]).toEqual([200, '<p><p>/late</p>']);
    await eventually(() => cache.metrics.snapshot().skipped.tags === before + 3, 'the three pages to be refused');
    expect(await store.get(url('/late'))).toBeUndefined();
    expect(await store.get(url('/too-many'))).toBeUndefined();
    expect(await store.get(url('/spaced'))).toBeUndefined();
    await expect(store.purgeTags(['ok', 'not ok'])).rejects.toThrow(PageTagError);
    await expect(store.purgeTags([])).rejects.toThrow(PageTagError);
    await expect(store.purgeTags([])).rejects.toThrow('No tag to purge: a purge by tag names at least one tag, and the list given was empty');
    expect((await store.put(url('/put-bad'), 'x', { tags: ['a\u00e9'] })).stored).toBe(false);
  });

  it('stores a page with a tag of 128 characters, and not one with 129 (reason "tags"), whether set in the header or with tagPage', async () => {
    const before = cache.metrics.snapshot().skipped.tags;
    for (const path of ['/long-tag/128', '/long-tag/128/tagPage', '/long-tag/129', '/long-tag/129/tagPage']) expect((await requestTo(app.port, path)).status).toBe(200);
    await eventually(async () => (await store.get(url('/long-tag/128'))) !== undefined && (await store.get(url('/long-tag/128/tagPage'))) !== undefined, 'the 128-character pages to be stored');
    await eventually(() => cache.metrics.snapshot().skipped.tags === before + 2, 'the 129-character pages to be refused');
    expect(await store.get(url('/long-tag/129'))).toBeUndefined();
    expect(await store.get(url('/long-tag/129/tagPage'))).toBeUndefined();
    expect((await store.purgeTags('x'.repeat(128))).purged).toBe(2);
    expect(await store.get(url('/long-tag/128'))).toBeUndefined();
  });

  it('refuses a soft that is not true or false, naming the option, and purges nothing', async () => {
    await store.put(url('/soft-checked'), 'x', { tags: ['soft-checked'] });
    const yes = { soft: 'yes' } as unknown as { soft: boolean };
    await expect(store.purgeTags('soft-checked', yes)).rejects.toThrow(new CacheStoreOptionError('soft', 'true or false', 'yes'));
    await expect(store.purge(url('/soft-checked'), yes)).rejects.toThrow('Invalid cache-store option "soft": expected true or false, got "yes"');
    await expect(store.purge(url('/soft-checked'), yes)).rejects.toThrow(CacheStoreOptionError);
    // Nor options that are not an object, or tags that are not a tag or a list of them.
    const none = null as unknown as { soft: boolean };
    await expect(store.purge(url('/soft-checked'), none)).rejects.toThrow(new CacheStoreOptionError('options', 'an object such as { soft: true }', null));
    await expect(store.purgeTags(42 as unknown as string)).rejects.toThrow(new PageTagError(42, 'expected a tag or a list of tags'));
    await expect(store.purgeTags(null as unknown as string)).rejects.toThrow('Invalid tag null: expected a tag or a list of tags');
    expect(await store.get(url('/soft-checked'))).toBeDefined();
    expect(await store.get(url('/soft-checked'), { stale: true })).toBeDefined();
  });

  it('purges every page of a tag on every server, both copies, and says how many each server lost; soft keeps the stale copies', async () => {
    const paths = Array.from({ length: 90 }, (_, i) => `/listing/${i}`);
    await mapLimit(paths, 16, (path, i) => store.put(url(path), `<p>${path}</p>`, { tags: [`mod3:${i % 3}`, 'listing'] }));
    const purge = await store.purgeTags('mod3:1');
    expect(purge.purged).toBe(30);
    expect(purge.servers.map((s) => s.server)).toEqual(servers.map((s) => s.address));
    expect(purge.servers.every((s) => s.failed === 0 && s.purged > 0)).toBe(true);
    expect(purge.servers.reduce((sum, s) => sum + s.purged, 0)).toBe(30);
    for (const [i, path] of paths.entries()) {
      expect([path, await store.get(url(path)) !== undefined, await store.get(url(path), { stale: true }) !== undefined]).toEqual([path, i % 3 !== 1, i % 3 !== 1]);
    }
    const soft = await store.purgeTags(['mod3:2'], { soft: true });
    expect(soft.purged).toBe(30);
    expect(await store.get(url('/listing/2'))).toBeUndefined();
    expect(await store.get(url('/listing/2'), { stale: true })).toBeDefined();
    // A second purge finds the keys again, gone: not-cached, never failed.
    const again = await store.purgeTags('mod3:1');
    expect([again.purged, again.servers.reduce((sum, s) => sum + s.notCached, 0)]).toEqual([0, 30]);
  });

  it('refuses a put whose claim came before a purge by one of its tags (the page in no index yet), and stores one claimed after', async () => {
    const internals = internalsOf(store);
    if (!internals) throw new Error('a store made by createPageStore has internals');
    const pages = Array.from({ length: 12 }, (_, i) => url(`/claimed/${i}`));
    const early = await Promise.all(pages.map((page) => internals.claim(store.keyFor(page), false)));
    await store.purgeTags(['claimed-first']);
    const late = await Promise.all(pages.map((page) => internals.claim(store.keyFor(page), false)));
    for (const [i, page] of pages.entries()) {
      const before = await internals.putClaimed(page, '<p>old</p>', { tags: ['claimed-first', 'other'] }, early[i]?.mark);
      expect([page, before.stored, before.stored ? undefined : before.reason]).toEqual([page, false, 'purged']);
      const untouched = await internals.putClaimed(page, '<p>old</p>', { tags: ['other'] }, early[i]?.mark);
      expect([page, untouched.stored]).toEqual([page, true]);
      const after = await internals.putClaimed(page, '<p>new</p>', { tags: ['claimed-first'] }, late[i]?.mark);
      expect([page, after.stored]).toEqual([page, true]);
    }
  });

  it("keeps each index entry two spans of its class and a margin for clocks apart, so at least as long as the page and its stale copy, on the page's server", async () => {
    const result = await store.put(url('/lifetime'), '<p>lives</p>', { ttl: 100, tags: ['life'] });
    expect(result.stored).toBe(true);
    const key = store.keyFor(url('/lifetime'));
    const entry = entryKey(tagHash('', 'life'), key, 100 + 300, Date.now());
    const left = await remainingTtl(store.serverFor(key), entry.key);
    expect(left).toBeGreaterThanOrEqual(400);
    // 400 s of life is class 1024 s: two spans and the margin, less the seconds this test took.
    expect(entry.exptime).toBe(2 * 1024 + CLOCK_MARGIN);
    expect(left).toBeGreaterThan(2 * 1024 + CLOCK_MARGIN - 10);
    expect(String((await memcachedGet(store.serverFor(key), entry.key))?.value)).toContain(key);
  });

  it('loses the pages of a server restarted empty with their index; the purge still reaches every other server and every stale copy', async () => {
    const paths = Array.from({ length: 60 }, (_, i) => `/restart/${i}`);
    await mapLimit(paths, 16, (path) => store.put(url(path), `<p>${path}</p>`, { tags: ['restart'] }));
    const lost = servers[0] as MemcachedServer;
    const copies = await mapLimit(paths, 16, async (path) => ({
      page: store.serverFor(store.keyFor(url(path))),
      stale: (await store.get(url(path), { stale: true }))?.server,
    }));
    // Pages with a copy left after the restart: those not wholly on the restarted server.
    const survivors = copies.filter((c) => c.page !== lost.address || c.stale !== lost.address).length;
    expect(copies.filter((c) => c.page === lost.address).length).toBeGreaterThan(5);
    await lost.restart();
    // The store finds the restarted server again by itself; a purge made meanwhile says which failed.
    let purged = 0;
    await eventually(async () => {
      const purge = await store.purgeTags('restart');
      purged += purge.purged;
      return purge.servers.every((s) => s.failed === 0);
    }, 'a purge the restarted server answers');
    // The stale copies of its pages were on the other servers, indexed there beside their page keys.
    expect(purged).toBe(survivors);
    for (const path of paths) {
      expect([path, await store.get(url(path)), await store.get(url(path), { stale: true })]).toEqual([path, undefined, undefined]);
    }
  });

  it('finds a page\'s entry from any moment of its life, by a purging clock up to a span ahead or behind', () => {
    const hash = tagHash('', 'article:1');
    for (const span of CLASS_SPANS) {
      // The worst case: stored at the last moment of an epoch, living the whole span.
      const storedAt = 1_000 * span * 1_000 - 1;
      const entry = entryKey(hash, 'k', span, storedAt).key;
      for (const sinceStored of [0, span * 500, span * 1_000]) {
        for (const skewMs of [-(span - 1) * 1_000, -1_000, 0, 2_000, 60_000, (span - 1) * 1_000]) {
          const readBy = entryKeysToRead(hash, storedAt + sinceStored + skewMs);
          expect({ span, sinceStored, skewMs, found: readBy.includes(entry) }).toEqual({ span, sinceStored, skewMs, found: true });
        }
      }
    }
  });

  it('names index entries with valid memcached keys whatever the tag, and apart for each keyPrefix', () => {
    const keys = entryKeysToRead(tagHash('', 'any tag: \u00fcn\u00efcode, spaces'), Date.now());
    expect(keys.every((key) => /^tag:[0-9a-f]{32}:[0-9x]+:-?\d+:[0-9a-f]$/.test(key) && key.length < 250)).toBe(true);
    expect(tagHash('site-a:', 'home')).not.toBe(tagHash('site-b:', 'home'));
    expect(tagHash('a', 'bc')).not.toBe(tagHash('ab', 'c'));
  });
});

describe('Fastify: reply.tagPage', () => {
  const FASTIFY_SECRET = 'fastify-secret-0123456789';
  let memcached: MemcachedServer;
  let app: FastifyInstance;
  let port: number;

  beforeAll(async () => {
    memcached = await startMemcached();
    app = Fastify();
    await app.register(fastifyPageCache, { config: testConfig([memcached.address], { gzip: false }), ...STEADY });
    app.get('/tagged', async (_request, reply) => reply.tagPage('fastify', 'home').type('text/html; charset=utf-8').send('<p>tagged</p>'));
    // As the README mounts the purge endpoint on Fastify.
    const purge = purgeHandler(app.pageCache.store, { secret: FASTIFY_SECRET });
    app.post('/_sitecache/purge', (request, reply) => {
      reply.hijack();
      return purge(Object.assign(request.raw, { body: request.body }), reply.raw);
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    port = (app.server.address() as { port: number }).port;
  });
  afterAll(async () => {
    await app?.close();
    await memcached?.stop();
  });

  it('tags the page, never sends the header, and a purge by the tag (through the endpoint) removes it', async () => {
    const miss = await requestTo(port, '/tagged');
    expect([miss.status, miss.headers['surrogate-key']]).toEqual([200, undefined]);
    await eventually(async () => (await app.pageCache.store.get(url('/tagged'))) !== undefined, 'the page to be stored');
    const body = JSON.stringify({ tags: ['fastify'] });
    const answer = await requestTo(port, '/_sitecache/purge', { authorization: `Bearer ${FASTIFY_SECRET}`, 'content-type': 'application/json', 'content-length': String(body.length) }, 'POST', body);
    expect([answer.status, JSON.parse(answer.body.toString()).purged]).toEqual([200, 1]);
    expect(await app.pageCache.store.get(url('/tagged'))).toBeUndefined();
  });
});

describe('an index entry evicted while its pages remain', () => {
  let memcached: MemcachedServer;
  let store: PageStore;

  beforeAll(async () => {
    memcached = await startMemcached({ memoryMb: 8 });
    store = createPageStore(testConfig([memcached.address], { gzip: false }), STEADY);
  });
  afterAll(async () => {
    await store?.close();
    await memcached?.stop();
  });

  /**
   * Stores `count` pages of the given sizes, 5 tags each (its own article tag, 1 of 10 sections, 2
   * of 250 tag pages, home), far more than memcached holds, then counts the pages still held whose
   * key is missing from the entry of one of their tags.
   */
  const measure = async (label: string, count: number, size: (i: number) => number): Promise<{ held: number; unindexed: number }> => {
    await store.purgeAll();
    const evictionsBefore = (await store.stats())[0]?.evictions ?? 0;
    const tagsOf = (i: number): string[] => [`article:${label}:${i}`, `section:${i % 10}`, `tag:${(i * 7) % 200}`, `tag:${200 + ((i * 13) % 50)}`, 'home'];
    const began = Date.now();
    await mapLimit(Array.from({ length: count }, (_, i) => i), 32, (i) => store.put(url(`/mem/${label}/${i}`), 'x'.repeat(size(i)), { tags: tagsOf(i) }));
    const present = (await mapLimit(Array.from({ length: count }, (_, i) => i), 32, async (i) => ((await store.get(url(`/mem/${label}/${i}`))) ? i : -1))).filter((i) => i >= 0);
    // Each page's entry for a tag: the class of the default TTL, the epoch then (or now, should the
    // test straddle two), the shard of its key.
    const entries = new Map<string, Promise<string>>();
    const entryText = (key: string): Promise<string> => {
      let text = entries.get(key);
      if (!text) {
        text = memcachedGet(memcached.address, key).then((item) => item?.value.toString() ?? '');
        entries.set(key, text);
      }
      return text;
    };
    const missingBy = new Map<string, number>();
    const unindexed = (
      await mapLimit(present, 16, async (i) => {
        const key = store.keyFor(url(`/mem/${label}/${i}`));
        let missing = false;
        for (const tag of tagsOf(i)) {
          const texts = await Promise.all([began, Date.now()].map((now) => entryText(entryKey(tagHash('', tag), key, 600, now).key)));
          if (texts.some((text) => text.includes(`${key} `))) continue;
          const kind = tag.split(':')[0] as string;
          missingBy.set(kind, (missingBy.get(kind) ?? 0) + 1);
          missing = true;
        }
        return missing;
      })
    ).filter(Boolean).length;
    const evictions = ((await store.stats())[0]?.evictions ?? 0) - evictionsBefore;
    console.log(
      `eviction under -m 8, ${label}: ${count} pages stored, ${present.length} still held (${evictions} evictions); ` +
        `${unindexed} of them (${((unindexed / Math.max(present.length, 1)) * 100).toFixed(2)}%) missing from the entry of one of their tags ` +
        `(by tag: ${[...missingBy].map(([kind, n]) => `${kind} ${n}`).join(', ') || 'none'})`,
    );
    expect(evictions).toBeGreaterThan(0);
    return { held: present.length, unindexed };
  };

  it('is measured: pages still in a full memcached (-m 8) whose key is in no entry of one of their tags', async () => {
    // About 60 MB of pages into 8 MB: gzip pages of 2-30 KB, then pages as small as the entries.
    const large = await measure('2-30KB', 4_000, (i) => 2_048 + ((i * 7919) % 28_672));
    const small = await measure('200B-3KB', 20_000, (i) => 200 + ((i * 7919) % 2_800));
    expect(large.held).toBeGreaterThan(100);
    expect(small.held).toBeGreaterThan(100);
    // Measured, not promised: a page missing from an entry lives until its own TTL (README, "The index").
    expect(large.unindexed / large.held).toBeLessThan(0.5);
  });
});

describe('a render begun before a purge by tag', () => {
  let race: PurgeRace;
  let purger: PageStore;
  let apps: AppProcesses;
  const RENDER_MS = 500;

  beforeAll(async () => {
    race = await startPurgeRace(RENDER_MS, true);
    ({ purger, apps } = race);
  });
  afterAll(async () => {
    await race?.stop();
  });

  it('is never stored after it, though its page was in no index when the purge read it (50 pages, one purge 100 ms into their renders)', async () => {
    const port = apps.ports[0] as number;
    const paths = Array.from({ length: 50 }, (_, i) => `/tag-race/${i}`);
    // Half were stored before, and only their stale copies are left: the purge finds them in the
    // index and must take those copies too. The other half are in no index at all: only the tag's
    // markers can stop their renders.
    const before = paths.slice(0, 25);
    for (const path of before) await purger.put(url(path), `<p>${path} before</p>`, { tags: [`page:${path}`, 'all'] });
    await Promise.all(before.map((path) => purger.purge(url(path), { soft: true })));
    const responding = Promise.all(paths.map((path) => requestTo(port, path)));
    await eventually(() => paths.every((path) => apps.renders().some((r) => r.url === path)), 'every render to start');
    await new Promise((resolve) => setTimeout(resolve, 100));
    const purge = await purger.purgeTags('all');
    const purgedAt = Date.now();
    const first = await responding;
    expect(Date.now()).toBeGreaterThan(purgedAt);
    expect(purge.servers.every((s) => s.failed === 0)).toBe(true);
    expect(purge.pages.length).toBe(25);
    for (const [i, response] of first.entries()) expect([response.headers['x-cache'], response.body.toString()]).toEqual(['MISS', expect.stringContaining(`${paths[i]} render 1 `)]);
    // Give the renders' puts time to land (they would be stored within ms).
    await new Promise((resolve) => setTimeout(resolve, 300));
    for (const path of paths) expect([path, await purger.get(url(path)), await purger.get(url(path), { stale: true })]).toEqual([path, undefined, undefined]);
    const next = await requestTo(port, paths[0] as string);
    expect([next.headers['x-cache'], next.body.toString()]).toEqual(['MISS', expect.stringContaining('render 2 ')]);
    await eventually(async () => (await purger.get(url(paths[0] as string)))?.body.toString().includes('render 2 ') === true, 'the new page to be stored');
  });
});

describe('purgeHandler', () => {
  let memcached: MemcachedServer;
  let store: PageStore;
  let app: Awaited<ReturnType<typeof listen>>;
  const SECRET = 'a-secret-of-32-characters-000000';

  beforeAll(async () => {
    memcached = await startMemcached();
    store = createPageStore(testConfig([memcached.address], { gzip: false, purgeSecret: SECRET }), STEADY);
    const purge = purgeHandler(store);
    app = await listen((req, res) => void purge(req, res));
  });
  afterAll(async () => {
    await app?.stop();
    await store?.close();
    await memcached?.stop();
  });

  const post = (body: string, headers: Record<string, string> = {}, method = 'POST'): Promise<{ status: number; body: string; res: IncomingMessage }> =>
    new Promise((resolve, reject) => {
      const req = httpRequest({ port: app.port, host: '127.0.0.1', method, path: '/_sitecache/purge', headers: { 'content-type': 'application/json', ...headers } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), res }));
      });
      req.on('error', reject);
      req.end(body);
    });

  it('purges by tag for a caller with the secret, and says how many pages each server lost', async () => {
    await store.put(url('/e/1'), 'x', { tags: ['endpoint'] });
    await store.put(url('/e/2'), 'x', { tags: ['endpoint', 'other'] });
    const answer = await post(JSON.stringify({ tags: ['endpoint'] }), { authorization: `Bearer ${SECRET}` });
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body)).toEqual({ tags: ['endpoint'], purged: 2, servers: [{ server: memcached.address, purged: 2, notCached: 0, failed: 0 }] });
    expect(await store.get(url('/e/2'))).toBeUndefined();
  });

  it('refuses without the secret or with a wrong one (401), another method (405), and a body it cannot use (400)', async () => {
    await store.put(url('/e/3'), 'x', { tags: ['kept'] });
    expect((await post(JSON.stringify({ tags: ['kept'] }))).status).toBe(401);
    expect((await post(JSON.stringify({ tags: ['kept'] }), { authorization: `Bearer ${SECRET.slice(0, -1)}x` })).status).toBe(401);
    expect((await post(JSON.stringify({ tags: ['kept'] }), { authorization: SECRET })).status).toBe(401);
    expect((await post('', { authorization: `Bearer ${SECRET}` }, 'GET')).status).toBe(405);
    expect((await post('{"tags": "kept"}', { authorization: `Bearer ${SECRET}` })).status).toBe(400);
    expect((await post('{"tags": ["two words"]}', { authorization: `Bearer ${SECRET}` })).status).toBe(400);
    expect(await store.get(url('/e/3'))).toBeDefined();
  });

  it('says in a 400 what it could not use: a body that is not JSON, tags that are not a list, a tag, soft; and answers 413 over 64 KiB', async () => {
    const authorization = `Bearer ${SECRET}`;
    const answers = await Promise.all(
      ['{"tags": ["kept"', '[]', '{"tags": "kept"}', '{"tags": []}', '{"tags": [42]}', '{"tags": ["two words"]}', '{"tags": ["kept"], "soft": "yes"}'].map((body) =>
        post(body, { authorization }),
      ),
    );
    expect(answers.map((answer) => [answer.status, (JSON.parse(answer.body) as { error: string }).error])).toEqual([
      [400, 'the body is not JSON: expected {"tags": ["tag", ...], "soft"?: true|false}'],
      [400, '"tags" is not a list of tags: expected {"tags": ["tag", ...]}'],
      [400, '"tags" is not a list of tags: expected {"tags": ["tag", ...]}'],
      [400, '"tags" is not a list of tags: expected {"tags": ["tag", ...]}'],
      [400, 'Invalid tag 42: a tag is a string'],
      [400, 'Invalid tag "two words": a tag is printable ASCII without spaces'],
      [400, '"soft" is not true or false'],
    ]);
    const large = await post(JSON.stringify({ tags: ['kept'], padding: 'x'.repeat(64 * 1024) }), { authorization });
    expect([large.status, JSON.parse(large.body)]).toEqual([413, { error: 'the body is over 65536 bytes' }]);
    expect(await store.get(url('/e/3'))).toBeDefined();
  });

  it('answers 500 when the purge throws, and logs it through the store\'s logger once per interval, without the secret', async () => {
    const warnings: string[] = [];
    const logged = createPageStore(testConfig([memcached.address], { purgeSecret: SECRET }), { ...STEADY, logger: { warn: (message) => warnings.push(message) } });
    try {
      const failing: PageStore = Object.assign(Object.create(logged) as PageStore, {
        purgeTags: () => Promise.reject(new Error(`memcached said no to Bearer ${SECRET}`)),
      });
      const handler = purgeHandler(failing);
      const server = await listen((req, res) => void handler(req, res));
      try {
        for (let i = 0; i < 2; i++) {
          const answer = await requestTo(server.port, '/_sitecache/purge', { Authorization: `Bearer ${SECRET}`, 'Content-Type': 'application/json', 'Content-Length': '16' }, 'POST', '{"tags": ["a"]}\n');
          expect([answer.status, JSON.parse(answer.body.toString())]).toEqual([500, { error: 'the purge failed' }]);
        }
      } finally {
        await server.stop();
      }
      expect(warnings).toEqual(['sitecache: the purge endpoint failed (memcached said no to Bearer (the secret)); it answered 500']);
    } finally {
      await logged.close();
    }
  });

  it('will not start without a secret, and takes one from SITECACHE_PURGE_SECRET', () => {
    const plain = createPageStore(testConfig([memcached.address]), STEADY);
    const saved = process.env.SITECACHE_PURGE_SECRET;
    try {
      delete process.env.SITECACHE_PURGE_SECRET;
      expect(() => purgeHandler(plain)).toThrow(CacheStoreOptionError);
      expect(() => purgeHandler(plain, { secret: 'short' })).toThrow(CacheStoreOptionError);
      process.env.SITECACHE_PURGE_SECRET = SECRET;
      expect(typeof purgeHandler(plain)).toBe('function');
    } finally {
      if (saved === undefined) delete process.env.SITECACHE_PURGE_SECRET;
      else process.env.SITECACHE_PURGE_SECRET = saved;
      void plain.close();
    }
  });
});
