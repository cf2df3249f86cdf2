import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { cacheKey } from '@sitecache/cache-key';
import { ConfigError } from '@sitecache/config';
import { memcachedGet, startMemcached, type MemcachedServer, type RawResponse } from '@sitecache/test-services';
import express from 'express';
import { CacheStoreOptionError, createPageStore, pageCache, type PageCacheMiddleware, type PageCacheOptions, type PageStore } from '../src/index.js';
import { eventually, headersWithout, HOST, STEADY, listen, listenBehind, remainingTtl, requestTo, testConfig, type ConfigFields, type Handler } from './site.js';

const quiet = STEADY;
const keyOf = (path: string): string => cacheKey(`https://${HOST}${path}`);
const withoutVolatile = (r: RawResponse): Record<string, string> => headersWithout(r.headers, ['date', 'x-cache']);
/**
 * A real store with some methods replaced: how a test makes the store fail on the hot path. The
 * middleware stores through `putClaimed` (put, checked against the purge marker its render saw).
 */
const overriding = (store: PageStore, methods: Partial<Pick<PageStore, 'get'>> & { putClaimed?: PageStore['put'] }): PageStore =>
  Object.assign(Object.create(store) as PageStore, methods);
/** A promise the test resolves when it chooses: holds a render open until then. */
const gate = (): { readonly opened: Promise<void>; open(): void } => {
  let open = (): void => undefined;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
};
/** One turn of the event loop: the microtasks queued before it have all run. */
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
/** What `work` threw, for a test to look at. */
const thrownBy = (work: () => unknown): unknown => {
  try {
    work();
  } catch (error) {
    return error;
  }
  throw new Error('expected it to throw');
};

