import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { requestKey } from '@sitecache/cache-key';
import { parseConfig, type SitecacheConfig, type SitecacheConfigInput } from '@sitecache/config';
import { createHashRing, GZIP_FLAG, staleKeyConfig } from '@sitecache/nginx-model';
import { renderNginxConf, renderNjsKeyModule, type Md5Backend } from '@sitecache/nginx-conf';
import { memcachedSet, sendRaw, startMemcached, startNginx, type MemcachedServer, type NginxServer, type RawResponse } from '@sitecache/test-services';
import { nodeRefuses, parityCorpus, SITE_HOSTS } from './corpus.js';

// When the app fails on a miss, nginx serves the page's stale copy (grace), through real nginx,
// memcached and an app. The app does what the request's `app` query parameter says: a status
// (500), `close` (drops the connection), `sleep` (answers after 1.5 s, past the appTimeout of 1 s); else 200.
const HOST = 'www.example.com';
const HIT_HEADERS = { 'Cache-Control': 'public, max-age=60', 'X-Quoted': 'say "hi" \\ and a back\\slash, \\"both\\"' };
const ERROR_PAGE_HTML = '<!doctype html><title>Sorry</title><p>Our error page</p>\n';

// What the visitor gets when the app fails this way and no stale copy exists.
const FAILURES = [
  ['answers 500', '500', 500],
  ['answers 502', '502', 502],
  ['answers 503', '503', 503],
  ['answers 504', '504', 504],
  ['drops the connection', 'close', 502],
  ['does not answer within appTimeout', 'sleep', 504],
] as const;

interface Site {
  config: SitecacheConfig;
  nginx: NginxServer;
  memcached: MemcachedServer[];
  app: Server;
  appPort: number;
  stop(): Promise<void>;
}

function startApp(port = 0): Promise<Server> {
  const app = createServer((req, res) => {
    // Read off the raw target: the parity corpus holds targets URL() refuses.
    const how = /[?&]app=([a-z0-9]+)/.exec(req.url ?? '')?.[1] ?? '200';
    req.resume();
    req.on('end', () => {
      if (how === 'close') return void req.socket.destroy();
      const answer = (status: number): void => {
        res.statusCode = status;
        res.setHeader('Content-Type', 'text/html; charset=utf-8');
        res.setHeader('X-Cache', 'MISS');
        res.end(status === 200 ? `rendered by the app: ${req.method} ${req.url}` : `the app's own error ${status}`);
      };
      if (how === 'sleep') setTimeout(() => answer(200), 1_500);
      else answer(Number(how));
    });
  });
  return new Promise((resolve) => app.listen(port, '127.0.0.1', () => resolve(app)));
}

function closeApp(app: Server): Promise<void> {
  app.closeAllConnections();
  return new Promise((resolve) => app.close(() => resolve()));
}

async function startSite(fields: Partial<SitecacheConfigInput>, md5: Md5Backend = 'set_misc', memcachedServers = 1): Promise<Site> {
  const memcached = await Promise.all(Array.from({ length: memcachedServers }, () => startMemcached()));
  const app = await startApp();
  const appPort = (app.address() as AddressInfo).port;
  let config = undefined as unknown as SitecacheConfig;
  const nginx = await startNginx(async ({ port, prefix }) => {
    const errorPage = fields.errorPage === undefined ? undefined : join(prefix, fields.errorPage);
    if (errorPage !== undefined && !errorPage.endsWith('missing.html')) await writeFile(errorPage, ERROR_PAGE_HTML);
    config = parseConfig({
      hosts: [HOST],
      listen: `127.0.0.1:${port}`,
      memcached: memcached.map((server) => server.address),
      app: [`127.0.0.1:${appPort}`],
      ...fields,
      ...(errorPage === undefined ? {} : { errorPage }),
    });
    const njsModulePath = join(prefix, 'sitecache-key.js');
    if (md5 === 'njs') await writeFile(njsModulePath, renderNjsKeyModule(config));
    return renderNginxConf(config, { standalone: true, prefix, md5, njsModulePath, workerProcesses: 1 });
  });
  const site: Site = {
    config,
    nginx,
    memcached,
    app,
    appPort,
    async stop() {
      await nginx.stop();
      await Promise.all(memcached.map((server) => server.stop()));
      await closeApp(site.app);
    },
  };
  return site;
}

