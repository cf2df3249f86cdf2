import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { gunzipSync } from 'node:zlib';
import { cacheKey } from '@sitecache/cache-key';
import { createHashRing, GZIP_FLAG } from '@sitecache/nginx-model';
import { freePort, memcachedGet } from '@sitecache/test-services';
import { pageCache, type PageCacheMiddleware } from '../src/index.js';
import { eventually, headersWithout, HOST, STEADY, listen, mapLimit, requestTo, startSite, type Site } from './site.js';

/** A page whose bytes differ per URL, with raw UTF-8, CR LF and the memcached word END inside. */
const render = (url: string): string =>
  `<!doctype html><title>${url}</title><main>${`<p>caf\u00e9 \u2603 ${url}\r\nEND\r\n</p>`.repeat(1 + (url.length % 40))}</main>`;

// The issue's proof: three memcached servers behind the generated nginx config, pages written
// only by the middleware, every one served by nginx as a hit from the server nginx reads.
describe('pages stored by the middleware behind the generated nginx config (3 memcached servers)', () => {
  let site: Site;
  let cache: PageCacheMiddleware;
  let app: Awaited<ReturnType<typeof listen>>;
  let renders = 0;

  beforeAll(async () => {
    const appPort = await freePort();
    site = await startSite({ memcachedCount: 3, appPort, render: { debugKeyHeader: true } });
    cache = pageCache(site.config, STEADY);
    app = await listen(
      (req, res) =>
        cache(req, res, () => {
          renders++;
          res.setHeader('Content-Type', 'text/html; charset=utf-8');
          res.end(render(req.url ?? ''));
        }),
      appPort,
    );
  });
  afterAll(async () => {
    await site?.stop();
    await app?.stop();
    await cache?.close();
  });

  const urls = Array.from({ length: 1000 }, (_, i) => {
    const shapes = [`/article/${i}`, `/search?q=${i}&page=${i % 7}`, `/caf%C3%A9/${i}/`, `/a//b/./${i}?`, `/tag/${i}?x=%20y&&z`];
    return shapes[i % shapes.length] as string;
  });

  it('serves all 1,000 pages as hits, byte for byte, each from the server nginx hashes its key to', async () => {
    const misses = await mapLimit(urls, 16, (url) => site.request(url));
    expect(misses.filter((r) => r.status !== 200 || r.headers['x-cache'] !== 'MISS')).toEqual([]);
    await eventually(() => cache.metrics.snapshot().stored === urls.length, () => `${urls.length} stored pages: ${JSON.stringify(cache.metrics.snapshot())}`, 30_000);
    expect(renders).toBe(urls.length);

    const hits = await mapLimit(urls, 16, (url) => site.request(url));
    const wrong = hits.flatMap((r, i) => {
      const url = urls[i] as string;
      const ok = r.status === 200 && r.headers['x-cache'] === 'HIT' && r.body.toString() === render(url);
      return ok ? [] : [`${url}: ${r.status} ${r.headers['x-cache']}`];
    });
    expect(wrong).toEqual([]);
    expect(renders).toBe(urls.length);

    const ring = createHashRing(site.config.memcached);
    const misplaced: string[] = [];
    const perServer = new Map<string, number>();
    await mapLimit(urls, 16, async (url, i) => {
      const key = cacheKey(`https://${HOST}${url}`);
      expect(hits[i]?.headers['x-sitecache-key']).toBe(key);
      const home = ring.serverFor(key);
      perServer.set(home, (perServer.get(home) ?? 0) + 1);
      for (const server of site.config.memcached) {
        const item = await memcachedGet(server, key);
        if (server === home && !(item && item.flags === (8 | GZIP_FLAG) && gunzipSync(item.value).toString() === render(url))) {
          misplaced.push(`${url}: not on ${server}, where nginx reads it`);
        }
        if (server !== home && item) misplaced.push(`${url}: also on ${server}`);
      }
    });
    expect(misplaced).toEqual([]);
    expect([...perServer.keys()].sort()).toEqual([...site.config.memcached].sort());
  });

  /** Has nginx pass `url` to the app once, then waits until its page is on the server nginx reads. */
  const storeThroughNginx = async (url: string): Promise<void> => {
    await site.request(url);
    const key = cacheKey(`https://${HOST}${url}`);
    const home = createHashRing(site.config.memcached).serverFor(key);
    await eventually(async () => (await memcachedGet(home, key)) !== null, `${url} to be stored`);
  };

  it('sends with serveFromCache the same headers and body nginx sends for a hit', async () => {
    const url = '/compare/headers?x=1';
    await storeThroughNginx(url);
    const direct = pageCache(site.config, { ...STEADY, serveFromCache: true });
    const server = await listen((req, res) => direct(req, res, () => res.end('the app must not render a stored page')));
    // Framing (chunked or Content-Length), the date and nginx's own name may differ; nothing else.
    const comparable = (h: Record<string, string>): Record<string, string> =>
      headersWithout(h, ['date', 'server', 'connection', 'keep-alive', 'x-sitecache-key', 'transfer-encoding', 'content-length']);
    try {
      for (const [headers, method] of [
        [{}, 'GET'],
        [{ 'Accept-Encoding': 'gzip, deflate' }, 'GET'],
        [{ 'Accept-Encoding': 'gzip;q=0' }, 'GET'],
        [{ 'Accept-Encoding': 'gzip', Via: '1.1 proxy' }, 'GET'],
        [{ 'Accept-Encoding': 'gzip' }, 'HEAD'],
        [{}, 'HEAD'],
      ] as [Record<string, string>, string][]) {
        const fromNginx = await site.request(url, headers, method);
        const ours = await requestTo(server.port, url, headers, method);
        expect(fromNginx.headers['x-cache']).toBe('HIT');
        expect([ours.status, comparable(ours.headers)]).toEqual([fromNginx.status, comparable(fromNginx.headers)]);
        expect(ours.body).toEqual(fromNginx.body);
      }
    } finally {
      await server.stop();
      await direct.close();
    }
  });

  it('never gives a visitor with a session cookie or Authorization the stored page, though one is stored', async () => {
    const url = '/account/overview';
    await storeThroughNginx(url);
    expect((await site.request(url)).headers['x-cache']).toBe('HIT');
    const before = renders;
    const credentials: Record<string, string>[] = [{ Cookie: 'sessionid=s3cret' }, { Cookie: 'theme=dark;  sessionid=x' }, { Authorization: 'Basic dTpw' }];
    for (const headers of credentials) {
      const response = await site.request(url, headers);
      expect(response.headers['x-cache']).toBe('MISS');
      expect(response.body.toString()).toBe(render(url));
    }
    expect(renders).toBe(before + 3);
    expect((await site.request(url, { Cookie: 'xsessionid=1; theme=dark' })).headers['x-cache']).toBe('HIT');
  });
});
