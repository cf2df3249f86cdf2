import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort, makeTempDir, type TempDir } from '@sitecache/test-services';
import express from 'express';
import helmet from 'helmet';
import { pageCache, type PageCacheMiddleware } from '../src/index.js';
import { eventually, headersWithout, listen, sitecache, startSite, STEADY, type Site } from './site.js';

const CACHE_CONTROL = 'public, max-age=60';
// What differs from one response to the next, or that nginx sets on hits itself.
const PER_RESPONSE = ['date', 'content-length', 'connection', 'keep-alive', 'etag', 'x-powered-by', 'content-type', 'transfer-encoding', 'x-cache'];

/** An Express app with helmet's defaults and a Cache-Control, as the user runs it. */
function helmetApp(cache: PageCacheMiddleware): express.Express {
  const app = express();
  app.use(cache);
  app.use(helmet());
  app.get('/{*page}', (req, res) => {
    res.set('Cache-Control', CACHE_CONTROL);
    res.type('html').send(`<p>${req.originalUrl}</p>`);
  });
  return app;
}

/** The headers helmet's defaults set, asked of helmet itself: the hitHeaders a site using it needs. */
async function helmetHeaders(): Promise<Record<string, string>> {
  const app = express();
  app.use(helmet());
  app.get('/', (_req, res) => res.send('x'));
  const server = await listen(app);
  try {
    const response = await fetch(`http://127.0.0.1:${server.port}/`);
    const headers = headersWithout(Object.fromEntries(response.headers), PER_RESPONSE);
    expect(Object.keys(headers).length).toBeGreaterThan(5);
    return headers;
  } finally {
    await server.stop();
  }
}

describe('hits carry the headers of the page (config.hitHeaders), through nginx', () => {
  let dir: TempDir;
  let helmeted: Record<string, string>;
  const running: { stop(): Promise<void> }[] = [];

  /** A site whose nginx adds `hitHeaders` to hits, the helmet app behind it, and its config file for the bin. */
  const site = async (hitHeaders: Record<string, string>, name: string) => {
    const appPort = await freePort();
    const started: Site = await startSite({ memcachedCount: 1, appPort, fields: { gzip: false, hitHeaders } });
    running.push(started);
    const warnings: string[] = [];
    const cache = pageCache(started.config, { ...STEADY, logIntervalMs: 60_000, logger: { warn: (m) => warnings.push(m) } });
    running.push({ stop: () => cache.close() });
    running.push(await listen(helmetApp(cache), appPort));
    const configFile = join(dir.path, `${name}.json`);
    await writeFile(configFile, JSON.stringify(started.config));
    return { site: started, cache, warnings, configFile, url: (path: string) => `http://127.0.0.1:${started.nginx.port}${path}` };
  };

  beforeAll(async () => {
    dir = await makeTempDir('sitecache-hit-headers');
    helmeted = await helmetHeaders();
  });
  afterAll(async () => {
    for (const s of running.reverse()) await s.stop();
    await dir?.remove();
  });

  it('stores a helmet page whose headers are all in hitHeaders; the hit carries the same headers, and check finds no difference', async () => {
    const { site: s, cache, configFile, url } = await site({ ...helmeted, 'Cache-Control': CACHE_CONTROL }, 'complete');
    const miss = await s.request('/article');
    expect(miss.headers['x-cache']).toBe('MISS');
    await eventually(() => cache.metrics.snapshot().stored === 1, 'the page to be stored');
    const hit = await s.request('/article');
    expect(hit.headers['x-cache']).toBe('HIT');
    expect(headersWithout(hit.headers, [...PER_RESPONSE, 'accept-ranges', 'server'])).toEqual(headersWithout(miss.headers, [...PER_RESPONSE, 'server']));

    const check = await sitecache(['check', '--config', configFile, url('/checked')]);
    expect(check.stdout).toContain('no differences');
    expect(check.code).toBe(0);
    // Cached now: there is no miss left to compare.
    const again = await sitecache(['check', '--config', configFile, url('/checked')]);
    expect([again.code, again.stdout]).toEqual([1, expect.stringContaining('the first response was HIT, not a miss')]);
  });

  it('never stores a page with a header hitHeaders lacks (reason "headers"), logs its name once, and check names it', async () => {
    expect(Object.keys(helmeted)).toContain('x-frame-options');
    const lacking = headersWithout({ ...helmeted, 'Cache-Control': CACHE_CONTROL }, ['x-frame-options']);
    const { site: s, cache, warnings, configFile, url } = await site(lacking, 'lacking');
    for (let i = 0; i < 3; i++) expect((await s.request('/framed')).headers['x-cache']).toBe('MISS');
    await eventually(() => cache.metrics.snapshot().skipped.headers === 3, 'three "headers" refusals');
    expect(cache.metrics.snapshot().stored).toBe(0);
    expect(warnings).toEqual([expect.stringMatching(/x-frame-options: SAMEORIGIN .*not in config\.hitHeaders/)]);

    const check = await sitecache(['check', '--config', configFile, url('/framed')]);
    expect(check.code).toBe(1);
    expect(check.stdout).toMatch(/not stored\treason: headers/);
    expect(check.stdout).toMatch(/header\tx-frame-options: SAMEORIGIN\tnot in config\.hitHeaders/);
  });

  it('stores a page that lacks a hit header (hits may add headers), and check shows the header only the hit carries', async () => {
    const { configFile, url } = await site({ ...helmeted, 'Cache-Control': CACHE_CONTROL, 'X-Served-By': 'cache' }, 'extra');
    const check = await sitecache(['check', '--config', configFile, url('/extra')]);
    expect(check.code).toBe(1);
    expect(check.stdout).toContain('second\t200\tX-Cache: HIT');
    expect(check.stdout).toContain('differs\tx-served-by\tmiss: (none)\thit: cache');
  });

  it('keeps storing an Express page with no headers of its own and no hitHeaders (X-Powered-By, ETag, Content-Type, Content-Length)', async () => {
    const appPort = await freePort();
    const plain: Site = await startSite({ memcachedCount: 1, appPort, fields: { gzip: false } });
    running.push(plain);
    const cache = pageCache(plain.config, STEADY);
    running.push({ stop: () => cache.close() });
    const app = express();
    app.use(cache);
    app.get('/plain', (_req, res) => res.send('<p>plain</p>'));
    running.push(await listen(app, appPort));
    const miss = await plain.request('/plain');
    expect(miss.headers).toMatchObject({ 'x-cache': 'MISS', 'x-powered-by': 'Express', etag: expect.any(String) });
    await eventually(() => cache.metrics.snapshot().stored === 1, 'the page to be stored');
    expect((await plain.request('/plain')).headers['x-cache']).toBe('HIT');
  });
});