describe('pageCache on node:http', () => {
  let memcached: MemcachedServer;
  const running: { stop(): Promise<void> }[] = [];
  const caches: PageCacheMiddleware[] = [];

  beforeAll(async () => {
    memcached = await startMemcached();
  });
  afterEach(async () => {
    for (const s of running.splice(0)) await s.stop();
    for (const c of caches.splice(0)) await c.close();
  });
  afterAll(async () => {
    await memcached?.stop();
  });

  /** The app behind the middleware, on a port of its own; `arrived` hears of each request before the middleware does. */
  const serve = async (handler: Handler, options: PageCacheOptions = {}, fields: ConfigFields = { gzip: false }, arrived?: () => void) => {
    const cache = pageCache(testConfig([memcached.address], fields), { ...quiet, ...options });
    caches.push(cache);
    const server = await listenBehind(cache, handler, arrived);
    running.push(server);
    return { cache, port: server.port };
  };
  const bare = async (handler: Handler) => {
    const server = await listen(handler);
    running.push(server);
    return server.port;
  };
  const stored = (path: string) => memcachedGet(memcached.address, keyOf(path));

  it('sends the response untouched plus X-Cache: MISS, and stores exactly the bytes written', async () => {
    const page: Handler = (_req, res) => {
      res.setHeader('Content-Type', 'text/html; charset=utf-8');
      res.setHeader('ETag', '"v1"');
      res.write('<p>caf\u00e9 ');
      res.write('c3RyaW5nIGluIGJhc2U2NA==', 'base64');
      res.write(Buffer.from(' a buffer '));
      res.write(new Uint8Array([0x75, 0x38]));
      res.end(' and the end</p>', 'utf8');
    };
    const { cache, port } = await serve(page);
    const plainPort = await bare(page);
    const withCache = await requestTo(port, '/untouched');
    const without = await requestTo(plainPort, '/untouched');
    expect(withCache.headers['x-cache']).toBe('MISS');
    expect(withCache.status).toBe(without.status);
    expect(withoutVolatile(withCache)).toEqual(withoutVolatile(without));
    expect(withCache.body).toEqual(without.body);
    await eventually(() => cache.metrics.snapshot().stored === 1, 'the page to be stored');
    expect((await stored('/untouched'))?.value).toEqual(without.body);
  });

  it('keeps the status, headers and body the app sets with writeHead', async () => {
    const page: Handler = (_req, res) => {
      res.writeHead(200, 'Fine', { 'Content-Type': 'text/html', 'X-App': ['a', 'b'] });
      res.end('<p>writeHead</p>');
    };
    // X-App is the app's own header: a hit carries it only as one of config.hitHeaders.
    const { cache, port } = await serve(page, {}, { gzip: false, hitHeaders: { 'X-App': 'a, b' } });
    const response = await requestTo(port, '/write-head');
    expect(response.headers).toMatchObject({ 'x-app': 'a, b', 'x-cache': 'MISS', 'content-type': 'text/html' });
    await eventually(() => cache.metrics.snapshot().stored === 1, 'the page to be stored');
  });

  it('renders concurrent misses for one page once and gives the followers the same response', async () => {
    let renders = 0;
    let arrivals = 0;
    const everyoneHere = gate();
    const { cache, port } = await serve(
      async (_req, res) => {
        renders++;
        // The leader's render lasts until all ten requests are in and the followers have joined it
        // (a join completes in the microtasks of its request's own turn).
        await everyoneHere.opened;
        await nextTurn();
        res.setHeader('Content-Type', 'text/html; charset=utf-8');
        res.end(`<p>render ${renders}</p>`);
      },
      { singleFlightWaitMs: 30_000 },
      { gzip: false },
      () => {
        if (++arrivals === 10) everyoneHere.open();
      },
    );
    const responses = await Promise.all(Array.from({ length: 10 }, () => requestTo(port, '/popular')));
    expect(renders).toBe(1);
    expect(new Set(responses.map((r) => r.body.toString()))).toEqual(new Set(['<p>render 1</p>']));
    expect(responses.every((r) => r.status === 200 && r.headers['content-type'] === 'text/html; charset=utf-8')).toBe(true);
    expect(cache.metrics.snapshot().singleFlightJoins).toBe(9);
  });

  it('lets followers render themselves once the bounded wait for the leader is over', async () => {
    let renders = 0;
    const followersAnswered = gate();
    const { port } = await serve(
      async (_req, res) => {
        // The leader renders until every follower has had its answer: a follower that waited for
        // the leader without a bound would never get one (and the test would time out).
        if (++renders === 1) await followersAnswered.opened;
        res.end('<p>slow</p>');
      },
      { singleFlightWaitMs: 100 },
    );
    const leader = requestTo(port, '/slow');
    await eventually(() => renders === 1, 'the leader to start rendering');
    const followers = await Promise.all(Array.from({ length: 4 }, () => requestTo(port, '/slow')));
    followersAnswered.open();
    expect([...followers, await leader].map((r) => r.body.toString())).toEqual(Array(5).fill('<p>slow</p>'));
    expect(renders).toBe(5);
  });

  it('never hands a leader response that sets a cookie to the requests waiting on it', async () => {
    let renders = 0;
    let arrivals = 0;
    const everyoneHere = gate();
    const { cache, port } = await serve(
      async (_req, res) => {
        const n = ++renders;
        // The leader answers only once the other four wait on it.
        if (n === 1) {
          await everyoneHere.opened;
          await nextTurn();
        }
        res.setHeader('Set-Cookie', `visitor=${n}`);
        res.setHeader('Content-Type', 'text/html');
        res.end(`<p>for visitor ${n}</p>`);
      },
      { singleFlightWaitMs: 30_000 },
      { gzip: false },
      () => {
        if (++arrivals === 5) everyoneHere.open();
      },
    );
    const responses = await Promise.all(Array.from({ length: 5 }, () => requestTo(port, '/personal')));
    expect(cache.metrics.snapshot().singleFlightJoins).toBe(0);
    expect(renders).toBe(5);
    expect(new Set(responses.map((r) => r.headers['set-cookie'])).size).toBe(5);
    expect(await stored('/personal')).toBeNull();
  });

  it('does not store a response the client abandoned, and frees its page for the next request', async () => {
    let calls = 0;
    const { cache, port } = await serve((_req, res) => {
      calls++;
      res.setHeader('Content-Type', 'text/html');
      res.write('<p>first part');
      if (calls === 1) return; // the first render never ends: its client hangs up
      res.end(' and the rest</p>');
    });
    await new Promise<void>((resolve) => {
      const socket = connect(port, '127.0.0.1', () => socket.write(`GET /abandoned HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`));
      socket.once('data', () => {
        socket.destroy();
        resolve();
      });
    });
    await eventually(() => cache.metrics.snapshot().skipped.aborted === 1, 'the abandoned response to be counted');
    const next = await requestTo(port, '/abandoned');
    expect(next.body.toString()).toBe('<p>first part and the rest</p>');
    expect(cache.metrics.snapshot().singleFlightJoins).toBe(0);
  });

  it('streams a page past the size guard to the client in full and skips it as too-large', async () => {
    const chunk = Buffer.alloc(64 * 1024, 'z');
    const { cache, port } = await serve(
      (_req, res) => {
        res.setHeader('Content-Type', 'text/html');
        for (let i = 0; i < 20; i++) res.write(chunk);
        res.end();
      },
      { maxItemBytes: 512 * 1024 },
    );
    const response = await requestTo(port, '/stream');
    expect(response.body.length).toBe(20 * chunk.length);
    await eventually(() => cache.metrics.snapshot().skipped['too-large'] === 1, 'the page to be skipped');
    expect(await stored('/stream')).toBeNull();
  });

  it('lets a route opt out or set its own TTL', async () => {
    const { cache, port } = await serve(
      (_req, res) => {
        res.setHeader('Content-Type', 'text/html');
        res.end('<p>routed</p>');
      },
      { route: (req: IncomingMessage) => (req.url?.startsWith('/live') ? false : req.url?.startsWith('/short') ? { ttl: 7 } : undefined) },
    );
    await requestTo(port, '/live/score');
    await requestTo(port, '/short/news');
    await eventually(() => cache.metrics.snapshot().stored === 1, 'the short page to be stored');
    expect(cache.metrics.snapshot().skipped.route).toBe(1);
    expect(await stored('/live/score')).toBeNull();
    const reply = await memcachedGet(memcached.address, keyOf('/short/news'));
    expect(reply?.value.toString()).toBe('<p>routed</p>');
    const ttl = await remainingTtl(memcached.address, keyOf('/short/news'));
    expect(ttl).toBeGreaterThan(4);
    expect(ttl).toBeLessThanOrEqual(7);
  });

  it('still serves the page when the route option throws, counts it as internal-error and logs it once', async () => {
    const warnings: string[] = [];
    const cache = pageCache(testConfig([memcached.address], { gzip: false }), {
      logger: { warn: (m) => warnings.push(m) },
      route: () => {
        throw new Error('route table broken');
      },
    });
    caches.push(cache);
    const server = await listen((req, res) => cache(req, res, () => res.end('<p>still here</p>')));
    running.push(server);
    expect((await requestTo(server.port, '/x')).body.toString()).toBe('<p>still here</p>');
    expect((await requestTo(server.port, '/y')).body.toString()).toBe('<p>still here</p>');
    expect(warnings.filter((w) => w.includes('route table broken'))).toHaveLength(1);
    expect(cache.metrics.snapshot().skipped).toMatchObject({ 'internal-error': 2, route: 0 });
    expect(await stored('/x')).toBeNull();
  });

  it('takes the config as written in sitecache.config.json, a plain object, and stores pages', async () => {
    const written = { hosts: [HOST], memcached: [memcached.address], app: ['127.0.0.1:9'], gzip: false };
    const cache = pageCache(written, quiet);
    caches.push(cache);
    const server = await listen((req, res) =>
      cache(req, res, () => {
        res.setHeader('Content-Type', 'text/html');
        res.end('<p>plain config</p>');
      }),
    );
    running.push(server);
    expect((await requestTo(server.port, '/plain-config')).body.toString()).toBe('<p>plain config</p>');
    await eventually(() => cache.metrics.snapshot().stored === 1, () => `the page to be stored: ${JSON.stringify(cache.metrics.snapshot().skipped)}`);
    expect((await stored('/plain-config'))?.value.toString()).toBe('<p>plain config</p>');
    // A store made from the same object is shared; one of another config is refused.
    const store = createPageStore(written, quiet);
    caches.push(pageCache(written, { store }));
    expect(thrownBy(() => pageCache({ ...written, ttl: 60 }, { store }))).toMatchObject({ option: 'store' });
    expect(thrownBy(() => pageCache({ ...written, ttl: 60 }, { store }))).toBeInstanceOf(CacheStoreOptionError);
  });

  it('throws ConfigError naming the field when a plain config has a bad one', () => {
    const written = JSON.parse(`{ "hosts": ["${HOST}"], "memcached": ["${memcached.address}"], "app": ["127.0.0.1:9"], "ttl": "600" }`);
    const error = thrownBy(() => pageCache(written, quiet));
    expect(error).toBeInstanceOf(ConfigError);
    expect(error).toMatchObject({ field: 'ttl', value: '600' });
  });

  it('counts a lookup that throws as internal-error, logs it once, and lets the app answer', async () => {
    const warnings: string[] = [];
    const real = createPageStore(testConfig([memcached.address], { gzip: false }), { ...quiet, logger: { warn: (m) => warnings.push(m) } });
    const store = overriding(real, {
      get: async () => {
        throw new Error('lookup exploded');
      },
    });
    const { cache, port } = await serve(
      (_req, res) => {
        res.setHeader('Content-Type', 'text/html');
        res.end('<p>from the app</p>');
      },
      { store, serveFromCache: true },
    );
    for (const path of ['/lookup/1', '/lookup/2', '/lookup/3']) {
      const response = await requestTo(port, path);
      expect([response.status, response.body.toString()]).toEqual([200, '<p>from the app</p>']);
    }
    expect(cache.metrics.snapshot()).toMatchObject({ hits: 0, misses: 0, skipped: expect.objectContaining({ 'internal-error': 3 }) });
    expect(warnings.filter((w) => w.includes('lookup exploded'))).toHaveLength(1);
  });

  it('counts a store put that rejects as internal-error, logging each distinct error once per interval', async () => {
    const warnings: string[] = [];
    const real = createPageStore(testConfig([memcached.address], { gzip: false }), {
      ...quiet,
      logIntervalMs: 60_000,
      logger: { warn: (m) => warnings.push(m) },
    });
    let puts = 0;
    const store = overriding(real, {
      putClaimed: async () => {
        throw new Error(puts++ % 2 === 0 ? 'put exploded: A' : 'put exploded: B');
      },
    });
    const { cache, port } = await serve(
      (_req, res) => {
        res.setHeader('Content-Type', 'text/html');
        res.end('<p>from the app</p>');
      },
      { store },
    );
    for (let i = 0; i < 4; i++) expect((await requestTo(port, `/put/${i}`)).body.toString()).toBe('<p>from the app</p>');
    await eventually(() => cache.metrics.snapshot().skipped['internal-error'] === 4, () => `4 internal errors: ${JSON.stringify(cache.metrics.snapshot())}`);
    expect(cache.metrics.snapshot().skipped['invalid-request']).toBe(0);
    expect(warnings.filter((w) => w.includes('put exploded: A'))).toHaveLength(1);
    expect(warnings.filter((w) => w.includes('put exploded: B'))).toHaveLength(1);
  });

  it('survives a store put that throws synchronously, counting it as internal-error', async () => {
    const real = createPageStore(testConfig([memcached.address], { gzip: false }), { ...quiet, logger: { warn: () => undefined } });
    const store = overriding(real, {
      putClaimed: () => {
        throw new Error('put threw at once');
      },
    });
    const { cache, port } = await serve(
      (_req, res) => {
        res.setHeader('Content-Type', 'text/html');
        res.end('<p>from the app</p>');
      },
      { store },
    );
    expect((await requestTo(port, '/put-throws')).body.toString()).toBe('<p>from the app</p>');
    await eventually(() => cache.metrics.snapshot().skipped['internal-error'] === 1, 'the internal error to be counted');
    expect((await requestTo(port, '/put-throws-again')).status).toBe(200);
  });

  it('counts a response the policy cannot read as internal-error, not as invalid-request, and stores nothing', async () => {
    const warnings: string[] = [];
    const { cache, port } = await serve(
      (_req, res) => {
        res.setHeader('Content-Type', 'text/html');
        // Node reads it to send it; once sent, reading it throws, as a broken header object might.
        res.setHeader('Cache-Control', {
          toString: () => {
            if (res.headersSent) throw new Error('Cache-Control read after it was sent');
            return 'public, max-age=60';
          },
        } as unknown as string);
        res.end('<p>odd header</p>');
      },
      { logger: { warn: (m) => warnings.push(m) } },
    );
    const response = await requestTo(port, '/odd-header');
    expect([response.status, response.headers['cache-control'], response.body.toString()]).toEqual([200, 'public, max-age=60', '<p>odd header</p>']);
    await eventually(() => cache.metrics.snapshot().skipped['internal-error'] === 1, () => `an internal error: ${JSON.stringify(cache.metrics.snapshot().skipped)}`);
    expect(cache.metrics.snapshot().skipped['invalid-request']).toBe(0);
    expect(warnings.filter((w) => w.includes('Cache-Control read after it was sent'))).toHaveLength(1);
    expect(await stored('/odd-header')).toBeNull();
  });

  it('counts and logs a failure of the middleware itself and still hands the request to the app', async () => {
    const warnings: string[] = [];
    const cache = pageCache(testConfig([memcached.address], { gzip: false }), { ...quiet, logger: { warn: (m) => warnings.push(m) } });
    caches.push(cache);
    // Something before the cache already sent the head: the cache cannot add its header.
    const server = await listen((req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/html' });
      cache(req, res, () => res.end('<p>early head</p>'));
    });
    running.push(server);
    const response = await requestTo(server.port, '/early-head');
    expect([response.status, response.body.toString()]).toEqual([200, '<p>early head</p>']);
    expect(cache.metrics.snapshot().skipped['internal-error']).toBe(1);
    expect(warnings).toHaveLength(1);
  });

  it('stores a page for the seconds its Expires leaves after its Date header, when it names no max-age', async () => {
    // An app whose clock runs 30 s behind: the lifetime is Expires - Date, whatever the clocks say.
    const date = new Date(Math.floor(Date.now() / 1000) * 1000 - 30_000);
    const { cache, port } = await serve((req, res) => {
      res.setHeader('Content-Type', 'text/html');
      if (req.url === '/expires/dated') {
        res.setHeader('Date', date.toUTCString());
        res.setHeader('Expires', new Date(date.getTime() + 120_000).toUTCString());
      } else {
        res.setHeader('Expires', new Date(Date.now() + 90_000).toUTCString());
      }
      res.end('<p>expires</p>');
    });
    await requestTo(port, '/expires/dated');
    await requestTo(port, '/expires/undated');
    await eventually(() => cache.metrics.snapshot().stored === 2, 'both pages to be stored');
    const dated = await remainingTtl(memcached.address, keyOf('/expires/dated'));
    expect(dated).toBeGreaterThanOrEqual(117);
    expect(dated).toBeLessThanOrEqual(120);
    const undated = await remainingTtl(memcached.address, keyOf('/expires/undated'));
    expect(undated).toBeGreaterThanOrEqual(86);
    expect(undated).toBeLessThanOrEqual(90);
  });

  it('stores the bytes the client got when the app refills its buffer once write() has called back', async () => {
    const parts = ['<p>part one</p>', '<p>part two</p>', '<p>the end!</p>'];
    const { cache, port } = await serve((_req, res) => {
      res.setHeader('Content-Type', 'text/html');
      // One buffer, reused: write() called back, so the app may fill it again (Node is done with it).
      const buffer = Buffer.from(parts[0] as string);
      res.write(buffer, () => {
        buffer.write(parts[1] as string);
        res.write(buffer, () => {
          buffer.write(parts[2] as string);
          res.end(buffer);
        });
      });
    });
    const response = await requestTo(port, '/reused-buffer');
    expect(response.body.toString()).toBe(parts.join(''));
    await eventually(() => cache.metrics.snapshot().stored === 1, 'the page to be stored');
    expect((await stored('/reused-buffer'))?.value.toString()).toBe(parts.join(''));
  });

  it('stores a page streamed in many string and Buffer chunks, far past 64 KiB, byte for byte', async () => {
    const chunk = (i: number): string => `<p>chunk ${i} caf\u00e9 ${'x'.repeat(i % 97)}</p>\n`;
    const { cache, port } = await serve((_req, res) => {
      res.setHeader('Content-Type', 'text/html; charset=utf-8');
      for (let i = 0; i < 6_000; i++) res.write(i % 2 === 0 ? chunk(i) : Buffer.from(chunk(i)));
      res.end(chunk(6_000));
    });
    const response = await requestTo(port, '/long-stream');
    expect(response.body.length).toBeGreaterThan(256 * 1024);
    await eventually(() => cache.metrics.snapshot().stored === 1, 'the page to be stored');
    expect((await stored('/long-stream'))?.value).toEqual(response.body);
  });

  it('answers a stored page itself with serveFromCache, as a HIT, without calling the app', async () => {
    let calls = 0;
    const { cache, port } = await serve(
      (_req, res) => {
        calls++;
        res.setHeader('Content-Type', 'text/html; charset=utf-8');
        res.end('<p>from the app</p>');
      },
      { serveFromCache: true },
      { gzip: true },
    );
    const miss = await requestTo(port, '/served');
    expect(miss.headers['x-cache']).toBe('MISS');
    await eventually(() => cache.metrics.snapshot().stored === 1, 'the page to be stored');
    const hit = await requestTo(port, '/served');
    expect(hit.headers).toMatchObject({ 'x-cache': 'HIT', 'content-type': 'text/html; charset=utf-8', vary: 'Accept-Encoding' });
    expect(hit.body.toString()).toBe('<p>from the app</p>');
    const zipped = await requestTo(port, '/served', { 'Accept-Encoding': 'gzip' });
    expect(zipped.headers['content-encoding']).toBe('gzip');
    const head = await requestTo(port, '/served', {}, 'HEAD');
    expect(head.headers['x-cache']).toBe('HIT');
    expect(head.body.length).toBe(0);
    const authorized = await requestTo(port, '/served', { Authorization: 'Bearer x' });
    expect(authorized.headers['x-cache']).toBe('MISS');
    const withSession = await requestTo(port, '/served', { Cookie: 'theme=dark; sessionid=abc' });
    expect(withSession.headers['x-cache']).toBe('MISS');
    const ranged = await requestTo(port, '/served', { Range: 'bytes=0-3' });
    expect(ranged.headers['x-cache']).toBe('MISS');
    expect(calls).toBe(4);
    expect(cache.metrics.snapshot()).toMatchObject({ hits: 3 });
  });

  it('counts what it did as an object and in Prometheus text format', async () => {
    const { cache, port } = await serve((req, res) => {
      res.setHeader('Content-Type', 'text/html');
      if (req.url === '/private') res.setHeader('Cache-Control', 'private');
      res.end('<p>counted</p>');
    });
    await requestTo(port, '/public');
    await requestTo(port, '/private');
    await requestTo(port, '/public', {}, 'POST');
    await eventually(() => cache.metrics.snapshot().stored === 1, 'the public page to be stored');
    const snapshot = cache.metrics.snapshot();
    expect(snapshot).toMatchObject({ stored: 1, errors: 0, storedBytes: '<p>counted</p>'.length });
    expect(snapshot.skipped).toMatchObject({ private: 1, method: 1 });
    const text = cache.metrics.prometheus();
    expect(text).toContain('# TYPE sitecache_pages_stored_total counter\nsitecache_pages_stored_total 1\n');
    expect(text).toContain('sitecache_pages_skipped_total{reason="private"} 1\n');
    expect(text).toContain(`sitecache_memcached_errors_total{server="${memcached.address}"} 0\n`);
    expect(text).toMatch(/sitecache_stored_bytes_total 14\n/);
  });
});

