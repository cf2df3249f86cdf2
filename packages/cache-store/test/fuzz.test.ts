import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { sendRaw, startMemcached, type MemcachedServer, type RawResponse } from '@sitecache/test-services';
import { pageCache, type PageCacheMiddleware } from '../src/index.js';
import { headersWithout, HOST, listen, STEADY, testConfig, type Handler } from './site.js';

// The app echoes what it was asked, so a middleware that changed the request would show.
const app: Handler = (req, res) => {
  res.setHeader('Content-Type', 'text/html; charset=utf-8');
  res.end(`<p>${req.method} ${JSON.stringify(req.url)} ${JSON.stringify(req.headers.host)}</p>`);
};

/**
 * Characters of request targets: those that keys and parsers trip over, any printable ASCII, and
 * now and then a byte Node's parser refuses (raw UTF-8, controls), which both servers must refuse alike.
 */
const targetChar = fc.oneof(
  { arbitrary: fc.constantFrom('/', '?', '&', '=', '%', '#', '.', '..', '//', '%2F', '%00', '%zz', '%C3%A9', '+', ';', '@', ':', '~', '*', '[', ']', '\\', '"', "'", '<', '{'), weight: 6 },
  { arbitrary: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)), weight: 12 },
  { arbitrary: fc.integer({ min: 0x80, max: 0xff }).map((c) => String.fromCharCode(c)), weight: 1 },
  { arbitrary: fc.constantFrom('\t', ' ', '\x00', '\x7f'), weight: 1 },
);
const path = fc.array(targetChar, { maxLength: 40 }).map((chars) => `/${chars.join('')}`);

const hostChar = fc.oneof(
  fc.constantFrom('a', 'Z', '0', '-', '.', '..', ':', '[', ']', '@', '/', '_', '*', '%', ' ', '\t', '\x00', '\x7f', '\u00e9', '\u00ff'),
  fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)),
);
const host = fc.oneof(
  // The site's own host in the spellings nginx folds into it.
  fc.tuple(fc.constantFrom(HOST, 'WWW.Example.Test', 'www.EXAMPLE.test.'), fc.constantFrom('', ':80', ':8080', ':', ':99999')).map(([h, p]) => h + p),
  fc.constantFrom('[::1]', '[::1]:8080', '[::1', '::1', '127.0.0.1', '', '.', '..', 'a..b', 'example.test:x', 'evil.test'),
  fc.array(hostChar, { maxLength: 30 }).map((chars) => chars.join('')),
);
const target = fc.oneof(
  { arbitrary: path, weight: 4 },
  { arbitrary: fc.tuple(fc.constantFrom('http', 'https', 'HTTP', 'ftp', 'h2'), host, path).map(([s, h, p]) => `${s}://${h}${p}`), weight: 1 },
  { arbitrary: fc.constantFrom('*', 'no-slash', '', '?', 'http://', 'http:///x', '//x', '/%'), weight: 1 },
);
const request = fc.record({
  method: fc.constantFrom('GET', 'GET', 'HEAD', 'POST'),
  target,
  host: fc.option(host, { nil: undefined }),
  cookie: fc.option(fc.constantFrom('sessionid=1', 'a=b', 'sessionid', ';;sessionid=;'), { nil: undefined }),
});

type Outcome = { status: number; headers: Record<string, string>; body: string } | { failed: string };

const outcome = (response: Promise<RawResponse>): Promise<Outcome> =>
  response.then(
    (r) => ({ status: r.status, headers: headersWithout(r.headers, ['date', 'x-cache']), body: r.body.toString('latin1') }),
    (error: Error) => ({ failed: error.message.replace(/\d+ ms/, '') }),
  );

describe('pageCache under fuzzed request targets and Host headers', () => {
  let memcached: MemcachedServer;
  let cache: PageCacheMiddleware;
  let withCache: Awaited<ReturnType<typeof listen>>;
  let without: Awaited<ReturnType<typeof listen>>;
  const escaped: unknown[] = [];
  const onEscape = (error: unknown): void => {
    escaped.push(error);
  };

  beforeAll(async () => {
    process.on('uncaughtException', onEscape);
    process.on('unhandledRejection', onEscape);
    memcached = await startMemcached();
    // Without single flight: the app echoes the Host header as sent, and a request that found the
    // render lock of an earlier spelling of the same page (its store still in flight) would answer
    // with that page, rightly for a cache but not the echo this property compares.
    cache = pageCache(testConfig([memcached.address], { hosts: [HOST, '*.wild.test', '[::1]'] }), { ...STEADY, singleFlight: false });
    withCache = await listen((req, res) => cache(req, res, () => app(req, res)));
    without = await listen(app);
  });
  afterAll(async () => {
    process.off('uncaughtException', onEscape);
    process.off('unhandledRejection', onEscape);
    await withCache?.stop();
    await without?.stop();
    await cache?.close();
    await memcached?.stop();
  });

  it('lets no exception escape and answers exactly as the app alone would', async () => {
    await fc.assert(
      fc.asyncProperty(request, async ({ method, target, host, cookie }) => {
        const head = `${method} ${target.replace(/[\r\n]/g, '')} HTTP/1.1\r\n`;
        const headers = [host === undefined ? '' : `Host: ${host.replace(/[\r\n]/g, '')}\r\n`, cookie ? `Cookie: ${cookie}\r\n` : ''];
        const bytes = Buffer.from(`${head}${headers.join('')}Connection: close\r\n\r\n`, 'latin1');
        const [a, b] = await Promise.all([outcome(sendRaw(withCache.port, bytes, 5_000)), outcome(sendRaw(without.port, bytes, 5_000))]);
        expect(a).toEqual(b);
      }),
      { numRuns: 600 },
    );
    expect(escaped).toEqual([]);
    const { skipped, stored } = cache.metrics.snapshot();
    // The fuzz reached every branch it should: stored pages, and refusals for each kind of bad input.
    expect(stored + skipped['server-down'] + skipped.busy).toBeGreaterThan(0);
    expect(skipped['invalid-request']).toBeGreaterThan(0);
    expect(skipped['unknown-host']).toBeGreaterThan(0);
    expect(skipped['bypass-cookie']).toBeGreaterThan(0);
  });
});
