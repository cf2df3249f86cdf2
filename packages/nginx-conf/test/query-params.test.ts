import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { requestKey } from '@sitecache/cache-key';
import { parseConfig, type SitecacheConfig, type SitecacheConfigInput } from '@sitecache/config';
import { staleKeyConfig } from '@sitecache/nginx-model';
import { renderNginxConf, renderNjsKeyModule, type RenderOptions } from '@sitecache/nginx-conf';
import { memcachedSet, sendRaw, startMemcached, startNginx, type MemcachedServer, type NginxServer, type RawResponse } from '@sitecache/test-services';

// ignoreParams and missRate through real nginx, memcached and an app. The app answers the status
// a request's `app` parameter names (500), else 200 with the target it was asked for.
const HOST = 'www.example.com';

interface Site {
  config: SitecacheConfig;
  memcached: MemcachedServer;
  nginx: NginxServer;
  app: Server;
  rendered: string[];
  stop(): Promise<void>;
}

async function startSite(fields: Partial<SitecacheConfigInput>, options: RenderOptions = {}): Promise<Site> {
  const memcached = await startMemcached();
  const rendered: string[] = [];
  const app = createServer((req, res) => {
    rendered.push(req.url ?? '');
    const status = Number(/[?&]app=(\d+)/.exec(req.url ?? '')?.[1] ?? 200);
    res.statusCode = status;
    res.setHeader('Content-Type', 'text/html; charset=utf-8');
    res.end(`rendered by the app: ${req.url}`);
  });
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  let config = undefined as unknown as SitecacheConfig;
  const nginx = await startNginx(async ({ port, prefix }) => {
    config = parseConfig({
      hosts: [HOST],
      listen: `127.0.0.1:${port}`,
      memcached: [memcached.address],
      app: [`127.0.0.1:${(app.address() as AddressInfo).port}`],
      gzip: false,
      ...fields,
    });
    const njsModulePath = join(prefix, 'sitecache-key.js');
    await writeFile(njsModulePath, renderNjsKeyModule(config));
    return renderNginxConf(config, { ...options, standalone: true, prefix, njsModulePath, workerProcesses: 1 });
  });
  return {
    config,
    memcached,
    nginx,
    app,
    rendered,
    async stop() {
      await nginx.stop();
      await memcached.stop();
      app.closeAllConnections();
      await new Promise((resolve) => app.close(resolve));
    },
  };
}

function get(site: Site, target: string, headers = ''): Promise<RawResponse> {
  return sendRaw(site.nginx.port, `GET ${target} HTTP/1.1\r\nHost: ${HOST}\r\n${headers}Connection: close\r\n\r\n`);
}

const keyOf = (target: string, config: SitecacheConfig): string => requestKey({ url: target, headers: { host: HOST } }, config);

const KEY_BACKENDS: readonly (readonly [string, RenderOptions])[] = [
  ['set_misc and lua', { md5: 'set_misc', normalize: 'lua' }],
  ['set_misc and njs', { md5: 'set_misc', normalize: 'njs' }],
  ['lua', { md5: 'lua' }],
  ['njs', { md5: 'njs' }],
];

describe.each(KEY_BACKENDS)('with the key by %s and the default ignoreParams', (_how, options) => {
  let site: Site;
  beforeAll(async () => {
    site = await startSite({ grace: 60 }, options);
  });
  afterAll(async () => {
    await site?.stop();
  });

  it('serves the page stored by a plain visit to a visitor who came with utm_source and fbclid', async () => {
    await memcachedSet(site.memcached.address, keyOf('/article/x/', site.config), '<p>the article</p>');
    const response = await get(site, '/article/x/?utm_source=x&fbclid=y');
    expect(response.headers['x-cache']).toBe('HIT');
    expect(response.body.toString()).toBe('<p>the article</p>');
  });

  it('keeps the other parameters in the key, in their order', async () => {
    await memcachedSet(site.memcached.address, keyOf('/list?page=2&sort=new', site.config), '<p>page 2</p>');
    expect((await get(site, '/list?utm_medium=social&page=2&gclid=1&sort=new')).body.toString()).toBe('<p>page 2</p>');
    expect((await get(site, '/list?sort=new&page=2&utm_medium=social')).headers['x-cache']).toBeUndefined();
  });

  it("serves the page's stale copy when the app fails for a visitor with tracking parameters", async () => {
    await memcachedSet(site.memcached.address, keyOf('/failing?app=500', staleKeyConfig(site.config)), '<p>stale</p>');
    const response = await get(site, '/failing?utm_source=x&app=500&_ga=1');
    expect(response.status).toBe(200);
    expect(response.headers['x-cache']).toBe('STALE');
    expect(response.body.toString()).toBe('<p>stale</p>');
  });

  it('sends the app the raw request URI, tracking parameters included', async () => {
    const response = await get(site, '/never-stored?b=1&utm_source=x');
    expect(response.body.toString()).toBe('rendered by the app: /never-stored?b=1&utm_source=x');
  });
});

describe('missRate', () => {
  let site: Site;
  beforeAll(async () => {
    site = await startSite({ missRate: 2 });
  });
  afterAll(async () => {
    await site?.stop();
  });

  it('answers 429 to one address past its misses per second, while hits and bypasses go on', async () => {
    await memcachedSet(site.memcached.address, keyOf('/stored', site.config), '<p>stored</p>');
    const statuses: number[] = [];
    for (let i = 0; i < 12; i++) statuses.push((await get(site, `/?r=${i}`)).status);
    // One, plus a burst of one second's worth, passes at once; the rest of the second is refused.
    expect(statuses.slice(0, 3)).toEqual([200, 200, 200]);
    expect(statuses.filter((status) => status === 429).length).toBeGreaterThanOrEqual(6);
    for (let i = 0; i < 5; i++) {
      const hit = await get(site, '/stored');
      expect([hit.status, hit.headers['x-cache']]).toEqual([200, 'HIT']);
      expect((await get(site, `/?r=bypass${i}`, 'Authorization: Bearer x\r\n')).status).toBe(200);
    }
  });
});

describe('missRate with grace', () => {
  let site: Site;
  beforeAll(async () => {
    site = await startSite({ missRate: 1, grace: 60 });
  });
  afterAll(async () => {
    await site?.stop();
  });

  it("serves a page's stale copy past the limit, and 429 where there is none", async () => {
    await memcachedSet(site.memcached.address, keyOf('/has-stale', staleKeyConfig(site.config)), '<p>stale</p>');
    for (let i = 0; i < 4; i++) await get(site, `/?r=${i}`);
    const stale = await get(site, '/has-stale?utm_source=x');
    expect([stale.status, stale.headers['x-cache'], stale.body.toString()]).toEqual([200, 'STALE', '<p>stale</p>']);
    const none = await get(site, '/no-stale');
    expect(none.status).toBe(429);
    expect(none.body.toString()).toContain('<h1>429</h1>');
  });
});
