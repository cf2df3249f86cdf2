import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cacheKey } from '@sitecache/cache-key';
import { parseConfig, type SitecacheConfig } from '@sitecache/config';
import { createHashRing } from '@sitecache/nginx-model';
import { renderNginxConf } from '@sitecache/nginx-conf';
import { memcachedSet, sendRaw, startMemcached, startNginx, type MemcachedServer, type NginxServer, type RawResponse } from '@sitecache/test-services';

// Each page lives on one server of the ring, the one the app wrote it to. nginx must keep reading
// it there: a server it marked down would send its keys to the next ring point, where no page is.
describe('the memcached ring, when one server stalls', () => {
  let servers: MemcachedServer[] = [];
  let nginx: NginxServer;
  let app: Server;
  let config: SitecacheConfig;
  // One page per server, stored on the server nginx's ring reads it from.
  const pageOn = new Map<string, string>();

  beforeAll(async () => {
    servers = await Promise.all([startMemcached(), startMemcached(), startMemcached()]);
    app = createServer((_req, res) => {
      res.setHeader('X-Cache', 'MISS');
      res.end('rendered by the app');
    });
    await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
    nginx = await startNginx(({ port, prefix }) => {
      config = parseConfig({
        hosts: ['www.example.com'],
        listen: `127.0.0.1:${port}`,
        memcached: servers.map((server) => server.address),
        app: [`127.0.0.1:${(app.address() as AddressInfo).port}`],
        gzip: false,
      });
      return renderNginxConf(config, { standalone: true, prefix, workerProcesses: 1 });
    });
    const ring = createHashRing(config.memcached);
    for (let i = 0; pageOn.size < servers.length; i++) {
      const path = `/article/${i}`;
      const server = ring.serverFor(cacheKey(`https://www.example.com${path}`));
      if (pageOn.has(server)) continue;
      pageOn.set(server, path);
      await memcachedSet(server, cacheKey(`https://www.example.com${path}`), `stored on ${server}`);
    }
  });

  afterAll(async () => {
    await nginx?.stop();
    await Promise.all(servers.map((server) => server.stop()));
    await new Promise((resolve) => app?.close(resolve));
  });

  const get = (path: string): Promise<RawResponse> =>
    sendRaw(nginx.port, `GET ${path} HTTP/1.1\r\nHost: www.example.com\r\nConnection: close\r\n\r\n`);

  it("serves a stalled server's pages from it again as soon as it answers, not after fail_timeout (10 s)", async () => {
    const stalled = servers[1] as MemcachedServer;
    const path = pageOn.get(stalled.address) as string;
    expect((await get(path)).headers['x-cache']).toBe('HIT');

    stalled.process.signal('SIGSTOP');
    let duringStall: RawResponse;
    try {
      // nginx's memcached timeout (250 ms) fires: the app answers instead.
      duringStall = await get(path);
    } finally {
      stalled.process.signal('SIGCONT');
    }
    expect(duringStall.headers['x-cache']).toBe('MISS');

    // The very next request reads it there again; marked down, it would miss for 10 s.
    const response = await get(path);
    expect(response.headers['x-cache']).toBe('HIT');
    expect(response.body.toString()).toBe(`stored on ${stalled.address}`);
  });

  it('keeps serving the other servers\' pages while one stalls', async () => {
    const [first, stalled, third] = servers as [MemcachedServer, MemcachedServer, MemcachedServer];
    stalled.process.signal('SIGSTOP');
    try {
      for (const server of [first, third]) {
        const response = await get(pageOn.get(server.address) as string);
        expect(response.headers['x-cache']).toBe('HIT');
        expect(response.body.toString()).toBe(`stored on ${server.address}`);
      }
    } finally {
      stalled.process.signal('SIGCONT');
    }
  });
});
