// pnpm bench:hit: a 40-50 KB page served as a hit by the generated config, against what else could
// answer the same page from memory: Varnish (malloc storage, a minimal VCL) and nginx proxy_cache
// hits, the same nginx serving the bytes as a static file, and the config as the original blog post
// wrote it (default 4k buffer, memcached_pass to an address, no keepalive); the generated config with
// its micro-cache (config `microcache`) too. Plain and gzip. As issue 13 measured: the cache server
// (nginx with one worker, or varnishd with one thread pool) pinned to one core with taskset, wrk and
// memcached to the other; every scenario runs in each round, in rotating order, so the ratios compare
// like with like. Target: generated hits >= 0.9x Varnish's hits. The generated config runs with
// grace 600 and, in the same rounds, with grace 0: issue 9 wants the hit path no slower for the
// stale and lock machinery (printed side by side, with their ratio).
// Then the cost of ignoreParams on the hit path: for each way nginx computes the key, hits on the
// plain URI and on one with tracking parameters, against the same backend without ignoreParams
// (one nginx with one worker per way, all in rotating rounds).
// --smoke: one short round of everything, with a check that each server answers the page: proves
// the bench still works, measures nothing.
// BENCH_OPTIONS='{"memcachedBufferSize":"64k"}': render options for the generated configs, to measure
// a lever. BENCH_LOCK=1: also the micro-cache with proxy_cache_lock on. BENCH_PIN=0: no taskset (a
// machine with one core). BENCH_KEYS=0: skip the ignoreParams part.
import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { cacheKey } from '@sitecache/cache-key';
import { parseConfig } from '@sitecache/config';
import { GZIP_FLAG } from '@sitecache/nginx-model';
import { renderNginxConf, renderNjsKeyModule, type RenderOptions } from '@sitecache/nginx-conf';
import {
  benchArgs,
  freePort,
  memcachedSet,
  requireBinary,
  sendRaw,
  startMemcached,
  startNginx,
  startVarnish,
  type MemcachedServer,
  type NginxServer,
  type VarnishServer,
} from '@sitecache/test-services';

const args = benchArgs({
  command: 'pnpm bench:hit',
  about: `
A 44 KB page served as a hit by the generated config (grace 600 and grace 0, with and without the
micro-cache), against Varnish and nginx proxy_cache hits, the same nginx serving a static file, and
the original blog post's config; plain and gzip, every scenario in each round in rotating order,
the cache server pinned to one core. Then the hit path's cost of ignoreParams for each way nginx
computes the key. Target: generated hits >= 0.9x Varnish's.`,
  flags: [{ name: '--smoke', about: 'one short round of everything, checking each server answers the page (measures nothing)' }],
  settings: [
    { name: 'BENCH_ROUNDS', kind: 'count', default: '4', about: 'rounds' },
    { name: 'BENCH_SECONDS', kind: 'count', default: '3', about: 'seconds of wrk per scenario and round' },
    { name: 'BENCH_OPTIONS', kind: 'json', default: '{}', about: 'render options for the generated configs, e.g. {"memcachedBufferSize":"64k"}' },
    { name: 'BENCH_LOCK', kind: 'switch', default: '0', about: '1: also the micro-cache with proxy_cache_lock on' },
    { name: 'BENCH_PIN', kind: 'switch', default: '1', about: '0: no taskset (a machine with one core)' },
    { name: 'BENCH_UNIX', kind: 'switch', default: '0', about: '1: memcached on a unix socket' },
    { name: 'BENCH_KEYS', kind: 'switch', default: '1', about: '0: skip the ignoreParams part' },
  ],
});
const run = promisify(execFile);
const SMOKE = args.has('--smoke');
const ROUNDS = SMOKE ? 1 : args.number('BENCH_ROUNDS', 4);
const SECONDS = SMOKE ? 1 : args.number('BENCH_SECONDS', 3);
const CONNECTIONS = SMOKE ? 4 : 32;
const PATH = '/article/benchmark-page';
const HOST = 'www.example.com';
const PIN = args.on('BENCH_PIN', true);
// The cache server's core, and the one wrk and memcached share.
const SERVER_CPU = 0;
const CLIENT_CPU = 1;
const TUNING = (args.json('BENCH_OPTIONS') ?? {}) as RenderOptions;

const page = makePage();
const gzipped = gzipSync(page, { level: 9 });
const key = cacheKey(`https://${HOST}${PATH}`);
const wrk = requireBinary('wrk');

interface ExtraServers {
  static: number;
  blog: number;
  proxyCache: number;
  origin: number;
  memcached: string;
}

