/**
 * `pnpm bench:store`: the three figures issue 3 asks for, each a ratio of two rates measured side
 * by side in this one run (rounds alternate, the median of each side is compared).
 *   miss path   the same app with and without pageCache, every request a new page that is stored
 *               (a bare template render, and one twenty times as costly, nearer server-side rendering)
 *   writer      puts per second of 42 KB pages, PageStore against a minimal raw-socket writer
 *   hits        serveFromCache hits against the app answering from an in-memory Buffer
 *   grace       the cost of the stale copy (config.grace: a second set per page), grace off against on,
 *               on the miss path and in the writer
 * `pnpm bench:store --grace` runs the grace rows alone (about two minutes with the defaults).
 */
import { execFile } from 'node:child_process';
import { createServer, type RequestListener, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { availableParallelism } from 'node:os';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cacheKey } from '@sitecache/cache-key';
import { parseConfig, type SitecacheConfig } from '@sitecache/config';
import { makeTempDir, requireBinary, startMemcached, type MemcachedServer } from '@sitecache/test-services';
import { pageCache } from '../src/index.js';
import { putRate } from './put-rate.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const GRACE_ONLY = process.argv.includes('--grace');
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CONNECTIONS = 32;
const HOST = '127.0.0.1';

/** A 42 KB article rendered from a template per request, as an app renders a miss. */
function renderPage(url: string): string {
  const parts: string[] = [`<!doctype html><html><head><title>${url}</title></head><body><main>`];
  for (let i = 0; parts.length < 420; i++) {
    parts.push(`<p id="p${i}">Paragraph ${i} of the article at ${url}: caf\u00e9 lorem ipsum dolor sit amet.</p>`);
  }
  const html = `${parts.join('\n')}</main></body></html>`;
  return html + ' '.repeat(Math.max(0, 42_000 - Buffer.byteLength(html)));
}

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;
const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');

async function listen(handler: RequestListener): Promise<Server & { port: number }> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  return Object.assign(server, { port: (server.address() as AddressInfo).port });
}

async function close(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
}

/** Requests per second wrk measures against `port`; with `script`, each request its own path. */
async function wrk(port: number, script?: string, headers: string[] = []): Promise<number> {
  const args = ['-t1', `-c${CONNECTIONS}`, `-d${SECONDS}s`, ...headers.flatMap((h) => ['-H', h])];
  if (script) args.push('-s', script);
  args.push(`http://${HOST}:${port}/article`);
  const output = await new Promise<string>((resolve, reject) =>
    execFile(requireBinary('wrk'), args, { timeout: (SECONDS + 30) * 1000 }, (error, stdout) => (error ? reject(error) : resolve(stdout))),
  );
  if (/Non-2xx|Socket errors/.test(output)) throw new Error(`wrk saw failed requests:\n${output}`);
  const match = /Requests\/sec:\s+([\d.]+)/.exec(output);
  if (!match) throw new Error(`no Requests/sec in wrk's output:\n${output}`);
  return Number(match[1]);
}

/** An app whose render costs `renders` template passes: 1 is a bare template, 20 is closer to server-side rendering. */
function appOf(renders: number): RequestListener {
  return (req, res) => {
    let html = '';
    for (let i = 0; i < renders; i++) html = renderPage(req.url ?? '/');
    res.setHeader('Content-Type', 'text/html; charset=utf-8');
    res.end(html);
  };
}

async function missPath(config: SitecacheConfig, renders: number, scriptDir: string): Promise<[number, number, number]> {
  const plainApp = appOf(renders);
  const cache = pageCache(config, { logger: { warn: () => undefined } });
  const cached = await listen((req, res) => cache(req, res, () => plainApp(req, res)));
  const plain = await listen(plainApp);
  const without: number[] = [];
  const withCache: number[] = [];
  try {
    for (let round = 0; round < ROUNDS; round++) {
      for (const [side, server, rates] of [['plain', plain, without], ['cached', cached, withCache]] as const) {
        // A new path per request: no request joins another's render, every one stores its page.
        const script = join(scriptDir, `${side}-${round}.lua`);
        const prefix = `/${config.gzip ? 'gz' : 'raw'}/${renders}/${side}/${round}`;
        await writeFile(script, `local n = 0\nrequest = function()\n  n = n + 1\n  return wrk.format("GET", "${prefix}/" .. n)\nend\n`);
        rates.push(await wrk(server.port, script));
      }
    }
    const { stored, skipped, errors } = cache.metrics.snapshot();
    const notStored = Object.values(skipped).reduce((a, b) => a + b, 0);
    if (errors > 0) throw new Error(`memcached errors during the miss-path benchmark: ${errors}`);
    return [median(without), median(withCache), stored / Math.max(1, stored + notStored)];
  } finally {
    await close(cached);
    await close(plain);
    await cache.close();
  }
}

