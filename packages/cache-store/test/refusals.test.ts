import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { OutgoingHttpHeaders } from 'node:http';
import { gzipSync } from 'node:zlib';
import { cacheKey } from '@sitecache/cache-key';
import { freePort, memcachedGet } from '@sitecache/test-services';
import { pageCache, type PageCacheMiddleware, type SkipReason } from '../src/index.js';
import { eventually, HOST, listen, startSite, STEADY, type Site } from './site.js';

interface Row {
  /** The request's method and extra headers. */
  method?: string;
  request?: Record<string, string>;
  /** config.hitHeaders of the middleware for that page, when the page sends headers of its own. */
  hitHeaders?: Record<string, string>;
  /** The app's status, headers and body for that page. */
  status?: number;
  headers?: OutgoingHttpHeaders;
  body?: string | Buffer;
}

const HTML = { 'Content-Type': 'text/html; charset=utf-8' };
const GUARD = 64 * 1024;

// Each row is one reason a page must not be stored. Through real nginx: the page is not stored,
// the reason is counted, and a second identical request still reaches the app.
const refusals: [string, SkipReason, Row][] = [
  ['a POST', 'method', { method: 'POST' }],
  ['a HEAD (nginx serves HEAD from the cache, but never stores it)', 'method', { method: 'HEAD' }],
  ['a request with Authorization', 'authorization', { request: { Authorization: 'Bearer token' } }],
  ['a request with a bypass cookie among others', 'bypass-cookie', { request: { Cookie: 'theme=dark; sessionid=abc' } }],
  ['status 404', 'status', { status: 404 }],
  ['status 500', 'status', { status: 500 }],
  ['a 301 redirect', 'status', { status: 301, headers: { ...HTML, Location: '/elsewhere' } }],
  ['Set-Cookie', 'set-cookie', { headers: { ...HTML, 'Set-Cookie': 'cart=1; Path=/' } }],
  ['Cache-Control: private', 'private', { headers: { ...HTML, 'Cache-Control': 'private' } }],
  ['Cache-Control: PRIVATE in capitals with max-age', 'private', { headers: { ...HTML, 'Cache-Control': 'max-age=600, PRIVATE' } }],
  ['the qualified private="Set-Cookie"', 'private', { headers: { ...HTML, 'Cache-Control': 'public, private="Set-Cookie", max-age=60' } }],
  ['Cache-Control: no-store', 'no-store', { headers: { ...HTML, 'Cache-Control': 'no-store' } }],
  ['No-Store in a second Cache-Control header', 'no-store', { headers: { ...HTML, 'Cache-Control': ['public, max-age=60', 'No-Store'] } }],
  ['Cache-Control: no-cache', 'no-cache', { headers: { ...HTML, 'Cache-Control': 'no-cache' } }],
  ['the qualified no-cache="Set-Cookie"', 'no-cache', { headers: { ...HTML, 'Cache-Control': 'no-cache="Set-Cookie", max-age=60' } }],
  ['max-age=0', 'zero-max-age', { headers: { ...HTML, 'Cache-Control': 'public, max-age=0' } }],
  ['s-maxage=0 beside max-age=600', 'zero-max-age', { headers: { ...HTML, 'Cache-Control': 'max-age=600, s-maxage=0' } }],
  ['a max-age that is not a number', 'zero-max-age', { headers: { ...HTML, 'Cache-Control': 'max-age=soon' } }],
  ['max-age repeated with a 0', 'zero-max-age', { headers: { ...HTML, 'Cache-Control': 'max-age=600, max-age=0' } }],
  ['an Expires in the past and no max-age', 'expired', { headers: { ...HTML, Expires: 'Thu, 01 Jan 1970 00:00:00 GMT' } }],
  ['Vary: Cookie', 'vary', { headers: { ...HTML, Vary: 'Cookie' } }],
  ['Vary: *', 'vary', { headers: { ...HTML, Vary: '*' } }],
  ['Vary on Accept-Encoding and Accept-Language', 'vary', { headers: { ...HTML, Vary: 'Accept-Encoding,  accept-language' } }],
  ['JSON', 'content-type', { headers: { 'Content-Type': 'application/json' }, body: '{"a":1}' }],
  ['XML', 'content-type', { headers: { 'Content-Type': 'application/xml' }, body: '<a/>' }],
  ['HTML in Latin-1', 'content-type', { headers: { 'Content-Type': 'text/html; charset=iso-8859-1' } }],
  ['no Content-Type at all', 'content-type', { headers: {} }],
  ['a header hits would not carry', 'headers', { headers: { ...HTML, 'X-Frame-Options': 'DENY' } }],
  ['a Cache-Control that config.hitHeaders does not name', 'headers', { headers: { ...HTML, 'Cache-Control': 'public, max-age=60' } }],
  ['a header whose value differs from hitHeaders', 'headers', { headers: { ...HTML, 'X-Frame-Options': 'DENY' }, hitHeaders: { 'X-Frame-Options': 'SAMEORIGIN' } }],
  ['a body the app already gzipped', 'content-encoding', { headers: { ...HTML, 'Content-Encoding': 'gzip' }, body: gzipSync('<p>zipped</p>') }],
  ['a page past the size guard', 'too-large', { body: `<p>${'x'.repeat(GUARD)}</p>` }],
  ['a route that opts out', 'route', {}],
];

