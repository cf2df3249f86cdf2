// One app process of bench:site (site.bench.ts starts two per setup). It renders /page/<n> in
// about 5 ms and counts its renders; GET /__renders answers the count.
// BENCH_APP_PORT: the port. BENCH_APP_CONFIG: a sitecache config (JSON) to run pageCache with, as
// the sitecache setup does; without it the app sends the page itself, gzip to clients that accept
// it unless BENCH_APP_GZIP=0, for a cache in front of it (Varnish, proxy_cache).
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import { pageCache } from '@sitecache/cache-store';
import { CACHE_CONTROL, renderPage } from './page.js';

const gzipAsync = promisify(gzip);
const port = Number(process.env.BENCH_APP_PORT);
const config = process.env.BENCH_APP_CONFIG ? JSON.parse(process.env.BENCH_APP_CONFIG) : undefined;
const gzipForClients = !config && process.env.BENCH_APP_GZIP !== '0';
const RENDER_MS = 5;

let renders = 0;

// A page of a real site mostly waits for its database, so the render is about 0.4 ms of building
// the HTML and then a wait to 5 ms, not 5 ms of CPU: on this 2-core machine, shared with wrk and
// the caches, a busy-loop render would make the app's CPU the bottleneck of every setup, and what a
// miss costs the database is what renders per second counts.
async function renderArticle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const started = performance.now();
  const match = /^\/page\/(\d+)$/.exec(req.url ?? '');
  if (!match) {
    res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
    return;
  }
  renders++;
  const html = renderPage(Number(match[1]));
  await sleep(Math.max(0, RENDER_MS - (performance.now() - started)));
  const headers = { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': CACHE_CONTROL, Vary: 'Accept-Encoding' };
  if (gzipForClients && /\bgzip\b/.test(req.headers['accept-encoding'] ?? '')) {
    // What compression middleware does: zlib's default level, off the main thread.
    res.writeHead(200, { ...headers, 'Content-Encoding': 'gzip' }).end(await gzipAsync(html));
  } else {
    res.writeHead(200, headers).end(html);
  }
}

const app = (req: IncomingMessage, res: ServerResponse): void => {
  renderArticle(req, res).catch((error: Error) => res.writeHead(500).end(error.message));
};
const cache = config ? pageCache(config) : undefined;

const server = createServer((req, res) => {
  // Asked of each app process directly, never through a cache.
  if (req.url === '/__renders') {
    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' }).end(JSON.stringify({ renders }));
  } else if (cache) {
    cache(req, res, () => app(req, res));
  } else {
    app(req, res);
  }
});
server.listen(port, '127.0.0.1');

process.on('SIGTERM', () => {
  server.close();
  server.closeAllConnections();
  void (cache?.close() ?? Promise.resolve()).then(() => process.exit(0));
});
