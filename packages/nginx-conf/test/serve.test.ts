import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync, gzipSync } from 'node:zlib';
import { cacheKey } from '@sitecache/cache-key';
import { parseConfig, type SitecacheConfig } from '@sitecache/config';
import { GZIP_FLAG } from '@sitecache/nginx-model';
import { renderNginxConf } from '@sitecache/nginx-conf';
import { memcachedSet, sendRaw, startMemcached, startNginx, type MemcachedServer, type NginxServer } from '@sitecache/test-services';

// What a visitor gets from the generated config, through real nginx, memcached and an app.
describe('the generated config, serving', () => {
  let memcached: MemcachedServer;
  let nginx: NginxServer;
  let app: Server;
  let config: SitecacheConfig;
  const received: { method: string; url: string; headers: IncomingMessage['headers']; body: string }[] = [];

  beforeAll(async () => {
    memcached = await startMemcached();
    app = createServer((req, res) => {
      let body = '';
      req.setEncoding('latin1');
      req.on('data', (chunk: string) => (body += chunk));
      req.on('end', () => {
        received.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
        res.setHeader('Content-Type', 'text/html; charset=utf-8');
        res.setHeader('X-Cache', 'MISS');
        res.end(`rendered by the app: ${req.method} ${req.url}`);
      });
    });
    await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
    nginx = await startNginx(({ port, prefix }) => {
      config = parseConfig({
        hosts: ['www.example.com'],
        listen: `127.0.0.1:${port}`,
        memcached: [memcached.address],
        app: [`127.0.0.1:${(app.address() as AddressInfo).port}`],
        bypassCookies: ['sessionid'],
        gzip: true,
      });
      return renderNginxConf(config, { standalone: true, prefix, workerProcesses: 1 });
    });
  });

  afterAll(async () => {
    await nginx?.stop();
    await memcached?.stop();
    await new Promise((resolve) => app?.close(resolve));
  });

  const store = async (path: string, html: string): Promise<void> =>
    memcachedSet(memcached.address, cacheKey(`https://www.example.com${path}`), gzipSync(html), GZIP_FLAG);
  const get = (path: string, headers = ''): ReturnType<typeof sendRaw> =>
    sendRaw(nginx.port, `GET ${path} HTTP/1.1\r\nHost: www.example.com\r\n${headers}Connection: close\r\n\r\n`);
  const lastSeenByApp = () => received.at(-1);

  it('serves a stored page as a HIT with its HTML type, unzipped for a client that does not accept gzip', async () => {
    await store('/article/1', '<h1>One</h1>');
    const response = await get('/article/1');
    expect(response.status).toBe(200);
    expect(response.headers['x-cache']).toBe('HIT');
    expect(response.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(response.headers['vary']).toBe('Accept-Encoding');
    expect(response.headers['content-encoding']).toBeUndefined();
    expect(response.body.toString()).toBe('<h1>One</h1>');
  });

  it('serves the stored gzip bytes as they are to a client that accepts gzip', async () => {
    await store('/article/2', '<h1>Two</h1>');
    const response = await get('/article/2', 'Accept-Encoding: gzip\r\n');
    expect(response.headers['content-encoding']).toBe('gzip');
    expect(gunzipSync(response.body).toString()).toBe('<h1>Two</h1>');
  });

  it('serves a page under a path that looks like a file as HTML, never by its extension', async () => {
    await store('/download.exe', '<p>not a download</p>');
    const response = await get('/download.exe');
    expect(response.headers['content-type']).toBe('text/html; charset=utf-8');
  });

  it('answers HEAD for a stored page with its headers and no body', async () => {
    await store('/article/3', '<h1>Three</h1>');
    const response = await sendRaw(nginx.port, 'HEAD /article/3 HTTP/1.1\r\nHost: www.example.com\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n');
    expect(response.status).toBe(200);
    expect(response.headers['x-cache']).toBe('HIT');
    expect(response.body.length).toBe(0);
  });

  it('sends a miss to the app with the raw request URI and the host nginx keyed on', async () => {
    const response = await get('/not/stored/../x?a=%20&b');
    expect(response.status).toBe(200);
    expect(response.headers['x-cache']).toBe('MISS');
    expect(lastSeenByApp()?.url).toBe('/not/stored/../x?a=%20&b');
    expect(lastSeenByApp()?.headers.host).toBe('www.example.com');
  });

  it('sends a POST to the app with its body, even where a page is stored for that URL', async () => {
    await store('/comment', '<p>cached</p>');
    const body = 'name=a&text=' + 'x'.repeat(5000);
    const response = await sendRaw(
      nginx.port,
      `POST /comment HTTP/1.1\r\nHost: www.example.com\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
    );
    expect(response.status).toBe(200);
    expect(response.body.toString()).toBe('rendered by the app: POST /comment');
    expect(lastSeenByApp()?.body).toBe(body);
  });

  it.each([
    ['Authorization', 'Authorization: Basic dXNlcjpwYXNz\r\n'],
    ['the bypass cookie alone', 'Cookie: sessionid=abc\r\n'],
    ['the bypass cookie among others', 'Cookie: theme=dark; sessionid=abc; lang=fr\r\n'],
  ])('never serves a cached page to a request with %s', async (_what, headers) => {
    await store('/private-view', '<p>cached for everyone</p>');
    const response = await get('/private-view', headers);
    expect(response.headers['x-cache']).toBe('MISS');
    expect(response.body.toString()).toBe('rendered by the app: GET /private-view');
  });

  it.each([
    ['an unrelated cookie', 'Cookie: theme=dark\r\n'],
    ['a cookie whose name only ends like the bypass cookie', 'Cookie: xsessionid=1\r\n'],
  ])('still serves the cached page to a request with %s', async (_what, headers) => {
    await store('/public-view', '<p>cached for everyone</p>');
    const response = await get('/public-view', headers);
    expect(response.headers['x-cache']).toBe('HIT');
  });

  it('refuses a Host the site does not serve, so nobody fills the cache under names they choose', async () => {
    const response = await sendRaw(nginx.port, 'GET / HTTP/1.1\r\nHost: evil.test\r\nConnection: close\r\n\r\n');
    expect(response.status).toBe(421);
  });

  it('clears the headers used for cache poisoning before the app sees them', async () => {
    await get('/poison', 'X-Forwarded-Host: evil.test\r\nX-Original-URL: /admin\r\nX-Rewrite-URL: /admin\r\nForwarded: host=evil.test\r\nX-Forwarded-Proto: http\r\n');
    const headers = lastSeenByApp()?.headers ?? {};
    expect(headers['x-forwarded-host']).toBeUndefined();
    expect(headers['x-original-url']).toBeUndefined();
    expect(headers['x-rewrite-url']).toBeUndefined();
    expect(headers['forwarded']).toBeUndefined();
    expect(headers['x-forwarded-proto']).toBe('https');
  });

  it('sends the app the address the visitor connected from, never the X-Forwarded-For it claims', async () => {
    await get('/who', 'X-Forwarded-For: 203.0.113.7\r\n');
    expect(lastSeenByApp()?.headers['x-forwarded-for']).toBe('127.0.0.1');
  });

  it('falls back to the app within the timeout while memcached is frozen, and serves hits again once it thaws', async () => {
    await store('/frozen', '<p>stored</p>');
    memcached.process.signal('SIGSTOP');
    try {
      const started = Date.now();
      const response = await get('/frozen');
      const elapsed = Date.now() - started;
      expect(response.status).toBe(200);
      expect(response.headers['x-cache']).toBe('MISS');
      expect(elapsed).toBeLessThan(2_000);
    } finally {
      memcached.process.signal('SIGCONT');
    }
    // Never marked down (max_fails=0): the next request reads it again.
    const response = await get('/frozen');
    expect(response.headers['x-cache']).toBe('HIT');
  });

  it('falls back to the app when memcached is killed', async () => {
    memcached.process.signal('SIGKILL');
    const response = await get('/article/1');
    expect(response.status).toBe(200);
    expect(response.headers['x-cache']).toBe('MISS');
    await memcached.restart();
  });
});
