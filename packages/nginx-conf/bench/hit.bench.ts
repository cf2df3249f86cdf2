// pnpm bench:hit: a 40-50 KB page served as a hit by the generated config, against the same nginx
// serving the same bytes as a static file, and against the config as the original blog post wrote
// it (default 4k buffer, memcached_pass to an address, no keepalive). Plain and gzip. wrk on
// loopback; every scenario runs in each round, in rotating order, inside one nginx with one worker,
// so the ratios compare like with like. Target: generated hits >= 0.9x the static file.
// Then the cost of ignoreParams on the hit path: for each way nginx computes the key, hits on the
// plain URI and on one with tracking parameters, against the same backend without ignoreParams
// (one nginx with one worker per way, all in rotating rounds).
import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { cacheKey } from '@sitecache/cache-key';
import { parseConfig } from '@sitecache/config';
import { GZIP_FLAG } from '@sitecache/nginx-model';
import { renderNginxConf, renderNjsKeyModule, type RenderOptions } from '@sitecache/nginx-conf';
import { freePort, memcachedSet, requireBinary, sendRaw, startMemcached, startNginx, type NginxServer } from '@sitecache/test-services';

const run = promisify(execFile);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 4);
const CONNECTIONS = 32;
const PATH = '/article/benchmark-page';
const HOST = 'www.example.com';

const page = makePage();
const gzipped = gzipSync(page, { level: 9 });
const key = cacheKey(`https://${HOST}${PATH}`);
const wrk = requireBinary('wrk');

interface ExtraServers {
  static: number;
  blog: number;
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

async function group(title: string, gzip: boolean, extra: (servers: ExtraServers, docroot: string) => string, names: [string, string, string?]): Promise<Map<string, number[]>> {
  const memcached = await startMemcached({ memoryMb: 64, unixSocket: process.env.BENCH_UNIX === '1' });
  await memcachedSet(memcached.address, key, gzip ? gzipped : page, gzip ? GZIP_FLAG : 0);
  const ports = { static: await freePort(), blog: await freePort() };
  const options: RenderOptions = { workerProcesses: 1, accessLog: false };
  const nginx = await startNginx(async ({ port, prefix }) => {
    const docroot = join(prefix, 'static');
    await mkdir(join(docroot, 'article'), { recursive: true });
    await writeFile(join(docroot, `${PATH}.html`), page);
    await writeFile(join(docroot, `${PATH}.html.gz`), gzipped);
    // grace on: the stale copies' machinery is rendered, and must cost hits nothing.
    const config = parseConfig({ hosts: [HOST], listen: `127.0.0.1:${port}`, memcached: [memcached.address], app: ['127.0.0.1:9'], gzip, grace: 600 });
    const text = renderNginxConf(config, { ...options, standalone: true, prefix });
    // The comparison servers go inside the same http block, served by the same worker.
    return text.replace(/\}\s*$/, `${extra({ ...ports, memcached: memcached.address }, docroot)}}\n`);
  });
  try {
    const scenarios: Scenario[] = [
      { name: names[0], port: ports.static, headers: gzip ? ['Accept-Encoding: gzip'] : [] },
      { name: names[1], port: nginx.port, headers: gzip ? ['Accept-Encoding: gzip'] : [] },
      gzip ? { name: names[2] as string, port: nginx.port, headers: [] } : { name: names[2] as string, port: ports.blog },
    ];
    for (const s of scenarios) await checkServed(s, gzip);
    console.log(`\n${title}: ${page.length} bytes${gzip ? ` (${gzipped.length} gzipped)` : ''}, wrk -t1 -c${CONNECTIONS} -d${SECONDS}s, ${ROUNDS} rounds`);
    const results = new Map<string, number[]>(scenarios.map((s) => [s.name, []]));
    for (let round = 0; round < ROUNDS; round++) {
      const order = scenarios.map((_, i) => scenarios[(i + round) % scenarios.length] as Scenario);
      for (const s of order) results.get(s.name)?.push(await measure(s));
    }
    for (const [name, figures] of results) console.log(`  ${name.padEnd(44)} ${figures.map((f) => `${(f / 1000).toFixed(1)}k`).join(', ')} req/s`);
    return results;
  } finally {
    await nginx.stop();
    await memcached.stop();
  }
}

async function checkServed(s: Scenario, gzip: boolean): Promise<void> {
  const response = await sendRaw(s.port, `GET ${s.target ?? PATH} HTTP/1.1\r\nHost: ${HOST}\r\n${(s.headers ?? []).map((h) => `${h}\r\n`).join('')}Connection: close\r\n\r\n`);
  const expected = gzip && s.headers?.length ? gzipped : page;
  if (response.status !== 200 || !response.body.equals(expected)) {
    throw new Error(`${s.name} did not serve the page: ${response.status}, ${response.body.length} bytes`);
  }
}

async function measure(s: Scenario): Promise<number> {
  const headers = [`Host: ${HOST}`, ...(s.headers ?? [])].flatMap((h) => ['-H', h]);
  const { stdout } = await run(wrk, ['-t1', `-c${CONNECTIONS}`, `-d${SECONDS}s`, ...headers, `http://127.0.0.1:${s.port}${s.target ?? PATH}`]);
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

const plainExtra = (ports: ExtraServers, docroot: string): string => `
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
`;

const gzipExtra = (ports: ExtraServers, docroot: string): string => `
    server {
        listen 127.0.0.1:${ports.static};
        root ${docroot};
        gzip_static on;
        location / { default_type text/html; try_files $uri.html =404; }
    }
`;

/** Hits through one nginx per way of computing the key, with and without ignoreParams. */
async function keyGroup(): Promise<Map<string, number[]>> {
  const memcached = await startMemcached({ memoryMb: 64, unixSocket: process.env.BENCH_UNIX === '1' });
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
  const plain = await group('plain page', false, plainExtra, ['static file', 'generated config, memcached hit', "blog's config (4k buffer, no keepalive)"]);
  const gz = await group('gzip page', true, gzipExtra, ['gzip_static file, gzip client', 'generated config, gzip hit, gzip client', 'generated config, gzip hit, client without gzip (gunzip)']);

  const ratio = (results: Map<string, number[]>, a: string, b: string): number => median(results.get(a) ?? []) / median(results.get(b) ?? []);
  const plainRatio = ratio(plain, 'generated config, memcached hit', 'static file');
  const blogRatio = ratio(plain, "blog's config (4k buffer, no keepalive)", 'static file');
  const gzipRatio = ratio(gz, 'generated config, gzip hit, gzip client', 'gzip_static file, gzip client');
  const gunzipRatio = ratio(gz, 'generated config, gzip hit, client without gzip (gunzip)', 'gzip_static file, gzip client');
  console.log('\nmedian ratios against the static file served by the same nginx:');
  console.log(`  generated config, plain hit       ${plainRatio.toFixed(2)}x  (target >= 0.90) ${plainRatio >= 0.9 ? 'MET' : 'NOT MET'}`);
  console.log(`  blog's config, plain hit          ${blogRatio.toFixed(2)}x`);
  console.log(`  generated config, gzip hit        ${gzipRatio.toFixed(2)}x  (target >= 0.90) ${gzipRatio >= 0.9 ? 'MET' : 'NOT MET'}`);
  console.log(`  generated config, gunzip for client without gzip  ${gunzipRatio.toFixed(2)}x`);

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
