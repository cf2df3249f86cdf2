import { describe, expect, it } from '@jest/globals';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, ConfigFileError, loadConfig, parseConfig } from '@sitecache/config';

const minimal = { hosts: ['www.example.com'], memcached: ['127.0.0.1:11211'], app: ['127.0.0.1:3000'] };

describe('parseConfig', () => {
  it('fills the documented defaults around the required fields', () => {
    expect(parseConfig(minimal)).toEqual({
      keyPrefix: '',
      scheme: 'https',
      hosts: ['www.example.com'],
      listen: '127.0.0.1:8080',
      memcached: ['127.0.0.1:11211'],
      app: ['127.0.0.1:3000'],
      ttl: 600,
      gzip: true,
      bypassCookies: [],
      cacheHeader: 'X-Cache',
      contentTypes: {},
      trustedProxies: [],
      grace: 0,
      appTimeout: 10,
      hitHeaders: {},
      errorPage: undefined,
      ignoreParams: ['utm_*', 'fbclid', 'gclid', 'dclid', 'msclkid', 'mc_cid', 'mc_eid', '_ga', 'igshid', 'yclid'],
      cacheParams: undefined,
      missRate: 0,
      microcache: 0,
    });
  });

  it('keeps memcached server names exactly as written, since nginx hashes the literal text', () => {
    const config = parseConfig({ ...minimal, memcached: ['127.0.0.1:11212', 'unix:/run/memcached.sock'] });
    expect(config.memcached).toEqual(['127.0.0.1:11212', 'unix:/run/memcached.sock']);
  });

  it.each([
    [{ memcached: ['127.0.0.1:11211', 'localhost'] }, 'memcached[1]', '"host:port" or "unix:/path"', '"localhost"'],
    [{ memcached: [] }, 'memcached', 'a non-empty list of strings', '[]'],
    [{ memcached: ['127.0.0.1:1', '127.0.0.1:1'] }, 'memcached[1]', 'each server once', '"127.0.0.1:1"'],
    [{ keyPrefix: 'site$1' }, 'keyPrefix', 'printable ASCII', '"site$1"'],
    [{ keyPrefix: 'a"b' }, 'keyPrefix', 'printable ASCII', '"a\\"b"'],
    [{ keyPrefix: 'a{b' }, 'keyPrefix', 'printable ASCII', '"a{b"'],
    [{ scheme: 'ftp' }, 'scheme', '"http" or "https"', '"ftp"'],
    [{ hosts: ['Example.com'] }, 'hosts[0]', 'a lowercase host name', '"Example.com"'],
    [{ hosts: ['example.com:8080'] }, 'hosts[0]', 'a host name', '"example.com:8080"'],
    [{ hosts: ['https://example.com'] }, 'hosts[0]', 'a host name', '"https://example.com"'],
    [{ listen: '8080' }, 'listen', '"host:port"', '"8080"'],
    [{ app: ['127.0.0.1:70000'] }, 'app[0]', '"host:port" or "unix:/path"', '"127.0.0.1:70000"'],
    [{ ttl: 0 }, 'ttl', 'whole seconds from 1 to 2592000', '0'],
    [{ ttl: 2592001 }, 'ttl', 'whole seconds from 1 to 2592000', '2592001'],
    [{ ttl: '600' }, 'ttl', 'whole seconds', '"600"'],
    [{ gzip: 'yes' }, 'gzip', 'true or false', '"yes"'],
    [{ bypassCookies: ['session id'] }, 'bypassCookies[0]', 'a cookie name', '"session id"'],
    [{ cacheHeader: 'X Cache' }, 'cacheHeader', 'a header name', '"X Cache"'],
    [{ ttll: 5 }, 'ttll', 'one of the known fields', '"ttll"'],
    [{ ignoreParams: 'utm_*' }, 'ignoreParams', 'a list of strings', '"utm_*"'],
    [{ ignoreParams: ['utm_*', '*'] }, 'ignoreParams[1]', 'a parameter name', '"*"'],
    [{ ignoreParams: ['a=b'] }, 'ignoreParams[0]', 'a parameter name', '"a=b"'],
    [{ cacheParams: ['page', 'q&r'] }, 'cacheParams[1]', 'a parameter name', '"q&r"'],
    [{ cacheParams: ['x$'] }, 'cacheParams[0]', 'a parameter name', '"x$"'],
    [{ missRate: -1 }, 'missRate', 'whole requests per second', '-1'],
    [{ missRate: 2.5 }, 'missRate', 'whole requests per second', '2.5'],
    [{ missRate: '10' }, 'missRate', 'whole requests per second', '"10"'],
    [{ microcache: 1.5 }, 'microcache', 'whole seconds from 0 (off) to 60', '1.5'],
    [{ microcache: 61 }, 'microcache', 'whole seconds from 0 (off) to 60', '61'],
    [{ contentTypes: ['application/json'] }, 'contentTypes', 'an object of nginx locations to content types', '["application/json"]'],
    [{ contentTypes: { '/': 'application/json' } }, 'contentTypes["/"]', 'an nginx location', '"/"'],
    [{ contentTypes: { 'feed.xml': 'application/xml' } }, 'contentTypes["feed.xml"]', 'an nginx location', '"feed.xml"'],
    [{ contentTypes: { '~ \\.json$': 'application/json' } }, 'contentTypes["~ \\.json$"]', 'an nginx location', '"~ \\\\.json$"'],
    [{ contentTypes: { '/api/../admin/': 'application/json' } }, 'contentTypes["/api/../admin/"]', 'an nginx location', '"/api/../admin/"'],
    [{ contentTypes: { '/api/ {': 'application/json' } }, 'contentTypes["/api/ {"]', 'an nginx location', '"/api/ {"'],
    [{ contentTypes: { '/api/': 'Application/JSON' } }, 'contentTypes["/api/"]', 'a lowercase content type', '"Application/JSON"'],
    [{ contentTypes: { '/api/': 'application/json; x="1;"' } }, 'contentTypes["/api/"]', 'a lowercase content type', '"application/json; x=\\"1;\\""'],
    [{ trustedProxies: '10.0.0.0/8' }, 'trustedProxies', 'a list of strings', '"10.0.0.0/8"'],
    [{ trustedProxies: ['10.0.0.0/8', 'proxy.internal'] }, 'trustedProxies[1]', 'an IPv4 or IPv6 address or CIDR', '"proxy.internal"'],
    [{ trustedProxies: ['10.0.0.0/33'] }, 'trustedProxies[0]', 'an IPv4 or IPv6 address or CIDR', '"10.0.0.0/33"'],
    [{ trustedProxies: ['2001:db8::/129'] }, 'trustedProxies[0]', 'an IPv4 or IPv6 address or CIDR', '"2001:db8::/129"'],
    [{ trustedProxies: ['10.0.0.256'] }, 'trustedProxies[0]', 'an IPv4 or IPv6 address or CIDR', '"10.0.0.256"'],
    [{ trustedProxies: ['10.0.0.0/08'] }, 'trustedProxies[0]', 'an IPv4 or IPv6 address or CIDR', '"10.0.0.0/08"'],
    [{ trustedProxies: ['fe80::1%eth0'] }, 'trustedProxies[0]', 'an IPv4 or IPv6 address or CIDR', '"fe80::1%eth0"'],
    [{ trustedProxies: ['[::1]'] }, 'trustedProxies[0]', 'an IPv4 or IPv6 address or CIDR', '"[::1]"'],
    [{ grace: -1 }, 'grace', 'whole seconds from 0 (off) to 2592000', '-1'],
    [{ grace: 1.5 }, 'grace', 'whole seconds from 0 (off)', '1.5'],
    [{ appTimeout: 0 }, 'appTimeout', 'whole seconds from 1 to 3600', '0'],
    [{ appTimeout: '10s' }, 'appTimeout', 'whole seconds from 1 to 3600', '"10s"'],
    [{ hitHeaders: [] }, 'hitHeaders', 'an object of header names to values', '[]'],
    [{ hitHeaders: { 'Cache Control': 'x' } }, 'hitHeaders["Cache Control"]', 'a header name', '"Cache Control"'],
    [{ hitHeaders: { Link: '</$uri>; rel=preload' } }, 'hitHeaders["Link"]', 'a header value of printable ASCII, without "$"', '"</$uri>; rel=preload"'],
    [{ hitHeaders: { 'X-A': 'a\nb' } }, 'hitHeaders["X-A"]', 'a header value of printable ASCII', '"a\\nb"'],
    [{ hitHeaders: { 'X-A': 1 } }, 'hitHeaders["X-A"]', 'a header value', '1'],
    [{ hitHeaders: { 'X-Empty': '' } }, 'hitHeaders["X-Empty"]', 'a header value that is not empty', '""'],
    [{ hitHeaders: { 'Content-Type': 'text/plain' } }, 'hitHeaders["Content-Type"]', 'a header nginx does not set on hits itself', '"Content-Type"'],
    [{ hitHeaders: { 'x-cache': 'HIT' } }, 'hitHeaders["x-cache"]', 'a header nginx does not set on hits itself', '"x-cache"'],
    [{ hitHeaders: { 'X-A': '1', 'x-a': '2' } }, 'hitHeaders["x-a"]', 'each header once, whatever its case', '"x-a"'],
    [{ errorPage: 'errors/500.html' }, 'errorPage', 'an absolute path to an .html file', '"errors/500.html"'],
    [{ errorPage: '/srv/error page.html' }, 'errorPage', 'an absolute path to an .html file', '"/srv/error page.html"'],
  ])('refuses %j naming the field, what it expected and what it got', (patch, field, expected, got) => {
    const attempt = () => parseConfig({ ...minimal, ...patch }, 'site.json');
    expect(attempt).toThrow(ConfigError);
    expect(attempt).toThrow(`Invalid config field "${field}" in site.json: expected ${expected}`);
    expect(attempt).toThrow(`got ${got}`);
    try {
      attempt();
    } catch (error) {
      expect((error as ConfigError).field).toBe(field);
    }
  });

  it('reads contentTypes: exact and prefix locations with the type their hits are served with', () => {
    const types = { '= /feed.xml': 'application/rss+xml; charset=utf-8', '/api/v1/': 'application/json' };
    expect(parseConfig({ ...minimal, contentTypes: types }).contentTypes).toEqual(types);
  });

  it('reads trustedProxies: IPv4 and IPv6 addresses and CIDRs, as written', () => {
    const proxies = ['127.0.0.1', '10.0.0.0/8', '::1', '2001:db8::/32', '::ffff:192.0.2.0/120'];
    expect(parseConfig({ ...minimal, trustedProxies: proxies }).trustedProxies).toEqual(proxies);
  });

  it('reads grace, appTimeout, hitHeaders and errorPage as written', () => {
    const hitHeaders = {
      'Cache-Control': 'public, max-age=60',
      'Content-Security-Policy': "default-src 'self'",
      Link: '</app.css>; rel=preload; as="style"',
    };
    const config = parseConfig({ ...minimal, grace: 86400, appTimeout: 3, hitHeaders, errorPage: '/srv/www/502.html' });
    expect(config).toMatchObject({ grace: 86400, appTimeout: 3, hitHeaders, errorPage: '/srv/www/502.html' });
  });

  it('reads ignoreParams, cacheParams and missRate as written, [] keeping every parameter in the key', () => {
    const config = parseConfig({ ...minimal, ignoreParams: ['ref', 'utm_*', 'utm%5Fsource'], cacheParams: ['page', 'filter_*'], missRate: 5 });
    expect(config.ignoreParams).toEqual(['ref', 'utm_*', 'utm%5Fsource']);
    expect(config.cacheParams).toEqual(['page', 'filter_*']);
    expect(config.missRate).toBe(5);
    expect(parseConfig({ ...minimal, ignoreParams: [], cacheParams: [] })).toMatchObject({ ignoreParams: [], cacheParams: [] });
  });

  it('accepts a prefix nginx can hold literally inside its key expression', () => {
    expect(parseConfig({ ...minimal, keyPrefix: 'blog:v2/' }).keyPrefix).toBe('blog:v2/');
  });
});

describe('loadConfig', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sitecache-config-test-'));

  it('reads and validates a file', () => {
    const file = join(dir, 'ok.json');
    writeFileSync(file, JSON.stringify({ ...minimal, ttl: 60 }));
    expect(loadConfig(file).ttl).toBe(60);
  });

  it('names a missing file', () => {
    expect(() => loadConfig(join(dir, 'absent.json'))).toThrow(ConfigFileError);
    expect(() => loadConfig(join(dir, 'absent.json'))).toThrow('absent.json": no such file');
  });

  it('names a file that is not JSON', () => {
    const file = join(dir, 'broken.json');
    writeFileSync(file, '{ "hosts": [');
    expect(() => loadConfig(file)).toThrow(/broken\.json": not valid JSON/);
  });

  it('names the file in a field error', () => {
    const file = join(dir, 'bad.json');
    writeFileSync(file, JSON.stringify({ ...minimal, ttl: -1 }));
    expect(() => loadConfig(file)).toThrow(`Invalid config field "ttl" in ${file}`);
  });
});
