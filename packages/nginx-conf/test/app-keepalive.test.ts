import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { renderNginxConf } from '@sitecache/nginx-conf';
import {
  freePort,
  sendRaw,
  spawnService,
  startMemcached,
  startNginx,
  waitForListener,
  type MemcachedServer,
  type NginxServer,
  type RawResponse,
  type ServiceProcess,
} from '@sitecache/test-services';

// Node's http server closes a keep-alive connection idle for keepAliveTimeout (5 s by default; some
// releases, Node 20.20 among them, wait one more second). A request nginx sends on a pooled
// connection just as the app closes it gets 502, and nginx never retries a POST on another
// connection. So nginx must close idle app connections first.
//
// The race is a window of a millisecond or so, unless the app's event loop is busy when its timeout
// falls due (an app under load): then the window lasts as long as the busy spell, because Node runs
// the timers that fell due (closing the connections) before it reads what arrived meanwhile. The
// test makes that happen on purpose, across both moments Node may close at, so every POST lands in
// the window on a config that keeps idle connections longer than the app does.
const APP = fileURLToPath(new URL('./fixtures/node-app.mjs', import.meta.url));
const NODE_KEEPALIVE_TIMEOUT_MS = 5_000;
const BUSY_FROM_MS = NODE_KEEPALIVE_TIMEOUT_MS - 200;
const BUSY_UNTIL_MS = NODE_KEEPALIVE_TIMEOUT_MS + 1_000 + 400;
const POSTS_AT_MS = NODE_KEEPALIVE_TIMEOUT_MS + 100;
// One nginx worker keeps at most 32 idle app connections (keepalive 32): 8 sites pool 25 each,
// then send 25 POSTs each.
const SITES = 8;
const PER_SITE = 25;

describe('the app upstream', () => {
  let memcached: MemcachedServer;
  let app: ServiceProcess;
  let appPort: number;
  let sites: NginxServer[] = [];

  beforeAll(async () => {
    memcached = await startMemcached();
    appPort = await freePort();
    app = spawnService(process.execPath, [APP, String(appPort)]);
    await waitForListener({ host: '127.0.0.1', port: appPort }, 10_000, () => app.alive());
    sites = await Promise.all(
      Array.from({ length: SITES }, () =>
        startNginx(({ port, prefix }) =>
          renderNginxConf(
            { hosts: ['www.example.com'], listen: `127.0.0.1:${port}`, memcached: [memcached.address], app: [`127.0.0.1:${appPort}`] },
            { standalone: true, prefix, workerProcesses: 1 },
          ),
        ),
      ),
    );
  });

  afterAll(async () => {
    await Promise.all(sites.map((site) => site.stop()));
    await app?.stop();
    await memcached?.stop();
  });

  const toEverySite = (request: (port: number, i: number) => Promise<RawResponse>): Promise<RawResponse[]> =>
    Promise.all(sites.flatMap((site) => Array.from({ length: PER_SITE }, (_, i) => request(site.port, i))));
  const get = (port: number, path: string): Promise<RawResponse> =>
    sendRaw(port, `GET ${path} HTTP/1.1\r\nHost: www.example.com\r\nConnection: close\r\n\r\n`);
  const post = (port: number, path: string): Promise<RawResponse> =>
    sendRaw(port, `POST ${path} HTTP/1.1\r\nHost: www.example.com\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 10\r\nConnection: close\r\n\r\ntext=hello`);
  const appConnections = async (): Promise<number> => Number((await get(appPort, '/__connections')).body.toString());

  it("closes idle app connections before the app's keepAliveTimeout, so no POST meets a closing one (0 of 200 fail)", async () => {
    // Misses, all at once: each nginx opens 25 connections to the app and keeps them idle.
    await toEverySite((port, i) => get(port, `/page/${i}`));
    const idleSince = Date.now();
    const pooled = await appConnections();

    await sleep(idleSince + BUSY_FROM_MS - Date.now());
    const openBeforeAppTimeout = await appConnections();
    // The app is busy from just before its timeout falls due until past both moments it may close at;
    // the POSTs reach nginx meanwhile.
    const busy = get(appPort, `/__block?ms=${BUSY_UNTIL_MS - BUSY_FROM_MS}`);
    await sleep(idleSince + POSTS_AT_MS - Date.now());
    const posts = await toEverySite((port, i) => post(port, `/comment/${i}`));
    await busy;

    const statuses: Record<number, number> = {};
    for (const { status } of posts) statuses[status] = (statuses[status] ?? 0) + 1;
    expect(statuses).toEqual({ 200: SITES * PER_SITE });
    expect(posts.every((response) => response.body.toString().startsWith('rendered by the app: POST'))).toBe(true);
    // How: the pool was full, and nginx had closed every idle connection before the app's timeout.
    expect({ pooled, openBeforeAppTimeout }).toEqual({ pooled: SITES * PER_SITE, openBeforeAppTimeout: 0 });
  });
});