/** The miss path with pageCache storing every page, grace off against grace on, rounds alternating. */
async function missPathGrace(off: SitecacheConfig, on: SitecacheConfig, renders: number, scriptDir: string): Promise<[[number, number], [number, number]]> {
  const app = appOf(renders);
  const caches = [off, on].map((config) => pageCache(config, { logger: { warn: () => undefined } }));
  const servers = await Promise.all(caches.map((cache) => listen((req, res) => cache(req, res, () => app(req, res)))));
  const rates: [number[], number[]] = [[], []];
  // This process's CPU microseconds per request (the app, the middleware, the writer), per side.
  const cpu: [number[], number[]] = [[], []];
  try {
    for (let round = 0; round < ROUNDS; round++) {
      // Each side goes first every other round: the first wrk of a round meets a colder process.
      for (const side of round % 2 === 0 ? ([0, 1] as const) : ([1, 0] as const)) {
        const script = join(scriptDir, `grace-${side}-${round}.lua`);
        const prefix = `/grace/${off.gzip ? 'gz' : 'raw'}/${renders}/${side}/${round}`;
        await writeFile(script, `local n = 0\nrequest = function()\n  n = n + 1\n  return wrk.format("GET", "${prefix}/" .. n)\nend\n`);
        const [rate, used] = await cpuOf(() => wrk((servers[side] as Server & { port: number }).port, script));
        rates[side].push(rate);
        cpu[side].push(used / Math.max(1, rate * SECONDS));
      }
    }
    for (const cache of caches) if (cache.metrics.snapshot().errors > 0) throw new Error('memcached errors during the grace benchmark');
    return [
      [median(rates[0]), median(cpu[0])],
      [median(rates[1]), median(cpu[1])],
    ];
  } finally {
    for (const server of servers) await close(server);
    for (const cache of caches) await cache.close();
  }
}

/** The least a writer must do: one socket, pipelined `set` commands, count the STORED replies. */
async function rawWriter(address: string, pages: { url: string; body: Buffer }[], inFlight: number, ms: number): Promise<number> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
  const socket = connect({ host, port, noDelay: true });
  await new Promise((resolve) => socket.once('connect', resolve));
  let stored = 0;
  let pending = 0;
  let sent = 0;
  let reply = '';
  const end = Date.now() + ms;
  return new Promise((resolve) => {
    const send = (): void => {
      while (pending < inFlight && Date.now() < end) {
        const page = pages[sent++ % pages.length] as { url: string; body: Buffer };
        socket.write(`set ${cacheKey(page.url)} 8 600 ${page.body.length}\r\n`);
        socket.write(page.body);
        socket.write('\r\n');
        pending++;
      }
      if (pending === 0) {
        socket.destroy();
        resolve((stored * 1000) / ms);
      }
    };
    socket.on('data', (chunk: Buffer) => {
      reply += chunk.toString('latin1');
      let at: number;
      while ((at = reply.indexOf('\r\n')) >= 0) {
        if (reply.startsWith('STORED')) stored++;
        reply = reply.slice(at + 2);
        pending--;
      }
      send();
    });
    send();
  });
}

/** CPU time this process spent (user + system, microseconds) while `work` ran. */
async function cpuOf<T>(work: () => Promise<T>): Promise<[T, number]> {
  const start = process.cpuUsage();
  const result = await work();
  const used = process.cpuUsage(start);
  return [result, used.user + used.system];
}

async function writer(memcached: MemcachedServer, config: SitecacheConfig): Promise<[number, number]> {
  const pages = Array.from({ length: 1000 }, (_, i) => {
    const url = `https://${HOST}/writer/${i}`;
    return { url, body: Buffer.from(renderPage(url)) };
  });
  const raw: number[] = [];
  const ours: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    raw.push(await rawWriter(memcached.address, pages, CONNECTIONS, SECONDS * 1000));
    ours.push((await putRate(config, pages, CONNECTIONS, SECONDS * 1000))[0]);
  }
  return [median(raw), median(ours)];
}

/** PageStore.put with grace off against on (two copies of each page), and the raw socket beside them. */
async function writerGrace(memcached: MemcachedServer, off: SitecacheConfig, on: SitecacheConfig): Promise<[number, [number, number], [number, number]]> {
  const pages = Array.from({ length: 1000 }, (_, i) => {
    const url = `https://${HOST}/writer-grace/${i}`;
    return { url, body: Buffer.from(renderPage(url)) };
  });
  const raw: number[] = [];
  const without: [number, number][] = [];
  const withGrace: [number, number][] = [];
  for (let round = 0; round < ROUNDS; round++) {
    raw.push(await rawWriter(memcached.address, pages, CONNECTIONS, SECONDS * 1000));
    without.push(await putRate(off, pages, CONNECTIONS, SECONDS * 1000));
    withGrace.push(await putRate(on, pages, CONNECTIONS, SECONDS * 1000));
  }
  const pair = (rows: [number, number][]): [number, number] => [median(rows.map((r) => r[0])), median(rows.map((r) => r[1]))];
  return [median(raw), pair(without), pair(withGrace)];
}