describe('pageCache in Express', () => {
  let memcached: MemcachedServer;
  let cache: PageCacheMiddleware;
  let server: Awaited<ReturnType<typeof listen>>;

  beforeAll(async () => {
    memcached = await startMemcached();
    cache = pageCache(testConfig([memcached.address], { gzip: false }), quiet);
    const blog = express.Router();
    blog.get('/:slug', (req, res) => {
      res.type('html').send(`<h1>${req.params.slug}</h1>`);
    });
    const app = express();
    // Mounted under a path: Express strips it from req.url, the key must still use the full URI.
    app.use('/blog', cache, blog);
    app.get('/json', (_req, res) => {
      res.json({ not: 'html' });
    });
    server = await listen(app as unknown as (req: IncomingMessage, res: ServerResponse) => void);
  });
  afterAll(async () => {
    await server?.stop();
    await cache?.close();
    await memcached?.stop();
  });

  it('stores an Express page under the full request URI, however the app is mounted', async () => {
    const response = await requestTo(server.port, '/blog/hello?ref=feed');
    expect(response.headers['x-cache']).toBe('MISS');
    await eventually(() => cache.metrics.snapshot().stored === 1, 'the page to be stored');
    const item = await memcachedGet(memcached.address, keyOf('/blog/hello?ref=feed'));
    expect(item?.value.toString()).toBe('<h1>hello</h1>');
  });

  it('refuses a conditional request answered 304 by Express, storing nothing', async () => {
    // The ETag is learnt from another URL with the same body: a request for the same URL while the
    // first one's store still holds its render lock could be answered with the stored page instead.
    const first = await requestTo(server.port, '/blog/etag?first');
    const second = await requestTo(server.port, '/blog/etag', { 'If-None-Match': first.headers.etag as string });
    expect(second.status).toBe(304);
    await eventually(() => cache.metrics.snapshot().skipped.status === 1, 'the 304 to be refused');
  });
});
