import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { gzipSync } from 'node:zlib';
import { cacheKey } from '@sitecache/cache-key';
import { parseConfig } from '@sitecache/config';
import { GZIP_FLAG } from '@sitecache/nginx-model';
import { renderNginxConf } from '@sitecache/nginx-conf';
import { memcachedSet, sendRaw, startMemcached, startNginx, type MemcachedServer, type NginxServer, type RawResponse } from '@sitecache/test-services';

// The config's `microcache`: nginx keeps hits a second in a proxy_cache of its own in front of
// the memcached lookup. Two nginx read one memcached, one without the micro-cache and one with
// it, through real nginx, memcached and an app; a hit must not tell them apart.
const HOST = 'www.example.com';
const FIELDS = {
  hosts: [HOST],
  gzip: true,
  bypassCookies: ['sessionid'],
  hitHeaders: { 'Cache-Control': 'public, max-age=60', 'X-Quoted': 'say "hi"' },
  contentTypes: { '= /feed.xml': 'application/rss+xml; charset=utf-8', '/api/': 'application/json' },
};

describe('with microcache on', () => {
  let memcached: MemcachedServer;
  let app: Server;
  let plain: NginxServer;
  let micro: NginxServer;
  const received: IncomingMessage[] = [];

  const start = (microcache: number): Promise<NginxServer> =>
    startNginx(({ port, prefix }) => {
      const config = parseConfig({ ...FIELDS, listen: `127.0.0.1:${port}`, memcached: [memcached.address], app: [`127.0.0.1:${(app.address() as AddressInfo).port}`], microcache });
      return renderNginxConf(config, { standalone: true, prefix, workerProcesses: 1 });
    });

  beforeAll(async () => {
    memcached = await startMemcached();
    app = createServer((req, res) => {
      received.push(req);
      req.resume();
      res.setHeader('Content-Type', 'text/html; charset=utf-8');
      res.setHeader('X-Cache', 'MISS');
      res.end(`rendered by the app: ${req.method} ${req.url}`);
    });
    await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
    plain = await start(0);
    micro = await start(1);
  });

  afterAll(async () => {
    await micro?.stop();
    await plain?.stop();
    await memcached?.stop();
    app?.closeAllConnections();
    await new Promise((resolve) => app?.close(resolve));
  });

  const keyOf = (path: string): string => cacheKey(`https://${HOST}${path}`);
  const store = (path: string, body: string): Promise<void> => memcachedSet(memcached.address, keyOf(path), gzipSync(body), GZIP_FLAG);
  const send = (nginx: NginxServer, method: string, path: string, headers = ''): Promise<RawResponse> =>
    sendRaw(nginx.port, `${method} ${path} HTTP/1.1\r\nHost: ${HOST}\r\n${headers}Connection: close\r\n\r\n`);
  /** The response as a visitor sees it, minus the Date nginx stamps on each one. */
  const seen = ({ status, headers, body }: RawResponse): unknown => ({ status, headers: { ...headers, date: undefined }, body: body.toString('latin1') });

  it.each([
    ['an HTML page, client without gzip', 'GET', '/article/1', ''],
    ['an HTML page, gzip client', 'GET', '/article/1', 'Accept-Encoding: gzip\r\n'],
    ['an HTML page, HEAD', 'HEAD', '/article/1', 'Accept-Encoding: gzip\r\n'],
    ['an HTML page, a byte range', 'GET', '/article/1', 'Accept-Encoding: gzip\r\nRange: bytes=0-9\r\n'],
    ['a feed of a typed location', 'GET', '/feed.xml', ''],
    ['JSON of a typed location, gzip client', 'GET', '/api/items', 'Accept-Encoding: gzip\r\n'],
    ['a page under a path that looks like a file', 'GET', '/download.exe', ''],
  ])('serves %s byte for byte as without it, from memcached and then from its own cache', async (_what, method, path, headers) => {
    await store(path, `<h1>${path}</h1>${'text '.repeat(2000)}`);
    const expected = seen(await send(plain, method, path, headers));
    expect(expected).toMatchObject({ status: expect.any(Number), headers: { 'x-cache': 'HIT' } });
    // The first fills the micro-cache (GET, whatever the method), the next come from it.
    for (let i = 0; i < 3; i++) expect(seen(await send(micro, method, path, headers))).toEqual(expected);
  });

  it('keeps a page no longer than microcache + 1 s (nginx counts whole seconds): a purge is seen by then', async () => {
    await store('/purged', '<h1>before</h1>');
    expect((await send(micro, 'GET', '/purged')).headers['x-cache']).toBe('HIT');
    await deleteKey(memcached.address, keyOf('/purged'));
    const purged = Date.now();
    // Each request's send time is before nginx served it, however loaded the machine: a HIT sent
    // later than the bound was served from the micro-cache past it.
    let sent = Date.now();
    let lastHitSent = purged;
    let response = await send(micro, 'GET', '/purged');
    while (response.headers['x-cache'] === 'HIT' && Date.now() - purged < 10_000) {
      lastHitSent = sent;
      await sleep(50);
      sent = Date.now();
      response = await send(micro, 'GET', '/purged');
    }
    expect(response.body.toString()).toBe('rendered by the app: GET /purged');
    // The bound is 2 s; the rest is for nginx's cached clock, which lags a busy worker.
    expect(lastHitSent - purged).toBeLessThan(2_500);
  });

  it('keeps a changed page no longer than microcache either', async () => {
    await store('/changed', '<h1>old</h1>');
    expect((await send(micro, 'GET', '/changed')).body.toString()).toBe('<h1>old</h1>');
    await store('/changed', '<h1>new</h1>');
    await sleep(2_050);
    expect((await send(micro, 'GET', '/changed')).body.toString()).toBe('<h1>new</h1>');
  });

  it('never keeps a miss: a page stored just after a miss is a hit at once', async () => {
    expect((await send(micro, 'GET', '/later')).headers['x-cache']).toBe('MISS');
    await store('/later', '<h1>stored</h1>');
    const response = await send(micro, 'GET', '/later');
    expect(response.headers['x-cache']).toBe('HIT');
    expect(response.body.toString()).toBe('<h1>stored</h1>');
  });

  it.each([
    ['a bypass cookie', 'GET', 'Cookie: sessionid=abc\r\n'],
    ['Authorization', 'GET', 'Authorization: Basic dXNlcjpwYXNz\r\n'],
    ['POST', 'POST', 'Content-Length: 0\r\n'],
    ['DELETE', 'DELETE', ''],
  ])('sends a request with %s to the app, even for a page it holds', async (_what, method, headers) => {
    await store('/held', '<h1>held</h1>');
    expect((await send(micro, 'GET', '/held')).headers['x-cache']).toBe('HIT');
    const response = await send(micro, method, '/held', headers);
    expect(response.status).toBe(200);
    expect(response.body.toString()).toBe(`rendered by the app: ${method} /held`);
    expect(received.at(-1)?.headers.cookie).toBe(headers.startsWith('Cookie') ? 'sessionid=abc' : undefined);
  });

  it('falls back to the app when memcached is killed, as without it', async () => {
    memcached.process.signal('SIGKILL');
    try {
      const response = await send(micro, 'GET', '/never-stored');
      expect(response.status).toBe(200);
      expect(response.headers['x-cache']).toBe('MISS');
    } finally {
      await memcached.restart();
    }
  });
});

/** `delete <key>` on memcached's text protocol, as the app's purge sends it. */
function deleteKey(address: string, key: string): Promise<string> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port }, () => socket.write(`delete ${key}\r\n`));
    socket.once('data', (reply) => {
      socket.end();
      resolve(reply.toString('latin1'));
    });
    socket.once('error', reject);
  });
}
