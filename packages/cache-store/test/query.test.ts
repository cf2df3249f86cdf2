import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { cacheKey } from '@sitecache/cache-key';
import { memcachedGet, startMemcached, type MemcachedServer } from '@sitecache/test-services';
import { pageCache, type PageCacheMiddleware } from '../src/index.js';
import { eventually, HOST, listen, requestTo, STEADY, testConfig } from './site.js';

// Query strings: tracking parameters are left out of the key (ignoreParams, on both sides), and with
// an allowlist (cacheParams) a page asked for with any other parameter is rendered, never stored.
describe('query strings and the cache', () => {
  let memcached: MemcachedServer;
  let cache: PageCacheMiddleware;
  let server: Awaited<ReturnType<typeof listen>>;
  const keyOf = (target: string): string => cacheKey(`https://${HOST}${target}`);

  beforeAll(async () => {
    memcached = await startMemcached();
    cache = pageCache(testConfig([memcached.address], { gzip: false, cacheParams: ['page'] }), STEADY);
    server = await listen((req, res) =>
      cache(req, res, () => {
        res.setHeader('Content-Type', 'text/html; charset=utf-8');
        res.end(`<p>${req.url}</p>`);
      }),
    );
  });

  afterAll(async () => {
    await server?.stop();
    await cache?.close();
    await memcached?.stop();
  });

  it('stores a page asked for with an allowed parameter, under its own key', async () => {
    await requestTo(server.port, '/list?page=2');
    await eventually(async () => (await memcachedGet(memcached.address, keyOf('/list?page=2'))) !== null, 'the page to be stored');
  });

  it('stores a page asked for with tracking parameters under the key of the page without them', async () => {
    await requestTo(server.port, '/list?utm_source=news&page=3&fbclid=abc');
    await eventually(async () => (await memcachedGet(memcached.address, keyOf('/list?page=3'))) !== null, 'the page to be stored under /list?page=3');
    expect(keyOf('/list?utm_source=news&page=3&fbclid=abc')).toBe(keyOf('/list?page=3'));
  });

  it('removes that page with a purge of its address without the tracking parameters', async () => {
    await requestTo(server.port, '/list?gclid=x&page=4&utm_medium=mail');
    await eventually(async () => (await memcachedGet(memcached.address, keyOf('/list?page=4'))) !== null, 'the page to be stored under /list?page=4');
    expect(await cache.store.purge(`https://${HOST}/list?page=4`)).toMatchObject([{ result: 'purged', key: keyOf('/list?page=4') }]);
    expect(await memcachedGet(memcached.address, keyOf('/list?page=4'))).toBeNull();
  });

  it('renders a page asked for with a parameter outside cacheParams, and never stores it (reason query)', async () => {
    const before = cache.metrics.snapshot().skipped.query;
    const response = await requestTo(server.port, '/list?r=17');
    expect(response.status).toBe(200);
    expect(response.body.toString()).toBe('<p>/list?r=17</p>');
    await eventually(() => cache.metrics.snapshot().skipped.query === before + 1, 'the page to be refused as query');
    expect(await memcachedGet(memcached.address, keyOf('/list?r=17'))).toBeNull();
  });
});
