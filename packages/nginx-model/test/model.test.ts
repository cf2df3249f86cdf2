import { createHash } from 'node:crypto';
import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import {
  bypassCookiePattern,
  createHashRing,
  DEFAULT_IGNORE_PARAMS,
  escapeRegex,
  ignoredParamsPattern,
  isQueryParamPattern,
  keyRequestUri,
  uncachedParam,
  HTML_TYPE,
  InvalidServerListError,
  isNginxLiteral,
  locationsInMatchOrder,
  memcachedExptime,
  MAX_RELATIVE_TTL,
  nginxRequest,
  nginxUri,
  servedContentType,
} from '@sitecache/nginx-model';

// The rules here are checked against real nginx where they matter, in nginx-conf's parity test and
// cache-store's ring and content-type tests; these are the cases that read as the rule itself.

const HOST = 'www.example.test';
const pageKey = (url: string): string => createHash('md5').update(url).digest('hex');
const contentTypes = { '= /feed.xml': 'application/rss+xml; charset=utf-8', '/api/v1/': 'application/json' };

describe('$host and $request_uri of a request', () => {
  it('takes the Host header for an origin-form target and the request line for an absolute one', () => {
    expect(nginxRequest({ url: '/a?b', headers: { host: 'WWW.Example.test.:8080' } })).toEqual({ host: HOST, requestUri: '/a?b' });
    expect(nginxRequest({ url: 'http://Other.test:81/x?y', headers: { host: HOST } })).toEqual({ host: 'other.test', requestUri: '/x?y' });
    expect(nginxRequest({ url: 'http://other.test', headers: {} })).toEqual({ host: 'other.test', requestUri: '/' });
    expect(nginxRequest({ url: 'http://other.test?q', headers: {} })).toEqual({ host: 'other.test', requestUri: '?q' });
  });

  it('refuses a missing host and a target that is neither form, naming it', () => {
    expect(() => nginxRequest({ url: '/', headers: {} })).toThrow(/no Host header/);
    expect(() => nginxRequest({ url: '*', headers: { host: HOST } })).toThrow(/Invalid URL "\*"/);
  });
});

describe('$uri, the path nginx matches locations against', () => {
  it.each([
    ['/a/b?x=1', '/a/b'],
    ['/a//b/', '/a/b/'],
    ['/a/./b/../c', '/a/c'],
    ['/a/b/..', '/a/'],
    ['/%61pi/v1/x', '/api/v1/x'],
    ['/api%2Fv1/x', '/api/v1/x'],
    ['http://www.example.test/api/v1?x', '/api/v1'],
    ['http://www.example.test?x', '/'],
    ['/', '/'],
  ])('%s is matched as %s', (target, uri) => {
    expect(nginxUri(target)).toBe(uri);
  });

  it.each(['/%zz', '/../etc', '/a/../../b'])('%s is refused, as nginx refuses it', (target) => {
    expect(nginxUri(target)).toBeUndefined();
  });

  it('routes exact locations first, then the longest prefix, else HTML', () => {
    const config = { ...contentTypes, '/api/': 'application/xml', '= /api/v1/': 'text/plain' };
    expect(servedContentType(config, '/feed.xml')).toBe('application/rss+xml; charset=utf-8');
    expect(servedContentType(config, '/feed.xml/')).toBe(HTML_TYPE);
    expect(servedContentType(config, '/api/v1/items?page=2')).toBe('application/json');
    expect(servedContentType(config, '/api/v1/')).toBe('text/plain');
    expect(servedContentType(config, '/api/v2/items')).toBe('application/xml');
    expect(servedContentType(config, '/API/v1/items')).toBe(HTML_TYPE);
    expect(servedContentType(config, '/x/../api/v1/items')).toBe('application/json');
  });

  it('lists the locations in the order nginx tries them: exact ones, then prefixes longest first, / last', () => {
    const config = { '/api/': 'application/xml', ...contentTypes, '= /api/v1/': 'text/plain' };
    expect(locationsInMatchOrder(config).map(({ location }) => location)).toEqual(['= /feed.xml', '= /api/v1/', '/api/v1/', '/api/', '/']);
    expect(locationsInMatchOrder({})).toEqual([{ location: '/', contentType: HTML_TYPE }]);
  });
});

describe('the bypass cookie pattern, shared by the nginx map and the app', () => {
  it('matches a named cookie anywhere in the header, and nothing else', () => {
    const pattern = new RegExp(bypassCookiePattern(['sessionid', 'wp.user']) as string);
    expect(pattern.test('sessionid=1')).toBe(true);
    expect(pattern.test('a=1; wp.user=2')).toBe(true);
    expect(pattern.test('a=1;sessionid=')).toBe(true);
    expect(pattern.test('xsessionid=1')).toBe(false);
    expect(pattern.test('wpxuser=1')).toBe(false);
    expect(pattern.test('a=sessionid=1')).toBe(false);
  });

  it('is undefined for no names: nobody is bypassed for a cookie', () => {
    expect(bypassCookiePattern([])).toBeUndefined();
  });
});

