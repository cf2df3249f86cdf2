/**
 * `pnpm bench:tags`: what tags cost, measured in this one run against 3 memcached servers.
 *   stores   pages stored per second by PageStore.put with 0, 5 and 20 tags per page (42 KB pages,
 *            gzip off so the index's share is not hidden behind zlib), rounds alternating, medians;
 *            the ratio of each to the untagged rate of the same run (target at 5 tags >= 0.8)
 *   purge    the time store.purgeTags takes to purge one tag carried by 1,000 and by 100,000 pages
 *            spread over the 3 servers (grace off and on: with grace each page has a stale copy)
 * `--help` lists the BENCH_* settings (rounds and their length); `--smoke` runs one round of 1 s
 * and purges of 200 and 2,000 pages, to check it still works.
 */
import { availableParallelism } from 'node:os';
import { parseConfig, type SitecacheConfig } from '@sitecache/config';
import { benchArgs, startMemcached, type MemcachedServer } from '@sitecache/test-services';
import { createPageStore } from '../src/index.js';
import { putRate } from './put-rate.js';

const args = benchArgs({
  command: 'pnpm bench:tags',
  about: `
What tags cost, against 3 memcached servers: pages stored per second with 0, 5 and 20 tags per page
(ratio to untagged in the same run; target at 5 tags >= 0.8), and the time to purge one tag
carried by 1,000 and by 100,000 pages, grace off and on.`,
  flags: [{ name: '--smoke', about: 'one round of 1 s and purges of 200 and 2,000 pages: checks it still runs' }],
  settings: [
    { name: 'BENCH_ROUNDS', kind: 'count', default: '3', about: 'rounds of the stores part' },
    { name: 'BENCH_SECONDS', kind: 'count', default: '5', about: 'seconds per tag count and round' },
  ],
});
const SMOKE = args.has('--smoke');
const ROUNDS = args.number('BENCH_ROUNDS', SMOKE ? 1 : 3);
const SECONDS = args.number('BENCH_SECONDS', SMOKE ? 1 : 5);
const PURGE_COUNTS = SMOKE ? [200, 2_000] : [1_000, 100_000];
const IN_FLIGHT = 32;
const HOST = 'www.example.test';
const TAG_COUNTS = [0, 5, 20] as const;

/** A 42 KB article, as the store bench writes. */
function renderPage(url: string): Buffer {
  const parts: string[] = [`<!doctype html><html><head><title>${url}</title></head><body><main>`];
  for (let i = 0; parts.length < 420; i++) parts.push(`<p id="p${i}">Paragraph ${i} of the article at ${url}: caf\u00e9 lorem ipsum dolor sit amet.</p>`);
  const html = `${parts.join('\n')}</main></body></html>`;
  return Buffer.from(html + ' '.repeat(Math.max(0, 42_000 - Buffer.byteLength(html))));
}

/** The tags of page `i`: its own, its section, tag pages, home, as a news site's article carries them. */
function tagsOf(i: number, count: number): string[] {
  const pool = [`article:${i}`, `section:${i % 12}`, 'home', `author:${i % 40}`];
  for (let k = 0; pool.length < count; k++) pool.push(`tag:${(i * 7 + k * 31) % 500}`);
  return pool.slice(0, count);
}

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;
const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');

/** Stores `count` small pages carrying `tag` (and one tag of their own), then times one purge of the tag. */
async function purgeTime(config: SitecacheConfig, count: number, tag: string): Promise<{ ms: number; purged: number; perServer: string }> {
  const store = createPageStore(config, { logger: { warn: () => undefined }, maxPendingPerServer: 256 });
  try {
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < count) {
        const i = next++;
        const result = await store.put(`https://${HOST}/${tag}/${i}`, `<p>${tag} ${i}</p>`, { tags: [tag, `own:${tag}:${i}`] });
        if (!result.stored) throw new Error(`page ${i} not stored: ${result.reason}`);
      }
    };
    await Promise.all(Array.from({ length: 64 }, worker));
    const start = performance.now();
    const purge = await store.purgeTags(tag);
    const ms = performance.now() - start;
    if (purge.purged !== count || purge.servers.some((s) => s.failed > 0)) throw new Error(`purged ${purge.purged} of ${count}: ${JSON.stringify(purge.servers)}`);
    return { ms, purged: purge.purged, perServer: purge.servers.map((s) => fmt(s.purged)).join(' / ') };
  } finally {
    await store.close();
  }
}

async function main(): Promise<void> {
  const servers: MemcachedServer[] = [];
  try {
    for (let i = 0; i < 3; i++) servers.push(await startMemcached({ memoryMb: 1024 }));
    const config = (grace: number): SitecacheConfig =>
      parseConfig({ hosts: [HOST], memcached: servers.map((s) => s.address), app: ['127.0.0.1:9'], gzip: false, grace });
    console.log(
      `sitecache tag benchmarks: node ${process.version}, ${availableParallelism()} cores, 3 memcached servers, ` +
        `${ROUNDS} rounds of ${SECONDS} s per tag count, alternating; medians; ${IN_FLIGHT} puts in flight; a 42,000-byte page, gzip off\n`,
    );
    const pages = Array.from({ length: 1000 }, (_, i) => {
      const url = `https://${HOST}/bench/${i}`;
      return { url, body: renderPage(url) };
    });
    const rows = new Map<number, [number, number][]>(TAG_COUNTS.map((n) => [n, []]));
    for (let round = 0; round < ROUNDS; round++) {
      for (const tags of TAG_COUNTS) rows.get(tags)?.push(await putRate(config(0), pages, IN_FLIGHT, SECONDS * 1000, (i) => (tags === 0 ? {} : { tags: tagsOf(i, tags) })));
    }
    const rate = (tags: number): number => median((rows.get(tags) ?? []).map((r) => r[0]));
    const cpu = (tags: number): number => median((rows.get(tags) ?? []).map((r) => r[1]));
    for (const tags of TAG_COUNTS) {
      const target = tags === 5 ? ' (target >= 0.8)' : '';
      console.log(`stores, ${String(tags).padStart(2)} tags/page: ${fmt(rate(tags))} pages/s, ${fmt(cpu(tags))} us CPU/put -> ratio to untagged ${(rate(tags) / rate(0)).toFixed(2)}${target}`);
    }
    console.log('');
    for (const grace of [0, 300]) {
      for (const count of PURGE_COUNTS) {
        const { ms, purged, perServer } = await purgeTime(config(grace), count, `purge-${grace}-${count}`);
        console.log(
          `purge by tag, grace ${grace === 0 ? 'off' : 'on '}: ${fmt(purged)} pages (${perServer} per server) in ${fmt(ms)} ms -> ${fmt((purged * 1000) / ms)} pages/s`,
        );
      }
    }
  } finally {
    for (const server of servers) await server.stop();
  }
}

main().catch((error: Error) => {
  console.error(`bench:tags failed: ${error.stack ?? error.message}`);
  process.exitCode = 1;
});