async function hits(config: SitecacheConfig): Promise<[number, number]> {
  const page = Buffer.from(renderPage('/article'));
  const fromMemory = await listen((_req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Content-Length': page.length });
    res.end(page);
  });
  const cache = pageCache(config, { serveFromCache: true, logger: { warn: () => undefined } });
  const fromCache = await listen((req, res) => cache(req, res, () => res.end('the app must not render a stored page')));
  await cache.store.put(`https://${HOST}/article`, page);
  const memory: number[] = [];
  const cached: number[] = [];
  try {
    for (let round = 0; round < ROUNDS; round++) {
      memory.push(await wrk(fromMemory.port));
      cached.push(await wrk(fromCache.port));
    }
    if (cache.metrics.snapshot().misses > 0) throw new Error('serveFromCache missed during the hit benchmark');
    return [median(memory), median(cached)];
  } finally {
    await close(fromMemory);
    await close(fromCache);
    await cache.close();
  }
}

async function main(): Promise<void> {
  const memcached = await startMemcached({ memoryMb: 512 });
  const dir = await makeTempDir('sitecache-bench');
  const config = (gzip: boolean, grace = 0): SitecacheConfig =>
    parseConfig({ hosts: [HOST], memcached: [memcached.address], app: ['127.0.0.1:9'], gzip, grace });
  const lines: string[] = [];
  const say = (line: string): void => {
    lines.push(line);
    console.log(line);
  };
  try {
    console.log(
      `sitecache cache-store benchmarks: node ${process.version}, ${availableParallelism()} cores, wrk -t1 -c${CONNECTIONS}, ` +
        `${ROUNDS} rounds of ${SECONDS} s per side, alternating; medians; a 42,000-byte page\n`,
    );
    const start = performance.now();
    for (let i = 0; i < 200; i++) renderPage(`/calibrate/${i}`);
    const renderMs = (performance.now() - start) / 200;
    if (!GRACE_ONLY) {
      for (const [gzip, renders] of [[false, 1], [true, 1], [false, 20], [true, 20]] as const) {
        const [without, withCache, storedShare] = await missPath(config(gzip), renders, dir.path);
        say(
          `miss path, gzip ${gzip ? 'on ' : 'off'}, render ${(renders * renderMs).toFixed(2)} ms: app alone ${fmt(without)} req/s, ` +
            `app + pageCache storing every page ${fmt(withCache)} req/s (${(storedShare * 100).toFixed(1)}% stored) -> ratio ${(withCache / without).toFixed(2)} (target >= 0.9)`,
        );
      }
      const [raw, ours] = await writer(memcached, config(false));
      say(`writer: raw-socket set ${fmt(raw)} puts/s, PageStore.put ${fmt(ours)} puts/s -> ratio ${(ours / raw).toFixed(2)} (target >= 0.7)`);
      const [memory, cached] = await hits(config(false));
      say(`hits: app from an in-memory Buffer ${fmt(memory)} req/s, serveFromCache ${fmt(cached)} req/s -> ratio ${(cached / memory).toFixed(2)}`);
    }
    for (const gzip of [false, true]) {
      const [[off, offCpu], [on, onCpu]] = await missPathGrace(config(gzip), config(gzip, 300), 1, dir.path);
      say(
        `grace, miss path, gzip ${gzip ? 'on ' : 'off'}, render ${renderMs.toFixed(2)} ms: app + pageCache grace off ${fmt(off)} req/s (${fmt(offCpu)} us CPU/request), ` +
          `grace on (a stale copy too) ${fmt(on)} req/s (${fmt(onCpu)} us CPU/request) -> ratio ${(on / off).toFixed(2)}`,
      );
    }
    const [raw, [off, offCpu], [on, onCpu]] = await writerGrace(memcached, config(false), config(false, 300));
    say(
      `grace, writer: raw-socket set ${fmt(raw)} puts/s, PageStore.put grace off ${fmt(off)} puts/s (${fmt(offCpu)} us CPU/put, ratio to raw ${(off / raw).toFixed(2)}), ` +
        `grace on ${fmt(on)} puts/s (${fmt(onCpu)} us CPU/put, two sets per page) -> ratio on/off ${(on / off).toFixed(2)}`,
    );
  } finally {
    await dir.remove();
    await memcached.stop();
  }
}

main().catch((error: Error) => {
  console.error(`bench:store failed: ${error.stack ?? error.message}`);
  process.exitCode = 1;
});