describe('what nginx holds literally in the key expression', () => {
  it.each(['', 'site1:', 'a-b_c.d/e', '~!#%&()*+,;<=>?@[]^`|'])('%j is literal', (text) => {
    expect(isNginxLiteral(text)).toBe(true);
  });

  it.each(['a b', '$host', '${x}', 'a"b', "a'b", 'a\\b', 'a{', 'a}', 'caf\u00e9', 'a\tb'])('%j is not', (text) => {
    expect(isNginxLiteral(text)).toBe(false);
  });
});

describe('escapeRegex, for the sources nginx and the app both read', () => {
  it('makes any text match itself alone', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), fc.string({ unit: 'binary' }), (text, other) => {
        const pattern = new RegExp(`^${escapeRegex(text)}$`);
        expect(pattern.test(text)).toBe(true);
        expect(pattern.test(other)).toBe(other === text);
      }),
    );
  });

  it('escapes every metacharacter with a backslash and leaves the rest', () => {
    expect(escapeRegex('a.b*c+d?e^f$g(h)i[j]k{l}m|n\\o-p/q')).toBe('a\\.b\\*c\\+d\\?e\\^f\\$g\\(h\\)i\\[j\\]k\\{l\\}m\\|n\\\\o-p/q');
  });
});

describe('memcached expiry', () => {
  it('sends a TTL up to 30 days as relative seconds and a longer one as a Unix time', () => {
    const now = Date.UTC(2026, 11, 3);
    expect(memcachedExptime(60, now)).toBe(60);
    expect(memcachedExptime(MAX_RELATIVE_TTL, now)).toBe(MAX_RELATIVE_TTL);
    expect(memcachedExptime(MAX_RELATIVE_TTL + 1, now)).toBe(now / 1000 + MAX_RELATIVE_TTL + 1);
  });
});

describe('createHashRing', () => {
  it('spreads keys over every server, each taking a fair share', () => {
    const ring = createHashRing(['127.0.0.1:11211', '127.0.0.1:11212', '127.0.0.1:11213']);
    const counts = new Map<string, number>();
    for (let i = 0; i < 30_000; i++) {
      const server = ring.serverFor(pageKey(`https://${HOST}/p/${i}`));
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
      const key = pageKey(`https://${HOST}/m/${i}`);
      const before = full.serverFor(key);
      if (before !== servers[3] && smaller.serverFor(key) !== before) moved++;
    }
    expect(moved).toBe(0);
  });

  it('hashes the server strings as written, so another spelling of the same server is another ring', () => {
    const keys = Array.from({ length: 200 }, (_, i) => pageKey(`https://${HOST}/s/${i}`));
    const a = createHashRing(['127.0.0.1:11211', '127.0.0.1:11212']);
    const b = createHashRing(['localhost:11211', '127.0.0.1:11212']);
    const differ = keys.filter((k) => (a.serverFor(k) === '127.0.0.1:11211') !== (b.serverFor(k) === 'localhost:11211'));
    expect(differ.length).toBeGreaterThan(0);
  });

  it('refuses an empty list and a repeated server, naming the list', () => {
    expect(() => createHashRing([])).toThrow(InvalidServerListError);
    expect(() => createHashRing(['a:1', 'a:1'])).toThrow(/\["a:1","a:1"\]: each server once/);
  });
});