// Pages the policy must store (a refusal here would be a false alarm): the second request is a hit.
const accepted: [string, Row][] = [
  ['Cache-Control: public, max-age=60', { headers: { ...HTML, 'Cache-Control': 'public, max-age=60' }, hitHeaders: { 'Cache-Control': 'public, max-age=60' } }],
  ['Vary: Accept-Encoding only', { headers: { ...HTML, Vary: ' accept-encoding ,' } }],
  ['text/html with no charset', { headers: { 'Content-Type': 'text/html' } }],
  ['TEXT/HTML; Charset="UTF-8"', { headers: { 'Content-Type': 'TEXT/HTML; Charset="UTF-8"' } }],
  [
    'max-age=0 with s-maxage=60 (s-maxage governs a shared cache)',
    { headers: { ...HTML, 'Cache-Control': 'max-age=0, s-maxage=60' }, hitHeaders: { 'Cache-Control': 'max-age=0, s-maxage=60' } },
  ],
  ['an Expires in the future', { headers: { ...HTML, Expires: new Date(Date.now() + 3_600_000).toUTCString() } }],
  [
    '"no-cache" only inside an unrelated quoted value',
    { headers: { ...HTML, 'Cache-Control': 'public, ext="no-cache, private"' }, hitHeaders: { 'Cache-Control': 'public, ext="no-cache, private"' } },
  ],
  ['headers of its own, each in hitHeaders with the same value', { headers: { ...HTML, 'X-Frame-Options': 'DENY', 'X-Content-Type-Options': 'nosniff' }, hitHeaders: { 'x-content-type-options': 'nosniff', 'X-Frame-Options': 'DENY' } }],
  ['per-response headers (ETag, Last-Modified, X-Request-Id, Server-Timing, X-Powered-By)', { headers: { ...HTML, ETag: '"v1"', 'Last-Modified': new Date().toUTCString(), 'X-Request-Id': 'r1', 'Server-Timing': 'db;dur=1', 'X-Powered-By': 'Express' } }],
  ['a cookie that is not a bypass cookie', { request: { Cookie: 'theme=dark; xsessionid=1' } }],
];

describe('refusals through real nginx', () => {
  let site: Site;
  let cache: PageCacheMiddleware;
  /** The middleware of each page whose row names hitHeaders: the same site, with those hit headers. */
  const ownCaches = new Map<string, PageCacheMiddleware>();
  let app: Awaited<ReturnType<typeof listen>>;
  const warnings: string[] = [];
  const logger = { warn: (message: string) => warnings.push(message) };
  const renders = new Map<string, number>();
  const rows = new Map<string, Row>();
  [...refusals.map(([, , row], i) => [`/refused/${i}`, row] as const), ...accepted.map(([, row], i) => [`/accepted/${i}`, row] as const)].forEach(
    ([path, row]) => rows.set(path, row),
  );
  const optedOut = `/refused/${refusals.findIndex(([, reason]) => reason === 'route')}`;

  beforeAll(async () => {
    const appPort = await freePort();
    site = await startSite({ memcachedCount: 1, appPort });
    cache = pageCache(site.config, {
      ...STEADY,
      logger,
      maxItemBytes: GUARD,
      route: (req) => (req.url === optedOut ? false : undefined),
    });
    for (const [path, row] of rows) {
      if (row.hitHeaders) ownCaches.set(path, pageCache({ ...site.config, hitHeaders: row.hitHeaders }, { ...STEADY, logger }));
    }
    app = await listen(
      (req, res) =>
        (ownCaches.get(req.url ?? '') ?? cache)(req, res, () => {
          const path = req.url ?? '';
          renders.set(path, (renders.get(path) ?? 0) + 1);
          const row = rows.get(path) ?? {};
          res.writeHead(row.status ?? 200, row.headers ?? HTML);
          res.end(row.body ?? `<p>page ${path}</p>`);
        }),
      appPort,
    );
  });
  afterAll(async () => {
    await site?.stop();
    await app?.stop();
    await cache?.close();
    for (const own of ownCaches.values()) await own.close();
  });

  const stored = (path: string) => memcachedGet(site.config.memcached[0] as string, cacheKey(`https://${HOST}${path}`));

  it.each(refusals.map(([name, reason, row], i) => [name, reason, row, i] as const))(
    'does not store %s (reason "%s"), and the next request reaches the app again',
    async (_name, reason, row, i) => {
      const path = `/refused/${i}`;
      const counted = ownCaches.get(path) ?? cache;
      const before = counted.metrics.snapshot().skipped[reason];
      const warned = warnings.length;
      const first = await site.request(path, row.request, row.method);
      const second = await site.request(path, row.request, row.method);
      for (const response of [first, second]) {
        expect(response.status).toBe(row.status ?? 200);
        expect(response.headers['x-cache']).toBe('MISS');
      }
      expect(renders.get(path)).toBe(2);
      await eventually(() => counted.metrics.snapshot().skipped[reason] === before + 2, `two "${reason}" refusals`);
      if (reason === 'headers') {
        // The header at fault is named, once: the warning is per header name per interval.
        const [name = '', value] = Object.entries(row.headers ?? {}).find(([header]) => header !== 'Content-Type') ?? [];
        expect(warnings.slice(warned)).toEqual([expect.stringContaining(`header ${name.toLowerCase()}: ${String(value)} are not stored`)]);
      }
      expect(await stored(path)).toBeNull();
    },
  );

  it.each(accepted.map(([name, row], i) => [name, row, i] as const))('stores %s, so nginx serves the next request', async (_name, row, i) => {
    const path = `/accepted/${i}`;
    const first = await site.request(path, row.request);
    expect(first.headers['x-cache']).toBe('MISS');
    await eventually(async () => (await stored(path)) !== null, 'the page to be stored');
    const second = await site.request(path, row.request);
    expect(second.headers['x-cache']).toBe('HIT');
    expect(second.body.toString()).toBe(`<p>page ${path}</p>`);
    expect(renders.get(path)).toBe(1);
  });
});
