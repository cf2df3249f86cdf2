import { describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import { cacheKey, InvalidHostError, InvalidKeyPrefixError, InvalidUrlError, nginxKeyExpression, normalizeHost, requestKey } from '@sitecache/cache-key';

const md5 = (text: string | Buffer): string => createHash('md5').update(text).digest('hex');
const config = { keyPrefix: '', scheme: 'https' };

describe('normalizeHost, as nginx builds $host', () => {
  it.each([
    ['www.example.com', 'www.example.com'],
    ['WWW.Example.COM', 'www.example.com'],
    ['www.example.com:8080', 'www.example.com'],
    ['www.example.com.', 'www.example.com'],
    ['Primary.TEST.:8080', 'primary.test'],
    ['[::1]', '[::1]'],
    ['[::1]:8080', '[::1]'],
    ['[2001:DB8::1]:443', '[2001:db8::1]'],
    ['127.0.0.1:80', '127.0.0.1'],
    ['under_score.example', 'under_score.example'],
    ['host:', 'host'],
  ])('%j becomes %j', (raw, host) => {
    expect(normalizeHost(raw)).toBe(host);
  });

  it('lowercases ASCII only, as nginx does, leaving latin1 letters alone', () => {
    expect(normalizeHost('CAFÉ.example')).toBe('cafÉ.example');
  });

  it.each(['', '.', 'a..b', 'a/b', 'a\0b', ':80', 'a\\b'.replace('\\', '/')])('refuses %j with InvalidHostError', (raw) => {
    expect(() => normalizeHost(raw)).toThrow(InvalidHostError);
  });
});

describe('cacheKey', () => {
  it('is the md5 of prefix + scheme + "://" + host + request URI', () => {
    expect(cacheKey('https://www.example.com/a?b=1')).toBe(md5('https://www.example.com/a?b=1'));
    expect(cacheKey('https://www.example.com/a', { keyPrefix: 'blog:' })).toBe(md5('blog:https://www.example.com/a'));
  });

  it('normalizes the host as nginx does and never the path or query', () => {
    expect(cacheKey('https://WWW.Example.com.:443/A/../b?%41')).toBe(md5('https://www.example.com/A/../b?%41'));
  });

  it('reads a URL with no path as "/", as nginx does', () => {
    expect(cacheKey('https://www.example.com')).toBe(md5('https://www.example.com/'));
  });

  it('drops a #fragment, which a client never sends', () => {
    expect(cacheKey('https://www.example.com/a#top')).toBe(cacheKey('https://www.example.com/a'));
  });

  it('hashes characters beyond ASCII as their UTF-8 bytes, what a client sends', () => {
    expect(cacheKey('https://www.example.com/café')).toBe(md5(Buffer.from('https://www.example.com/café', 'utf8')));
  });

  it.each([
    ['/relative', 'expected an absolute http or https URL'],
    ['ftp://example.com/', 'expected an absolute http or https URL'],
    ['https://user:pw@example.com/', 'user info'],
  ])('refuses %j with InvalidUrlError', (url, message) => {
    expect(() => cacheKey(url)).toThrow(InvalidUrlError);
    expect(() => cacheKey(url)).toThrow(message);
  });

  it('refuses a URL whose host nginx would refuse', () => {
    expect(() => cacheKey('https://a..b/')).toThrow(InvalidHostError);
  });
});

describe('requestKey', () => {
  it('equals cacheKey of the page the request asks for', () => {
    const req = { url: '/a?b=1', headers: { host: 'WWW.example.com:8080' } };
    expect(requestKey(req, config)).toBe(cacheKey('https://www.example.com/a?b=1'));
  });

  it('uses the configured scheme, never one from the request', () => {
    expect(requestKey({ url: '/', headers: { host: 'example.com' } }, { scheme: 'http' })).toBe(md5('http://example.com/'));
  });

  it('takes the host of an absolute-form target from the request line, as nginx does', () => {
    const req = { url: 'http://Example.COM:8080/a', headers: { host: 'other.test' } };
    expect(requestKey(req, config)).toBe(md5('https://example.com/a'));
  });

  it('hashes the latin1 text Node gives for raw bytes as those bytes', () => {
    const raw = Buffer.from('/café', 'utf8').toString('latin1');
    expect(requestKey({ url: raw, headers: { host: 'example.com' } }, config)).toBe(cacheKey('https://example.com/café'));
  });

  it('refuses a request without a Host', () => {
    expect(() => requestKey({ url: '/', headers: {} }, config)).toThrow(InvalidHostError);
  });

  it('refuses a target that is neither origin-form nor absolute-form', () => {
    expect(() => requestKey({ url: '*', headers: { host: 'example.com' } }, config)).toThrow(InvalidUrlError);
  });
});

describe('query parameters left out of the key (ignoreParams)', () => {
  it('keys a page asked for with tracking parameters as the page without them, by default', () => {
    expect(cacheKey('https://www.example.com/a?utm_source=x')).toBe(md5('https://www.example.com/a'));
    expect(cacheKey('https://www.example.com/a?b=1&fbclid=x&c=2#top')).toBe(md5('https://www.example.com/a?b=1&c=2'));
    expect(cacheKey('https://www.example.com?gclid=1')).toBe(cacheKey('https://www.example.com/'));
    const req = { url: '/a?b=1&utm_source=x&utm_medium=y', headers: { host: 'www.example.com' } };
    expect(requestKey(req, config)).toBe(md5('https://www.example.com/a?b=1'));
  });

  it('keeps a URI without such parameters exactly as today', () => {
    for (const url of ['/a', '/a?', '/a?b=1&&c', '/a?utm%5Fsource=x', '/a?b=utm_source']) {
      expect(requestKey({ url, headers: { host: 'example.com' } }, config)).toBe(md5(`https://example.com${url}`));
    }
  });

  it('takes the config\'s list, and keys every URI as sent with an empty one', () => {
    const custom = { ...config, ignoreParams: ['ref', 'src_*'] };
    expect(requestKey({ url: '/a?ref=x&src_id=1&utm_source=y', headers: { host: 'example.com' } }, custom)).toBe(md5('https://example.com/a?utm_source=y'));
    expect(cacheKey('https://example.com/a?utm_source=x', { ignoreParams: [] })).toBe(md5('https://example.com/a?utm_source=x'));
  });
});

describe('nginxKeyExpression', () => {
  it('spells the same template for nginx to fill in', () => {
    expect(nginxKeyExpression({ keyPrefix: 'blog:', scheme: 'https' })).toBe('blog:https://$host$request_uri');
  });

  it('refuses a prefix nginx could not hold literally', () => {
    expect(() => nginxKeyExpression({ keyPrefix: 'a$b', scheme: 'https' })).toThrow(InvalidKeyPrefixError);
  });
});