describe('keyRequestUri, the request URI the key is built from', () => {
  const ignore = DEFAULT_IGNORE_PARAMS;

  it.each([
    ['/a?utm_source=x', '/a'],
    ['/a?b=1&utm_source=x&c=2', '/a?b=1&c=2'],
    ['/a?utm_source=x&b=1', '/a?b=1'],
    ['/a?b=1&fbclid=x', '/a?b=1'],
    ['/a?utm_source=x&utm_medium=y&fbclid=z', '/a'],
    ['/a?fbclid&b', '/a?b'],
    ['/a?fbclid=&b=', '/a?b='],
    ['/a?b=1&&fbclid=x', '/a?b=1&'],
    ['/a?&fbclid=x', '/a?'],
    ['/a?b=1&fbclid=1&b=1&fbclid=2', '/a?b=1&b=1'],
    ['/a?utm_=1', '/a'],
    ['/a?b=1#x&gclid=2', '/a?b=1#x'],
    ['/a?gclid=2#x', '/a'],
    ['?utm_source=x', ''],
  ])('%s is keyed as %s', (uri, keyed) => {
    expect(keyRequestUri(uri, ignore)).toBe(keyed);
  });

  it.each([
    '/a',
    '/a?',
    '/a??',
    '/a?b=1&&c',
    '/a?b=utm_source&c=fbclid',
    '/a?b=x%26utm_source%3D1',
    '/a?utm%5Fsource=x',
    '/a?UTM_SOURCE=x',
    '/a?fbclidx=1',
    '/a?xfbclid=1',
    '/a?x#utm_source=1',
    '/a?=fbclid',
    '/utm_source/a?b',
    '/a&utm_source=1',
  ])('%s is keyed as it is', (uri) => {
    expect(keyRequestUri(uri, ignore)).toBe(uri);
  });

  it('keeps every URI as it is with no ignored parameters', () => {
    expect(keyRequestUri('/a?utm_source=x', [])).toBe('/a?utm_source=x');
  });
});

describe('uncachedParam, the allowlist of cacheParams', () => {
  const params = { ignoreParams: DEFAULT_IGNORE_PARAMS, cacheParams: ['page', 'q', 'filter_*'] };

  it('allows a query of listed, prefixed and ignored parameters only', () => {
    for (const uri of ['/a', '/a?', '/a?page=2', '/a?q=x&page=1&filter_tag=y', '/a?utm_source=x&page=2', '/a?fbclid']) {
      expect(uncachedParam(uri, params)).toBeUndefined();
    }
  });

  it('names the first parameter outside both lists, an empty one included', () => {
    expect(uncachedParam('/a?page=1&r=12345', params)).toBe('r');
    expect(uncachedParam('/a?page=1&&q', params)).toBe('');
    expect(uncachedParam('/a?=1', params)).toBe('');
    expect(uncachedParam('/a?Page=1', params)).toBe('Page');
  });

  it('allows any query without an allowlist', () => {
    expect(uncachedParam('/a?r=1', { ignoreParams: DEFAULT_IGNORE_PARAMS })).toBeUndefined();
  });
});

describe('the parameter names ignoreParams and cacheParams take', () => {
  it.each(['utm_*', 'fbclid', '_ga', 'a.b~c-d', 'utm%5Fsource', 'x*'])('%j is a name or prefix', (text) => {
    expect(isQueryParamPattern(text)).toBe(true);
  });

  it.each(['', '*', 'a*b', 'a=b', 'a&b', 'a b', '%zz', 'a$', 'caf\u00e9', 'a"'])('%j is not', (text) => {
    expect(isQueryParamPattern(text)).toBe(false);
  });
});

describe('the regex nginx tests $request_uri with before it removes anything', () => {
  const pattern = new RegExp(ignoredParamsPattern(DEFAULT_IGNORE_PARAMS) as string);
  const uris = ['/a', '/a?b', '/a?utm_source=x', '/a?b&fbclid', '/a?fbclid=1', '/a?fbclidx', '/a?x=fbclid', '/a?b=1#x&gclid=2', '?utm_a', '/a?utm%5Fsource=1', '/a?_ga', '/a?_gax=1'];

  it.each(uris)('matches %s whenever keyRequestUri changes it', (uri) => {
    if (keyRequestUri(uri, DEFAULT_IGNORE_PARAMS) !== uri) expect(pattern.test(uri)).toBe(true);
  });

  it('matches every URI keyRequestUri changes, whatever its bytes', () => {
    const piece = fc.constantFrom('?', '&', '=', '#', '/a', 'utm_', 'utm', 'source', 'fbclid', 'gclid', '_ga', 'x', '%5F', '');
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 12 }), (pieces) => {
        const uri = `/${pieces.join('')}`;
        const kept = keyRequestUri(uri, DEFAULT_IGNORE_PARAMS);
        if (kept !== uri) expect(pattern.test(uri)).toBe(true);
        // Removing never adds: the kept URI has no ignored parameter left.
        expect(keyRequestUri(kept, DEFAULT_IGNORE_PARAMS)).toBe(kept);
      }),
      { numRuns: 5000 },
    );
  });

  it('skips a URI without a query or without such a parameter', () => {
    expect(pattern.test('/article/x/')).toBe(false);
    expect(pattern.test('/a?page=2&fbclidx=1&x=gclid')).toBe(false);
  });

  it('holds nothing nginx reads specially in a quoted string', () => {
    expect(ignoredParamsPattern(DEFAULT_IGNORE_PARAMS)).toMatch(/^[^$"'{}\s;]+$/);
    expect(ignoredParamsPattern([])).toBeUndefined();
  });
});
