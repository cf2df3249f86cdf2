import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer, type Server } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseConfig } from '@sitecache/config';
import { renderNginxConf } from '@sitecache/nginx-conf';
import { freePort, sendRaw, startMemcached, startNginx, type MemcachedServer, type NginxServer, type RawResponse } from '@sitecache/test-services';

// Every app process down (a deploy, a crash) marks each app server failed in nginx. Once they are
// back, misses must reach them again within two seconds, not after nginx's default 10 s, during
// which every page without a stale copy would get 502.
describe('the app servers, after every one of them was down', () => {
  let memcached: MemcachedServer;
  let nginx: NginxServer;
  const ports: number[] = [];
  let apps: Server[] = [];

  const startApps = async (): Promise<void> => {
    apps = await Promise.all(
      ports.map(
        (port) =>
          new Promise<Server>((resolve) => {
            const app = createServer((_req, res) => {
              res.setHeader('X-Cache', 'MISS');
              res.end(`rendered on ${port}`);
            });
            app.listen(port, '127.0.0.1', () => resolve(app));
          }),
      ),
    );
  };
  const stopApps = async (): Promise<void> => {
    await Promise.all(apps.map((app) => new Promise((resolve) => app.close(resolve).closeAllConnections())));
  };

  beforeAll(async () => {
    memcached = await startMemcached();
    ports.push(await freePort(), await freePort());
    await startApps();
    nginx = await startNginx(({ port, prefix }) =>
      renderNginxConf(
        parseConfig({ hosts: ['www.example.com'], listen: `127.0.0.1:${port}`, memcached: [memcached.address], app: ports.map((p) => `127.0.0.1:${p}`) }),
        { standalone: true, prefix, workerProcesses: 1 },
      ),
    );
  });

  afterAll(async () => {
    await nginx?.stop();
    await stopApps();
    await memcached?.stop();
  });

  const get = (path: string): Promise<RawResponse> =>
    sendRaw(nginx.port, `GET ${path} HTTP/1.1\r\nHost: www.example.com\r\nConnection: close\r\n\r\n`);

  it('renders misses again 2 s after the apps return (fail_timeout 1 s, which nginx counts in whole seconds)', async () => {
    expect((await get('/before')).status).toBe(200);
    await stopApps();
    // Both servers refuse: nginx marks each failed.
    expect((await get('/while-down')).status).toBe(502);
    await startApps();
    await sleep(2_100);
    const response = await get('/after');
    expect(response.status).toBe(200);
    expect(response.body.toString()).toMatch(/^rendered on \d+$/);
  });
});
