import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { cacheKey } from '@sitecache/cache-key';
import { memcachedGet, startMemcached, type MemcachedServer, type RawResponse } from '@sitecache/test-services';
import express from 'express';
import { pageCache, type PageCacheMiddleware, type PageCacheOptions } from '../src/index.js';
import { eventually, headersWithout, HOST, STEADY, listen, remainingTtl, requestTo, testConfig, type ConfigFields, type Handler } from './site.js';

const quiet = STEADY;
const keyOf = (path: string): string => cacheKey(`https://${HOST}${path}`);
const withoutVolatile = (r: RawResponse): Record<string, string> => headersWithout(r.headers, ['date', 'x-cache']);

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

  /** The app behind the middleware, on a port of its own. */
  const serve = async (handler: Handler, options: PageCacheOptions = {}, fields: ConfigFields = { gzip: false }) => {
    const cache = pageCache(testConfig([memcached.address], fields), { ...quiet, ...options });
    caches.push(cache);
    const server = await listen((req, res) => cache(req, res, () => handler(req, res)));
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
    const { cache, port } = await serve(page);
    const response = await requestTo(port, '/write-head');
    expect(response.headers).toMatchObject({ 'x-app': 'a, b', 'x-cache': 'MISS', 'content-type': 'text/html' });
    await eventually(() => cache.metrics.snapshot().stored === 1, 'the page to be stored');
  });

  it('renders concurrent misses for one page once and gives the followers the same response', async () => {
    let renders = 0;
    const { cache, port } = await serve((_req, res) => {
      renders++;
      setTimeout(() => {
        res.setHeader('Content-Type', 'text/html; charset=utf-8');
        res.end(`<p>render ${renders}</p>`);
      }, 200);
    });
    const responses = await Promise.all(Array.from({ length: 10 }, () => requestTo(port, '/popular')));
    expect(renders).toBe(1);
    expect(new Set(responses.map((r) => r.body.toString()))).toEqual(new Set(['<p>render 1</p>']));
    expect(responses.every((r) => r.status === 200 && r.headers['content-type'] === 'text/html; charset=utf-8')).toBe(true);
    expect(cache.metrics.snapshot().singleFlightJoins).toBe(9);
  });

  it('lets followers render themselves once the bounded wait for the leader is over', async () => {
    let renders = 0;
    const { port } = await serve(
      (_req, res) => {
        renders++;
        setTimeout(() => res.end('<p>slow</p>'), 600);
      },
      { singleFlightWaitMs: 100 },
    );
    const start = performance.now();
    await Promise.all(Array.from({ length: 5 }, () => requestTo(port, '/slow')));
    expect(renders).toBe(5);
    expect(performance.now() - start).toBeLessThan(1_500);
  });

  it('never hands a leader response that sets a cookie to the requests waiting on it', async () => {
    let renders = 0;
    const { port } = await serve((_req, res) => {
      const n = ++renders;
      setTimeout(() => {
        res.setHeader('Set-Cookie', `visitor=${n}`);
        res.setHeader('Content-Type', 'text/html');
        res.end(`<p>for visitor ${n}</p>`);
      }, 100);
    });
    const responses = await Promise.all(Array.from({ length: 5 }, () => requestTo(port, '/personal')));
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

  it('still serves the page when the route option throws, and does not cache that route', async () => {
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
    expect(warnings.join()).toContain('route table broken');
    expect(cache.metrics.snapshot().skipped.route).toBe(1);
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
    const first = await requestTo(server.port, '/blog/etag');
    const second = await requestTo(server.port, '/blog/etag', { 'If-None-Match': first.headers.etag as string });
    expect(second.status).toBe(304);
    await eventually(() => cache.metrics.snapshot().skipped.status === 1, 'the 304 to be refused');
  });
});
