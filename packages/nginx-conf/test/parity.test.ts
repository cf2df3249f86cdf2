import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { InvalidHostError, requestKey } from '@sitecache/cache-key';
import { parseConfig, type SitecacheConfig } from '@sitecache/config';
import { keyRequestUri } from '@sitecache/nginx-model';
import { renderNginxConf, renderNjsKeyModule, type RenderOptions } from '@sitecache/nginx-conf';
import {
  memcachedSet,
  sendRaw,
  startMemcached,
  startNginx,
  type MemcachedServer,
  type NginxServer,
} from '@sitecache/test-services';
import { hasNoPath, nodeRefuses, parityCorpus, queryCorpus, REJECTED_HOSTS, REJECTED_TARGETS, SITE_HOSTS, type ParityCase } from './corpus.js';

// The invariant the product rests on: the key the app computes is the key nginx looks up.
// Each md5 backend (and, for set_misc, each module that removes ignoreParams) with the defaults,
// again with a key prefix holding every character the config allows that nginx, Lua or JavaScript
// could read specially, the http scheme, another hit header and ignoreParams of every shape, and
// once with no ignoreParams at all (every URI keyed as sent).
const UNUSUAL = {
  keyPrefix: 'blog;v2#%[x]|~&(1)!:/',
  scheme: 'http',
  cacheHeader: 'X-Page-Cache',
  ignoreParams: ['utm_*', 'fbclid', 'a.b~c-d', 'x%5F*', '_'],
} as const;
const UNUSUAL_WHAT = 'an unusual prefix, http, another hit header and ignoreParams';
const VARIANTS: readonly (readonly [string, string, object, RenderOptions])[] = [
  ['set_misc and lua', 'the defaults', {}, { md5: 'set_misc', normalize: 'lua' }],
  ['set_misc and njs', 'the defaults', {}, { md5: 'set_misc', normalize: 'njs' }],
  ['lua', 'the defaults', {}, { md5: 'lua' }],
  ['njs', 'the defaults', {}, { md5: 'njs' }],
  ['set_misc and lua', UNUSUAL_WHAT, UNUSUAL, { md5: 'set_misc', normalize: 'lua' }],
  ['set_misc and njs', UNUSUAL_WHAT, UNUSUAL, { md5: 'set_misc', normalize: 'njs' }],
  ['lua', UNUSUAL_WHAT, UNUSUAL, { md5: 'lua' }],
  ['njs', UNUSUAL_WHAT, UNUSUAL, { md5: 'njs' }],
  ['set_misc', 'no ignoreParams', { ignoreParams: [] }, { md5: 'set_misc' }],
];