const keyOf = (target: string, config: SitecacheConfig, host = HOST): string => requestKey({ url: target, headers: { host } }, config);

/** Writes to the server of the ring nginx reads `key` from, as the app's writer does. */
function store(site: Site, key: string, value: string | Buffer, flags = 0): Promise<void> {
  return memcachedSet(createHashRing(site.config.memcached).serverFor(key), key, value, flags);
}

async function storeStale(site: Site, target: string, html: string): Promise<void> {
  const body = site.config.gzip ? gzipSync(html) : Buffer.from(html);
  await store(site, keyOf(target, staleKeyConfig(site.config)), body, site.config.gzip ? GZIP_FLAG : 0);
}

function send(site: Site, method: string, target: string, headers = '', body = ''): Promise<RawResponse> {
  const length = method === 'POST' ? `Content-Length: ${body.length}\r\n` : '';
  return sendRaw(site.nginx.port, `${method} ${target} HTTP/1.1\r\nHost: ${HOST}\r\n${headers}${length}Connection: close\r\n\r\n${body}`);
}

function expectHitHeaders(response: RawResponse): void {
  expect(response.headers['cache-control']).toBe(HIT_HEADERS['Cache-Control']);
  expect(response.headers['x-quoted']).toBe(HIT_HEADERS['X-Quoted']);
}

