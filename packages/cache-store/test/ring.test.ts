import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { cacheKey } from '@sitecache/cache-key';
import { memcachedSet } from '@sitecache/test-services';
import { CacheStoreOptionError, createHashRing, type HashMethod } from '../src/index.js';
import { HOST, listen, mapLimit, startSite, type Site } from './site.js';

// The writer must pick the very server nginx reads: checked against nginx itself, which tells
// which server answered because each server holds a body naming itself.
describe.each<[string, HashMethod, number, (conf: string) => string]>([
  ['consistent ring', 'consistent', 0, (conf) => conf],
  ['modulo ring', 'modulo', 0, (conf) => conf.replace('hash $memcached_key consistent;', 'hash $memcached_key;')],
  ['consistent ring with a unix socket server', 'consistent', 1, (conf) => conf],
])('the %s', (_name, method, unixSockets, edit) => {
  let site: Site;
  let app: Awaited<ReturnType<typeof listen>>;

  beforeAll(async () => {
    app = await listen((_req, res) => {
      res.statusCode = 500;
      res.end('the app must not be asked: every page is stored on every server');
    });
    site = await startSite({ memcachedCount: 3, unixSockets, appPort: app.port, fields: { gzip: false }, edit, render: { debugKeyHeader: true } });
  });

  afterAll(async () => {
    await site?.stop();
    await app?.stop();
  });

  it('sends every key to the server nginx reads it from (400 keys)', async () => {
    const ring = createHashRing(site.config.memcached, method);
    const paths = Array.from({ length: 400 }, (_, i) => `/ring/${method}/${unixSockets}/${i}?q=${i * 7919}`);
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

describe('createHashRing', () => {
  it('spreads keys over every server, each taking a fair share', () => {
    const ring = createHashRing(['127.0.0.1:11211', '127.0.0.1:11212', '127.0.0.1:11213']);
    const counts = new Map<string, number>();
    for (let i = 0; i < 30_000; i++) {
      const server = ring.serverFor(cacheKey(`https://${HOST}/p/${i}`));
      counts.set(server, (counts.get(server) ?? 0) + 1);
    }
    expect([...counts.keys()].sort()).toEqual(ring.servers);
    for (const n of counts.values()) expect(n).toBeGreaterThan(6_000);
  });

  it('moves only the keys of a removed server when the ring is consistent', () => {
    const servers = ['10.0.0.1:11211', '10.0.0.2:11211', '10.0.0.3:11211', '10.0.0.4:11211'];
    const full = createHashRing(servers);
    const smaller = createHashRing(servers.slice(0, 3));
    let moved = 0;
    for (let i = 0; i < 5_000; i++) {
      const key = cacheKey(`https://${HOST}/m/${i}`);
      const before = full.serverFor(key);
      if (before !== servers[3] && smaller.serverFor(key) !== before) moved++;
    }
    expect(moved).toBe(0);
  });

  it('hashes the server strings as written, so another spelling of the same server is another ring', () => {
    const keys = Array.from({ length: 200 }, (_, i) => cacheKey(`https://${HOST}/s/${i}`));
    const a = createHashRing(['127.0.0.1:11211', '127.0.0.1:11212']);
    const b = createHashRing(['localhost:11211', '127.0.0.1:11212']);
    const differ = keys.filter((k) => (a.serverFor(k) === '127.0.0.1:11211') !== (b.serverFor(k) === 'localhost:11211'));
    expect(differ.length).toBeGreaterThan(0);
  });

  it('refuses an empty list, a repeated server and an unknown method, naming the option', () => {
    expect(() => createHashRing([])).toThrow(CacheStoreOptionError);
    expect(() => createHashRing(['a:1', 'a:1'])).toThrow(/"servers"/);
    expect(() => createHashRing(['a:1'], 'random' as HashMethod)).toThrow(/"method"/);
  });
});