interface Scenario {
  name: string;
  port: number;
  headers?: string[];
  /** The target, when not PATH. */
  target?: string;
}

const TRACKED = `${PATH}?utm_source=newsletter&utm_medium=email&utm_campaign=dec&fbclid=IwAR2x9`;
const GZIP_CLIENT = ['Accept-Encoding: gzip'];

/** Pins a running process, all its threads, to one core. */
async function pin(pid: number, cpu: number): Promise<void> {
  if (PIN) await run('taskset', ['-a', '-p', '-c', String(cpu), String(pid)]);
}

/** The generated config for the bench page, with one nginx worker pinned to the server's core. */
async function startSitecache(memcached: MemcachedServer, gzip: boolean, microcache: number, extra?: (prefix: string) => Promise<string>, edit = (text: string): string => text, grace = GRACE): Promise<NginxServer> {
  return startNginx(async ({ port, prefix }) => {
    // grace on: the stale copies' machinery is rendered, and must cost hits nothing.
    const config = parseConfig({ hosts: [HOST], listen: `127.0.0.1:${port}`, memcached: [memcached.address], app: ['127.0.0.1:9'], gzip, grace, microcache });
    // memcached shares its core with wrk, as issue 13 measured: at full load an answer can take longer
    // than the 250 ms default, which would send a hit to the (absent) app.
    const text = edit(renderNginxConf(config, { workerProcesses: 1, accessLog: false, memcachedTimeout: '2s', ...TUNING, standalone: true, prefix }))
      // One mask: every worker (BENCH_OPTIONS may ask for more) on the server's core.
      .replace(/worker_processes (\d+);/, `$&\n${PIN ? `worker_cpu_affinity 1${'0'.repeat(SERVER_CPU)};` : ''}`);
    // The comparison servers go inside the same http block, served by the same worker.
    return extra ? text.replace(/\}\s*$/, `${await extra(prefix)}}\n`) : text;
  });
}

/** How many requests reached the origin: a cache that hits asks it once per variant. */
let originRequests = 0;