describe.each([0, 1])('with grace, an errorPage and gzip, microcache %i, when the app fails on a miss', (microcache) => {
  let site: Site;

  beforeAll(async () => {
    site = await startSite({
      microcache,
      grace: 3600,
      appTimeout: 1,
      gzip: true,
      hitHeaders: HIT_HEADERS,
      errorPage: 'error.html',
      bypassCookies: ['sessionid'],
      contentTypes: { '= /feed.xml': 'application/rss+xml; charset=utf-8', '/api/': 'application/json' },
    });
  });

  afterAll(async () => {
    await site?.stop();
  });

  it.each(FAILURES)('serves the stale copy with 200, STALE and the hitHeaders when the app %s', async (_what, how, _status) => {
    const target = `/article/stale-${how}?app=${how}`;
    await storeStale(site, target, `<h1>stale copy for ${how}</h1>`);
    const response = await send(site, 'GET', target);
    expect(response.status).toBe(200);
    expect(response.headers['x-cache']).toBe('STALE');
    expect(response.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(response.headers['vary']).toBe('Accept-Encoding');
    expectHitHeaders(response);
    expect(response.body.toString()).toBe(`<h1>stale copy for ${how}</h1>`);
  });

  it.each(FAILURES)('answers HEAD with the stale copy\'s headers and no body when the app %s', async (_what, how, _status) => {
    const target = `/article/head-${how}?app=${how}`;
    await storeStale(site, target, '<h1>stale</h1>');
    const response = await send(site, 'HEAD', target, 'Accept-Encoding: gzip\r\n');
    expect(response.status).toBe(200);
    expect(response.headers['x-cache']).toBe('STALE');
    expect(response.headers['content-encoding']).toBe('gzip');
    expectHitHeaders(response);
    expect(response.body.length).toBe(0);
  });

  it.each(FAILURES)("without a stale copy, sends the errorPage with the failure's status when the app %s", async (_what, how, status) => {
    const response = await send(site, 'GET', `/article/no-copy-${how}?app=${how}`);
    expect(response.status).toBe(status);
    expect(response.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(response.body.toString()).toBe(ERROR_PAGE_HTML);
    expect(response.headers['x-cache']).toBeUndefined();
    expect(response.headers['cache-control']).toBeUndefined();
  });

  it('sends the stored gzip bytes of a stale copy to a client that accepts gzip', async () => {
    await storeStale(site, '/article/gz?app=503', '<h1>zipped</h1>');
    const response = await send(site, 'GET', '/article/gz?app=503', 'Accept-Encoding: gzip\r\n');
    expect(response.headers['content-encoding']).toBe('gzip');
    expect(gunzipSync(response.body).toString()).toBe('<h1>zipped</h1>');
  });

  it.each([
    ['= /feed.xml', '/feed.xml?app=500', 'application/rss+xml; charset=utf-8'],
    ['/api/', '/api/items?app=502', 'application/json'],
    ['/ (a path that only starts like a typed one)', '/feed.xml.bak?app=500', 'text/html; charset=utf-8'],
  ])('serves the stale copy of a page under %s with that location\'s type', async (_location, target, type) => {
    await storeStale(site, target, '<feed/>');
    const response = await send(site, 'GET', target);
    expect(response.status).toBe(200);
    expect(response.headers['x-cache']).toBe('STALE');
    expect(response.headers['content-type']).toBe(type);
    expect(response.body.toString()).toBe('<feed/>');
  });

  it('passes any other status of the app through as it is, 404 included, even with a stale copy', async () => {
    await storeStale(site, '/article/gone?app=404', '<h1>stale</h1>');
    const response = await send(site, 'GET', '/article/gone?app=404');
    expect(response.status).toBe(404);
    expect(response.body.toString()).toBe("the app's own error 404");
  });

  it.each([
    ['a POST', 'POST', ''],
    ['a request with Authorization', 'GET', 'Authorization: Basic dXNlcjpwYXNz\r\n'],
    ['a request with the bypass cookie', 'GET', 'Cookie: theme=dark; sessionid=abc\r\n'],
  ])("gives %s the app's own error untouched, never a stale copy", async (_what, method, headers) => {
    await storeStale(site, '/account?app=503', '<h1>a shared copy</h1>');
    const response = await send(site, method, '/account?app=503', headers, method === 'POST' ? 'a=1' : '');
    expect(response.status).toBe(503);
    expect(response.headers['x-cache']).toBe('MISS');
    expect(response.headers['cache-control']).toBeUndefined();
    expect(response.body.toString()).toBe("the app's own error 503");
  });

  it('serves hits with the hitHeaders, quotes and backslashes intact, and never adds them to what the app sends', async () => {
    await store(site, keyOf('/article/hit', site.config), gzipSync('<h1>hit</h1>'), GZIP_FLAG);
    const hit = await send(site, 'GET', '/article/hit');
    expect(hit.headers['x-cache']).toBe('HIT');
    expectHitHeaders(hit);
    expect(hit.body.toString()).toBe('<h1>hit</h1>');
    const typedHit = '/api/hit';
    await store(site, keyOf(typedHit, site.config), gzipSync('{}'), GZIP_FLAG);
    expectHitHeaders(await send(site, 'GET', typedHit));
    const miss = await send(site, 'GET', '/article/rendered');
    expect(miss.headers['x-cache']).toBe('MISS');
    expect(miss.headers['cache-control']).toBeUndefined();
    expect(miss.headers['x-quoted']).toBeUndefined();
  });

  // Last: the app is stopped, then started again on its port.
  it('serves the stale copy while the app refuses connections, and 502 with the errorPage without one', async () => {
    await storeStale(site, '/article/down', '<h1>stale while down</h1>');
    await closeApp(site.app);
    try {
      const stale = await send(site, 'GET', '/article/down');
      expect(stale.status).toBe(200);
      expect(stale.headers['x-cache']).toBe('STALE');
      expect(stale.body.toString()).toBe('<h1>stale while down</h1>');
      const none = await send(site, 'GET', '/article/down-no-copy');
      expect(none.status).toBe(502);
      expect(none.body.toString()).toBe(ERROR_PAGE_HTML);
    } finally {
      site.app = await startApp(site.appPort);
    }
    expect((await send(site, 'GET', '/article/down')).headers['x-cache']).toBe('MISS');
  });
});

describe('with grace and no errorPage, when the app fails and no stale copy exists', () => {
  let site: Site;

  beforeAll(async () => {
    site = await startSite({ grace: 60, appTimeout: 1, gzip: false, hitHeaders: HIT_HEADERS }, 'lua');
  });

  afterAll(async () => {
    await site?.stop();
  });

  it.each(FAILURES)("sends a short page of nginx's with the status when the app %s", async (_what, how, status) => {
    const response = await send(site, 'GET', `/no-copy?app=${how}`);
    expect(response.status).toBe(status);
    expect(response.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(response.body.toString()).toContain(`<h1>${status}</h1>`);
    expect(response.headers['cache-control']).toBeUndefined();
  });

  it('serves a stale copy stored without gzip as it is', async () => {
    await storeStale(site, '/plain?app=500', '<h1>plain</h1>');
    const response = await send(site, 'GET', '/plain?app=500', 'Accept-Encoding: gzip\r\n');
    expect(response.status).toBe(200);
    expect(response.headers['content-encoding']).toBeUndefined();
    expect(response.headers['vary']).toBeUndefined();
    expect(response.body.toString()).toBe('<h1>plain</h1>');
  });
});

describe('with grace and an errorPage file that is missing', () => {
  let site: Site;

  beforeAll(async () => {
    site = await startSite({ grace: 60, appTimeout: 1, errorPage: 'missing.html' }, 'njs');
  });

  afterAll(async () => {
    await site?.stop();
  });

  it("sends the short page of nginx's, still with the status the app failed with", async () => {
    const response = await send(site, 'GET', '/no-copy?app=503');
    expect(response.status).toBe(503);
    expect(response.body.toString()).toContain('<h1>503</h1>');
  });
});

describe('without grace (0, the default)', () => {
  let site: Site;

  beforeAll(async () => {
    site = await startSite({ appTimeout: 1, hitHeaders: HIT_HEADERS, errorPage: 'error.html' });
  });

  afterAll(async () => {
    await site?.stop();
  });

  it.each(['500', '502', '503', '504'])("passes the app's own %s through, even where a stale copy is stored", async (status) => {
    await storeStale(site, `/p?app=${status}`, '<h1>stale</h1>');
    const response = await send(site, 'GET', `/p?app=${status}`);
    expect(response.status).toBe(Number(status));
    expect(response.headers['x-cache']).toBe('MISS');
    expect(response.body.toString()).toBe(`the app's own error ${status}`);
  });

  it('gives up on the app after appTimeout with 504', async () => {
    const started = Date.now();
    const response = await send(site, 'GET', '/p?app=sleep');
    const took = Date.now() - started;
    // The app answers 200 at 1.5 s: a 504 means nginx gave up first, and not before appTimeout (less
    // nginx's cached clock). The upper bound only catches a hang; load never comes near it.
    expect(response.status).toBe(504);
    expect(took).toBeGreaterThanOrEqual(900);
    expect(took).toBeLessThan(10_000);
    expect(response.headers['x-cache']).toBeUndefined();
  });

  it('serves hits with the hitHeaders', async () => {
    await store(site, keyOf('/hit', site.config), gzipSync('<p>hit</p>'), GZIP_FLAG);
    const response = await send(site, 'GET', '/hit');
    expect(response.headers['x-cache']).toBe('HIT');
    expectHitHeaders(response);
  });
});

// The stale key nginx computes with each md5 backend is the one the app writes under: every
// target of the parity corpus, the app failing, a stale copy stored under the app's stale key.
const UNUSUAL = { keyPrefix: 'blog;v2#%[x]|~&(1)!:/', scheme: 'http' } as const;
describe.each(['set_misc', 'lua', 'njs'] as const)('with md5 by %s, the stale key', (md5) => {
  let site: Site;

  beforeAll(async () => {
    // Three memcached servers: the stale copy is read from the server the ring picks for its own key.
    site = await startSite({ grace: 60, gzip: false, hosts: SITE_HOSTS, ...UNUSUAL }, md5, 3);
  });

  afterAll(async () => {
    await site?.stop();
  });

  it('nginx looks up is the stale key the app computes, for every target of the parity corpus', async () => {
    const cases = parityCorpus()
      .filter((c) => !nodeRefuses(c.target))
      .map((c, i) => ({ ...c, target: `${c.target.replace(/#.*$/, '')}${c.target.includes('?') ? '&' : '?'}app=503&case=${i}` }));
    expect(cases.length).toBeGreaterThanOrEqual(300);
    const stale = staleKeyConfig(site.config);
    for (const [i, c] of cases.entries()) {
      await store(site, requestKey({ url: c.target, headers: { host: c.host } }, stale), `<p>stale ${i}</p>`);
    }
    const failures: string[] = [];
    for (let start = 0; start < cases.length; start += 16) {
      await Promise.all(
        cases.slice(start, start + 16).map(async (c, offset) => {
          const response = await sendRaw(site.nginx.port, `GET ${c.target} HTTP/1.1\r\nHost: ${c.host}\r\nConnection: close\r\n\r\n`);
          if (response.status !== 200 || response.body.toString() !== `<p>stale ${start + offset}</p>`) {
            failures.push(`${JSON.stringify(c)}: ${response.status} ${response.body.toString().slice(0, 80)}`);
          }
        }),
      );
    }
    expect(failures).toEqual([]);
  });
});