describe.each(VARIANTS)('with the key by %s and %s, the key cache-key computes is the key nginx looks up', (_how, _what, fields, options) => {
  const corpus = parityCorpus();
  let memcached: MemcachedServer;
  let nginx: NginxServer;
  let app: Server;
  let config: SitecacheConfig;
  const appSaw: { nginxKey: string | undefined; appKey: string; url: string; host: string | undefined }[] = [];

  beforeAll(async () => {
    memcached = await startMemcached();
    app = createServer((req, res) => {
      let appKey: string;
      try {
        appKey = requestKey(req, config);
      } catch (error) {
        appKey = `error: ${(error as Error).message}`;
      }
      const nginxKey = req.headers['x-sitecache-key'] as string | undefined;
      appSaw.push({ nginxKey, appKey, url: req.url ?? '', host: req.headers.host });
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify({ nginxKey, appKey }));
    });
    await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
    const appPort = (app.address() as AddressInfo).port;
    nginx = await startNginx(async ({ port, prefix }) => {
      config = parseConfig({
        hosts: SITE_HOSTS,
        listen: `127.0.0.1:${port}`,
        memcached: [memcached.address],
        app: [`127.0.0.1:${appPort}`],
        gzip: false,
        ...fields,
      });
      const njsModulePath = join(prefix, 'sitecache-key.js');
      await writeFile(njsModulePath, renderNjsKeyModule(config));
      return renderNginxConf(config, { ...options, standalone: true, prefix, njsModulePath, debugKeyHeader: true, workerProcesses: 1 });
    });
  });

  afterAll(async () => {
    await nginx?.stop();
    await memcached?.stop();
    await new Promise((resolve) => app?.close(resolve));
  });

  const request = (c: ParityCase): Buffer =>
    Buffer.from(`GET ${c.target} HTTP/1.1\r\nHost: ${c.host}\r\nConnection: close\r\n\r\n`, 'latin1');

  it('covers at least 300 request targets, 150 of them with ignored query parameters', () => {
    expect(corpus.length).toBeGreaterThanOrEqual(300);
    const queries = new Set(queryCorpus().map((c) => c.target));
    expect(corpus.filter((c) => queries.has(c.target)).length).toBeGreaterThanOrEqual(150);
    if (config.ignoreParams.length > 0) {
      // Most of them name a parameter the key leaves out; the look-alikes stay in it.
      const changed = [...queries].filter((target) => keyRequestUri(target, config.ignoreParams) !== target);
      expect(changed.length).toBeGreaterThanOrEqual(150);
    }
  });

  it('serves every page stored under requestKey from memcached, byte for byte', async () => {
    // Distinct bodies, so a page served under the wrong key shows up as a wrong body.
    const bodies = corpus.map((c, i) => `<p>page ${i} for ${JSON.stringify(c.target.slice(0, 60))}</p>`);
    const keys = corpus.map((c) => requestKey({ url: c.target, headers: { host: c.host } }, config));
    // Cases that name the same page (e.g. a host with and without its port) share one stored body.
    const firstIndexOfKey = new Map<string, number>();
    keys.forEach((key, i) => {
      if (!firstIndexOfKey.has(key)) firstIndexOfKey.set(key, i);
    });
    for (const [key, i] of firstIndexOfKey) await memcachedSet(memcached.address, key, bodies[i] as string);

    const failures: string[] = [];
    await inBatches(corpus, 16, async (c, i) => {
      const response = await sendRaw(nginx.port, request(c));
      const expected = bodies[firstIndexOfKey.get(keys[i] as string) as number];
      const hit = response.headers[config.cacheHeader.toLowerCase()];
      if (response.status !== 200 || hit !== 'HIT' || response.body.toString() !== expected) {
        failures.push(
          `${JSON.stringify(c)}: ${response.status} ${hit} nginx key ${response.headers['x-sitecache-key']} app key ${keys[i]}`,
        );
      }
    });
    expect(failures).toEqual([]);
  });

  it('computes in the app, from the request nginx forwards, the key nginx used', async () => {
    // An empty cache for these targets: every request is a miss that nginx sends to the app
    // together with the key it looked up.
    const forwarded = corpus.filter((c) => !nodeRefuses(c.target) && !hasNoPath(c.target));
    expect(forwarded.length).toBeGreaterThanOrEqual(300);
    const failures: string[] = [];
    await inBatches(forwarded, 16, async (c) => {
      const response = await sendRaw(nginx.port, request(withMissMarker(c)));
      const seen = response.status === 200 ? (JSON.parse(response.body.toString()) as { nginxKey: string; appKey: string }) : undefined;
      if (!seen || seen.nginxKey !== seen.appKey || !/^[0-9a-f]{32}$/.test(seen.appKey)) {
        failures.push(`${JSON.stringify(c)}: ${response.status} ${response.body.toString().slice(0, 200)}`);
      }
    });
    expect(failures).toEqual([]);
  });

  it('leaves raw UTF-8 targets to Node, whose parser answers 400: nothing is rendered or stored for them', async () => {
    const raw = corpus.filter((c) => nodeRefuses(c.target));
    expect(raw.length).toBeGreaterThan(0);
    for (const c of raw) {
      const response = await sendRaw(nginx.port, request(withMissMarker(c)));
      expect(response.status).toBe(400);
    }
  });

  it('forwards an absolute-form target with no path as "/?query", a page the app keys as clients request it', async () => {
    const before = appSaw.length;
    const response = await sendRaw(nginx.port, request({ target: 'http://www.example.com?only-form', host: 'x' }));
    expect(response.status).toBe(200);
    const seen = appSaw.slice(before).at(-1);
    expect(seen?.url).toBe('/?only-form');
    // nginx looked up the key of "?only-form"; the app stores under the key of "/?only-form",
    // which is the key nginx uses for the usual request of that page.
    expect(seen?.nginxKey).toBe(requestKey({ url: 'http://www.example.com?only-form', headers: {} }, config));
    expect(seen?.appKey).toBe(requestKey({ url: '/?only-form', headers: { host: 'www.example.com' } }, config));
  });

  it.each(REJECTED_TARGETS)('never looks up target %j, which nginx refuses with 400', async (target) => {
    const response = await sendRaw(nginx.port, `GET ${target} HTTP/1.1\r\nHost: www.example.com\r\nConnection: close\r\n\r\n`);
    expect(response.status).toBe(400);
    expect(response.headers['x-sitecache-key']).toBeUndefined();
  });

  it.each(REJECTED_HOSTS)('refuses host %j as nginx does, with 400 there and InvalidHostError here', async (host) => {
    const response = await sendRaw(nginx.port, `GET / HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
    expect(response.status).toBe(400);
    expect(() => requestKey({ url: '/', headers: { host } }, config)).toThrow(InvalidHostError);
  });
});

/** The same request with a query marker nothing was stored under, so nginx misses. */
function withMissMarker(c: ParityCase): ParityCase {
  const hash = c.target.indexOf('#');
  const [path, fragment] = hash < 0 ? [c.target, ''] : [c.target.slice(0, hash), c.target.slice(hash)];
  return { ...c, target: `${path}${path.includes('?') ? '&' : '?'}miss${fragment}` };
}

async function inBatches<T>(items: readonly T[], size: number, each: (item: T, index: number) => Promise<void>): Promise<void> {
  for (let start = 0; start < items.length; start += size) {
    await Promise.all(items.slice(start, start + size).map((item, offset) => each(item, start + offset)));
  }
}
