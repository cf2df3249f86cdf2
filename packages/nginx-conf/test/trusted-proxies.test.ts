import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { renderNginxConf } from '@sitecache/nginx-conf';
import { sendRaw, startMemcached, startNginx, type MemcachedServer, type NginxServer } from '@sitecache/test-services';

// nginx behind a proxy (a load balancer on 127.0.0.1 here): the visitor's address is the one the
// proxy put in X-Forwarded-For, and that is the address the app is sent.
describe('the generated config, behind a trusted proxy', () => {
  let memcached: MemcachedServer;
  let nginx: NginxServer;
  let app: Server;
  let lastSeenByApp: IncomingHttpHeaders = {};

  beforeAll(async () => {
    memcached = await startMemcached();
    app = createServer((req, res) => {
      lastSeenByApp = req.headers;
      res.setHeader('X-Cache', 'MISS');
      res.end('rendered by the app');
    });
    await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
    nginx = await startNginx(({ port, prefix }) =>
      renderNginxConf(
        {
          hosts: ['www.example.com'],
          listen: `127.0.0.1:${port}`,
          memcached: [memcached.address],
          app: [`127.0.0.1:${(app.address() as AddressInfo).port}`],
          trustedProxies: ['127.0.0.1'],
        },
        { standalone: true, prefix, workerProcesses: 1 },
      ),
    );
  });

  afterAll(async () => {
    await nginx?.stop();
    await memcached?.stop();
    await new Promise((resolve) => app?.close(resolve));
  });

  const get = (headers: string) =>
    sendRaw(nginx.port, `GET /who HTTP/1.1\r\nHost: www.example.com\r\n${headers}Connection: close\r\n\r\n`);

  it('sends the app the client address the trusted proxy put in X-Forwarded-For', async () => {
    await get('X-Forwarded-For: 203.0.113.7\r\n');
    expect(lastSeenByApp['x-forwarded-for']).toBe('203.0.113.7');
  });

  it('ignores what the client itself claimed before the proxy appended its address', async () => {
    await get('X-Forwarded-For: 198.51.100.9, 203.0.113.7\r\n');
    expect(lastSeenByApp['x-forwarded-for']).toBe('203.0.113.7');
  });

  it("sends the proxy's own address when it forwards no X-Forwarded-For", async () => {
    await get('');
    expect(lastSeenByApp['x-forwarded-for']).toBe('127.0.0.1');
  });
});