/** A Node server the page's origin for Varnish and proxy_cache: gzip to whoever accepts it. */
async function startOrigin(): Promise<Server> {
  const server = createServer((request, response) => {
    originRequests++;
    const gzip = /\bgzip\b/.test(request.headers['accept-encoding'] ?? '');
    response.writeHead(200, {
      'Content-Type': 'text/html; charset=utf-8',
      'Cache-Control': 'public, max-age=3600',
      Vary: 'Accept-Encoding',
      ...(gzip ? { 'Content-Encoding': 'gzip' } : {}),
    });
    response.end(gzip ? gzipped : page);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

/**
 * varnishd with malloc storage and one thread pool, pinned to the server's core, caching every GET
 * of the origin for an hour. With gzip support off it passes the client's (absent) Accept-Encoding
 * on and stores the plain page; on, it stores the gzip the origin sends.
 */
async function startBenchVarnish(origin: number, gzip: boolean): Promise<VarnishServer> {
  return startVarnish({
    backends: origin,
    mallocMb: 64,
    vcl: ['sub vcl_recv { unset req.http.Cookie; return (hash); }', 'sub vcl_backend_response { set beresp.ttl = 1h; }'].join('\n'),
    parameters: { thread_pools: 1, http_gzip_support: gzip ? 'on' : 'off' },
    ...(PIN ? { cpuList: String(SERVER_CPU) } : {}),
  });
}

async function group(title: string, gzip: boolean): Promise<Map<string, number[]>> {
  const memcached = await startMemcached({ memoryMb: 64, unixSocket: args.on('BENCH_UNIX', false) });
  await pin(memcached.process.pid, CLIENT_CPU);
  await memcachedSet(memcached.address, key, gzip ? gzipped : page, gzip ? GZIP_FLAG : 0);
  const origin = await startOrigin();
  const ports: ExtraServers = { static: await freePort(), blog: await freePort(), proxyCache: await freePort(), origin: (origin.address() as AddressInfo).port, memcached: memcached.address };
  const stops: (() => Promise<unknown>)[] = [async () => memcached.stop(), async () => new Promise((resolve) => origin.close(resolve))];
  try {
    const nginx = await startSitecache(memcached, gzip, 0, async (prefix) => {
      const docroot = join(prefix, 'static');
      await mkdir(join(docroot, 'article'), { recursive: true });
      await writeFile(join(docroot, `${PATH}.html`), page);
      await writeFile(join(docroot, `${PATH}.html.gz`), gzipped);
      return (gzip ? gzipExtra : plainExtra)(ports, docroot, prefix);
    });
    stops.unshift(async () => nginx.stop());
    const micro = await startSitecache(memcached, gzip, 1);
    stops.unshift(async () => micro.stop());
    const graceOff = await startSitecache(memcached, gzip, 0, undefined, undefined, 0);
    stops.unshift(async () => graceOff.stop());
    const varnish = await startBenchVarnish(ports.origin, gzip);
    stops.unshift(async () => varnish.stop());
    const unlocked = args.on('BENCH_LOCK', false) ? await startSitecache(memcached, gzip, 1, undefined, (text) => text.replace(/proxy_cache_valid 200 1s;/g, 'proxy_cache_valid 200 1s;\n            proxy_cache_lock on;')) : undefined;
    if (unlocked) stops.unshift(async () => unlocked.stop());

    const client = gzip ? GZIP_CLIENT : [];
    const scenarios: Scenario[] = [
      { name: gzip ? 'gzip_static file, gzip client' : 'static file', port: ports.static, headers: client },
      { name: SITECACHE, port: nginx.port, headers: client },
      { name: GRACE_OFF, port: graceOff.port, headers: client },
      { name: MICROCACHE, port: micro.port, headers: client },
      ...(unlocked ? [{ name: 'generated config, microcache 1 s, with lock', port: unlocked.port, headers: client }] : []),
      { name: PROXY_CACHE, port: ports.proxyCache, headers: client },
      { name: VARNISH, port: varnish.port, headers: client },
      gzip
        ? { name: 'generated config, client without gzip (gunzip)', port: nginx.port, headers: [] }
        : { name: "blog's config (4k buffer, no keepalive)", port: ports.blog },
    ];
    for (const s of scenarios) await checkServed(s, gzip);
    console.log(`\n${title}: ${page.length} bytes${gzip ? ` (${gzipped.length} gzipped)` : ''}, wrk -t1 -c${CONNECTIONS} -d${SECONDS}s, ${ROUNDS} rounds${PIN ? `, servers on CPU ${SERVER_CPU}, wrk and memcached on CPU ${CLIENT_CPU}` : ''}`);
    const results = new Map<string, number[]>(scenarios.map((s) => [s.name, []]));
    // grace 0 runs right beside grace 600, first every other round, so each pair meets the same load.
    const graceOffScenario = scenarios.find((s) => s.name === GRACE_OFF) as Scenario;
    const rotating = scenarios.filter((s) => s !== graceOffScenario);
    for (let round = 0; round < ROUNDS; round++) {
      const order = rotating.flatMap((_, i) => {
        const s = rotating[(i + round) % rotating.length] as Scenario;
        if (s.name !== SITECACHE) return [s];
        return round % 2 === 0 ? [s, graceOffScenario] : [graceOffScenario, s];
      });
      for (const s of order) results.get(s.name)?.push(await measure(s));
    }
    // Varnish and proxy_cache each fetch the page once per variant; more means they did not cache it.
    if (originRequests > 8) throw new Error(`the origin answered ${originRequests} requests: Varnish or proxy_cache did not cache the page`);
    originRequests = 0;
    const base = median(results.get(SITECACHE) ?? []);
    for (const [name, figures] of results) {
      const against = name === SITECACHE ? '' : `  ${(median(figures) / base).toFixed(2)}x the generated config's hit`;
      console.log(`  ${name.padEnd(48)} ${figures.map((f) => `${(f / 1000).toFixed(1)}k`).join(', ')} req/s${against}`);
    }
    return results;
  } finally {
    for (const stop of stops) await stop();
  }
}

const GRACE = 600;
const SITECACHE = 'generated config, memcached hit';
const GRACE_OFF = 'generated config, grace 0, memcached hit';
const MICROCACHE = 'generated config, microcache 1 s';
const PROXY_CACHE = 'nginx proxy_cache hit';
const VARNISH = 'Varnish hit';

async function checkServed(s: Scenario, gzip: boolean): Promise<void> {
  const response = await sendRaw(s.port, `GET ${s.target ?? PATH} HTTP/1.1\r\nHost: ${HOST}\r\n${(s.headers ?? []).map((h) => `${h}\r\n`).join('')}Connection: close\r\n\r\n`);
  const expected = gzip && s.headers?.length ? gzipped : page;
  if (response.status !== 200 || !response.body.equals(expected)) {
    throw new Error(`${s.name} did not serve the page: ${response.status}, ${response.body.length} bytes`);
  }
}

async function measure(s: Scenario): Promise<number> {
  const headers = [`Host: ${HOST}`, ...(s.headers ?? [])].flatMap((h) => ['-H', h]);
  const args = ['-t1', `-c${CONNECTIONS}`, `-d${SECONDS}s`, ...headers, `http://127.0.0.1:${s.port}${s.target ?? PATH}`];
  const { stdout } = PIN ? await run('taskset', ['-c', String(CLIENT_CPU), wrk, ...args]) : await run(wrk, args);
  const match = /Requests\/sec:\s+([\d.]+)/.exec(stdout);
  if (!match) throw new Error(`wrk printed no rate:\n${stdout}`);
  if (/Non-2xx/.test(stdout)) throw new Error(`${s.name}: wrk saw errors:\n${stdout}`);
  return Number(match[1]);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

function makePage(): Buffer {
  // A news article's worth of HTML, about 45 KB, from a seeded word stream so that it compresses
  // like prose (about 4:1), not like a repeated string.
  const words = 'the a studio game patch review sequel players release trailer update console season map weapon story quest boss level online server launch price edition studio developer announced fans early access co-op mode'.split(' ');
  let state = 42;
  const next = (): number => {
    // xorshift32: deterministic, and exact in 32-bit integer arithmetic.
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return state >>> 0;
  };
  const paragraphs: string[] = [];
  for (let i = 0, size = 0; size < 44_000; i++) {
    const sentence = Array.from({ length: 40 + (next() % 40) }, () => words[next() % words.length]).join(' ');
    const paragraph = `<p id="p${i}" class="c${next() % 97}">${sentence} ${next().toString(36)}.</p>\n`;
    paragraphs.push(paragraph);
    size += paragraph.length;
  }
  return Buffer.from(`<!doctype html><html><head><meta charset="utf-8"><title>Benchmark</title></head><body>\n${paragraphs.join('')}</body></html>\n`);
}

// The same origin page through nginx's own proxy_cache (files in the page cache), as issue 13 compares.
const proxyCacheServer = (ports: ExtraServers, prefix: string): string => `
    proxy_cache_path ${prefix}/proxy_cache keys_zone=bench_proxy_cache:1m;
    server {
        listen 127.0.0.1:${ports.proxyCache};
        location / {
            proxy_pass http://127.0.0.1:${ports.origin};
            proxy_cache bench_proxy_cache;
            proxy_cache_valid 200 1h;
        }
    }
`;

const plainExtra = (ports: ExtraServers, docroot: string, prefix: string): string => `
    server {
        listen 127.0.0.1:${ports.static};
        root ${docroot};
        location / { default_type text/html; try_files $uri.html =404; }
    }
    server {
        listen 127.0.0.1:${ports.blog};
        location / {
            set_md5 $memcached_key "https://$host$request_uri";
            default_type text/html;
            memcached_pass ${ports.memcached};
        }
    }
${proxyCacheServer(ports, prefix)}`;

const gzipExtra = (ports: ExtraServers, docroot: string, prefix: string): string => `
    server {
        listen 127.0.0.1:${ports.static};
        root ${docroot};
        gzip_static on;
        location / { default_type text/html; try_files $uri.html =404; }
    }
${proxyCacheServer(ports, prefix)}`;

/** Hits through one nginx per way of computing the key, with and without ignoreParams. */
async function keyGroup(): Promise<Map<string, number[]>> {
  const memcached = await startMemcached({ memoryMb: 64, unixSocket: args.on('BENCH_UNIX', false) });
  // The tracked URI has the key of the plain one: one stored page serves both.
  await memcachedSet(memcached.address, key, page, 0);
  const ways: [string, RenderOptions, boolean][] = [
    ['set_misc, no ignoreParams', { md5: 'set_misc' }, false],
    ['set_misc + lua', { md5: 'set_misc', normalize: 'lua' }, true],
    ['set_misc + njs', { md5: 'set_misc', normalize: 'njs' }, true],
    ['lua, no ignoreParams', { md5: 'lua' }, false],
    ['lua', { md5: 'lua' }, true],
    ['njs, no ignoreParams', { md5: 'njs' }, false],
    ['njs', { md5: 'njs' }, true],
  ];
  const servers: NginxServer[] = [];
  const scenarios: Scenario[] = [];
  try {
    for (const [name, options, ignoring] of ways) {
      const nginx = await startNginx(async ({ port, prefix }) => {
        const config = parseConfig({ hosts: [HOST], listen: `127.0.0.1:${port}`, memcached: [memcached.address], app: ['127.0.0.1:9'], gzip: false, grace: 600, ...(ignoring ? {} : { ignoreParams: [] }) });
        const njsModulePath = join(prefix, 'sitecache-key.js');
        await writeFile(njsModulePath, renderNjsKeyModule(config));
        // Seven nginx on a loaded machine: a memcached answer may take longer than the 250 ms default.
        return renderNginxConf(config, { ...options, njsModulePath, memcachedTimeout: '2s', workerProcesses: 1, accessLog: false, standalone: true, prefix });
      });
      servers.push(nginx);
      scenarios.push({ name: `${name}, plain URI`, port: nginx.port });
      if (ignoring) scenarios.push({ name: `${name}, URI with 4 tracking parameters`, port: nginx.port, target: TRACKED });
    }
    for (const s of scenarios) {
      await checkServed(s, false).catch(async (error: Error) => {
        throw new Error(`${error.message}\n${(await Promise.all(servers.map((server) => server.errorLog()))).join('')}`);
      });
    }
    console.log(`\nthe key with ignoreParams: ${page.length} bytes, plain and ${TRACKED.slice(PATH.length)}, wrk -t1 -c${CONNECTIONS} -d${SECONDS}s, ${ROUNDS} rounds, one nginx per way`);
    const results = new Map<string, number[]>(scenarios.map((s) => [s.name, []]));
    for (let round = 0; round < ROUNDS; round++) {
      const order = scenarios.map((_, i) => scenarios[(i + round) % scenarios.length] as Scenario);
      for (const s of order) results.get(s.name)?.push(await measure(s));
    }
    for (const [name, figures] of results) console.log(`  ${name.padEnd(56)} ${figures.map((f) => `${(f / 1000).toFixed(1)}k`).join(', ')} req/s`);
    return results;
  } finally {
    await Promise.all(servers.map((server) => server.stop()));
    await memcached.stop();
  }
}

async function main(): Promise<void> {
  console.log(`bench:hit  node ${process.version}, nginx ${(await run(requireBinary('nginx'), ['-v'])).stderr.trim()}`);
  const plain = await group('plain page', false);
  const gz = await group('gzip page', true);

  const ratio = (results: Map<string, number[]>, a: string, b: string): number => median(results.get(a) ?? []) / median(results.get(b) ?? []);
  console.log("\nmedian ratios against Varnish's hit in the same run (target >= 0.90):");
  for (const [label, results] of [['plain', plain], ['gzip', gz]] as const) {
    for (const name of [SITECACHE, MICROCACHE]) {
      const r = ratio(results, name, VARNISH);
      console.log(`  ${`${name}, ${label}`.padEnd(48)} ${r.toFixed(2)}x  ${r >= 0.9 ? 'MET' : 'NOT MET'}`);
    }
  }
  console.log(`\nthe hit path with grace ${GRACE} against grace 0, measured back to back in each round (issue 9: no slower, ratio >= 1.00 within noise):`);
  for (const [label, results] of [['plain', plain], ['gzip', gz]] as const) {
    const on = results.get(SITECACHE) ?? [];
    const off = results.get(GRACE_OFF) ?? [];
    const pairs = on.map((f, i) => `${(f / 1000).toFixed(1)}k/${((off[i] ?? 0) / 1000).toFixed(1)}k`).join(', ');
    const byRound = median(on.map((f, i) => f / (off[i] ?? f)));
    console.log(`  ${label.padEnd(6)} grace ${GRACE} ${(median(on) / 1000).toFixed(1)}k, grace 0 ${(median(off) / 1000).toFixed(1)}k req/s (medians; rounds ${pairs})`);
    console.log(`  ${''.padEnd(6)} ratio of the medians ${ratio(results, SITECACHE, GRACE_OFF).toFixed(2)}x, median of the rounds' ratios ${byRound.toFixed(2)}x`);
  }
  if (!args.on('BENCH_KEYS', true)) return;

  const keys = await keyGroup();
  console.log('\nmedian ratios against the same md5 backend without ignoreParams, plain URI:');
  for (const [way, base] of [
    ['set_misc + lua', 'set_misc'],
    ['set_misc + njs', 'set_misc'],
    ['lua', 'lua'],
    ['njs', 'njs'],
  ] as const) {
    for (const uri of ['plain URI', 'URI with 4 tracking parameters']) {
      console.log(`  ${`${way}, ${uri}`.padEnd(56)} ${ratio(keys, `${way}, ${uri}`, `${base}, no ignoreParams, plain URI`).toFixed(2)}x`);
    }
  }
}

main().catch((error: Error) => {
  console.error(error.message);
  process.exitCode = 1;
});
