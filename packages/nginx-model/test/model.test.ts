import { createHash } from 'node:crypto';
import { describe, expect, it } from '@jest/globals';
import {
  bypassCookiePattern,
  createHashRing,
  HTML_TYPE,
  InvalidServerListError,
  isNginxLiteral,
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
