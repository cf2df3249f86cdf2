import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { cacheKey } from '@sitecache/cache-key';
import { memcachedSet } from '@sitecache/test-services';
import { createHashRing } from '@sitecache/nginx-model';
import { HOST, listen, mapLimit, startSite, type Site } from './site.js';

// The writer must pick the very server nginx reads: checked against nginx itself, which tells
// which server answered because each server holds a body naming itself.
describe.each<[string, number]>([
  ['of host:port servers', 0],
  ['with a unix socket server', 1],
])('the ring %s', (name, unixSockets) => {
  let site: Site;
  let app: Awaited<ReturnType<typeof listen>>;

  beforeAll(async () => {
    app = await listen((_req, res) => {
      res.statusCode = 500;
      res.end('the app must not be asked: every page is stored on every server');
    });
    site = await startSite({ memcachedCount: 3, unixSockets, appPort: app.port, fields: { gzip: false }, render: { debugKeyHeader: true } });
  });

  afterAll(async () => {
    await site?.stop();
    await app?.stop();
  });

  it('sends every key to the server nginx reads it from (400 keys)', async () => {
    const ring = createHashRing(site.config.memcached);
    const paths = Array.from({ length: 400 }, (_, i) => `/ring/${unixSockets}/${i}?q=${i * 7919}`);
    await mapLimit(paths, 8, async (path) => {
      const key = cacheKey(`https://${HOST}${path}`);
      for (const server of site.config.memcached) await memcachedSet(server, key, `held by ${server}`);
    });
    const mismatches: string[] = [];
    await mapLimit(paths, 8, async (path) => {
      const response = await site.request(path);
      const key = cacheKey(`https://${HOST}${path}`);
      expect(response.headers['x-sitecache-key']).toBe(key);
      const expected = `held by ${ring.serverFor(key)}`;
      if (response.body.toString() !== expected) mismatches.push(`${path}: nginx read "${response.body}", ring said "${expected}"`);
    });
    expect(mismatches).toEqual([]);
  });
});
