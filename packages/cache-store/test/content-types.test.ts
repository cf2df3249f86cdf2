import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { OutgoingHttpHeaders } from 'node:http';
import { cacheKey } from '@sitecache/cache-key';
import { freePort, memcachedGet } from '@sitecache/test-services';
import { pageCache, type PageCacheMiddleware } from '../src/index.js';
import { eventually, headersWithout, HOST, listen, requestTo, startSite, STEADY, testConfig, type Site } from './site.js';

const contentTypes = { '= /feed.xml': 'application/rss+xml; charset=utf-8', '/api/v1/': 'application/json' };

// Through real nginx: pages under a location of contentTypes are stored when the app answers with
// that type, and nginx serves them with it; everything else is refused as before.
describe('contentTypes through real nginx', () => {
  let site: Site;
  let cache: PageCacheMiddleware;
  let app: Awaited<ReturnType<typeof listen>>;
  const renders = new Map<string, number>();
  const pages: Record<string, { headers: OutgoingHttpHeaders; body: string }> = {
    '/feed.xml': { headers: { 'Content-Type': 'application/rss+xml; charset=utf-8' }, body: '<rss version="2.0"><channel><title>caf\u00e9</title></channel></rss>' },
    // Express's res.json says charset=utf-8; JSON is UTF-8 by definition, so the bytes are the same.
    '/api/v1/items?page=2': { headers: { 'Content-Type': 'application/json; charset=utf-8' }, body: '{"items":[1,2]}' },
    '/api/v1/html': { headers: { 'Content-Type': 'text/html; charset=utf-8' }, body: '<p>not JSON</p>' },
    '/api/v1/latin1': { headers: { 'Content-Type': 'application/json; charset=iso-8859-1' }, body: '{}' },
    '/outside.json': { headers: { 'Content-Type': 'application/json' }, body: '{"a":1}' },
  };

  beforeAll(async () => {
    const appPort = await freePort();
    site = await startSite({ memcachedCount: 1, appPort, fields: { contentTypes, gzip: true } });
    cache = pageCache(site.config, STEADY);
    app = await listen(
      (req, res) =>
        cache(req, res, () => {
          const page = pages[req.url ?? ''];
          renders.set(req.url ?? '', (renders.get(req.url ?? '') ?? 0) + 1);
          res.writeHead(200, page?.headers ?? {});
          res.end(page?.body ?? '');
        }),
      appPort,
    );
  });
  afterAll(async () => {
    await site?.stop();
    await app?.stop();
    await cache?.close();
  });

  it.each([
    ['/feed.xml', 'application/rss+xml; charset=utf-8'],
    ['/api/v1/items?page=2', 'application/json'],
  ])('stores %s and nginx serves it as %s', async (path, type) => {
    const first = await site.request(path);
    expect(first.headers['x-cache']).toBe('MISS');
    await eventually(async () => (await memcachedGet(site.config.memcached[0] as string, cacheKey(`https://${HOST}${path}`))) !== null, `${path} to be stored`);
    const hit = await site.request(path);
    expect(hit.headers['x-cache']).toBe('HIT');
    expect(hit.headers['content-type']).toBe(type);
    expect(hit.body.toString()).toBe(pages[path]?.body);
    // A client without gzip gets the same bytes, inflated by nginx.
    const plain = await site.request(path, { 'Accept-Encoding': 'identity' });
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(plain.body.toString()).toBe(pages[path]?.body);
    expect(renders.get(path)).toBe(1);
  });

  it.each([
    ['HTML under a JSON location', '/api/v1/html'],
    ['JSON in another charset', '/api/v1/latin1'],
    ['JSON outside any location of contentTypes', '/outside.json'],
  ])('refuses %s ("content-type"), so the app keeps answering', async (_name, path) => {
    const before = cache.metrics.snapshot().skipped['content-type'];
    await site.request(path);
    await eventually(() => cache.metrics.snapshot().skipped['content-type'] === before + 1, 'the refusal');
    expect((await site.request(path)).headers['x-cache']).toBe('MISS');
    expect(renders.get(path)).toBe(2);
  });

  it('answers with the same type as nginx under serveFromCache', async () => {
    const selfServing = pageCache(testConfig(site.config.memcached, { contentTypes, gzip: true }), { ...STEADY, serveFromCache: true });
    const direct = await listen((req, res) => selfServing(req, res, () => res.end('the app must not render a stored page')));
    try {
      const fromApp = await requestTo(direct.port, '/feed.xml', { 'Accept-Encoding': 'gzip' });
      const fromNginx = await site.request('/feed.xml', { 'Accept-Encoding': 'gzip' });
      expect(fromApp.headers['x-cache']).toBe('HIT');
      const volatile = ['date', 'server', 'connection', 'keep-alive', 'accept-ranges'];
      expect(headersWithout(fromApp.headers, volatile)).toEqual(headersWithout(fromNginx.headers, volatile));
    } finally {
      await direct.stop();
      await selfServing.close();
    }
  });
});
