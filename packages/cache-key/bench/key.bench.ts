// pnpm bench:key: keys per second of requestKey against a bare crypto.createHash('md5') over the
// same key sources, measured side by side in alternating rounds of one run (the machine is noisy;
// the ratio is what counts). Target: requestKey at least 0.8x the bare md5.
// `--smoke` checks that the benchmark still runs (one short round) without judging the figure.
import { createHash } from 'node:crypto';
import { requestKey } from '@sitecache/cache-key';
import { benchArgs } from '@sitecache/test-services';

const config = { keyPrefix: '', scheme: 'https' };
const HOSTS = ['www.example.com', 'example.com', 'WWW.Example.com', 'www.example.com:8080', 'example.com.'];
const PATHS = ['/', '/article/1234-some-long-slug-for-a-news-story', '/tag/jeux-video?page=2', '/search?q=caf%C3%A9&sort=new', `/long/${'x'.repeat(200)}`];

const requests = HOSTS.flatMap((host) => PATHS.map((url) => ({ url, headers: { host } })));
// The bare baseline hashes the very string nginx hashes, already built: no parsing, no normalizing.
const sources = requests.map((req) => `https://${req.headers.host.toLowerCase().replace(/:\d+$/, '').replace(/\.$/, '')}${req.url}`);

const args = benchArgs({
  command: 'pnpm bench:key',
  about: `
Keys per second of requestKey against a bare md5 of the same key sources, in alternating rounds of
one run. Target: requestKey >= 0.8x the bare md5.`,
  flags: [{ name: '--smoke', about: 'one short round: checks the benchmark still runs, judges nothing' }],
  settings: [
    { name: 'BENCH_ROUNDS', kind: 'count', default: '7', about: 'rounds' },
    { name: 'BENCH_KEYS_PER_ROUND', kind: 'count', default: '200000', about: 'keys per side and round' },
  ],
});
const SMOKE = args.has('--smoke');
const ROUNDS = SMOKE ? 1 : args.number('BENCH_ROUNDS', 7);
const PER_ROUND = SMOKE ? 20_000 : args.number('BENCH_KEYS_PER_ROUND', 200_000);

function timeIt(each: (i: number) => string): number {
  let sink = 0;
  const started = process.hrtime.bigint();
  for (let i = 0; i < PER_ROUND; i++) sink += each(i).length;
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (sink !== PER_ROUND * 32) throw new Error('a key was not 32 hex digits');
  return PER_ROUND / seconds;
}

const bare = (i: number): string => createHash('md5').update(sources[i % sources.length] as string).digest('hex');
const ours = (i: number): string => requestKey(requests[i % requests.length] as (typeof requests)[number], config);

// Same answers first: a fast wrong key is worth nothing.
requests.forEach((_, i) => {
  if (bare(i) !== ours(i)) throw new Error(`requestKey and md5 disagree on ${JSON.stringify(requests[i])}`);
});
timeIt(bare);
timeIt(ours);

const ratios: number[] = [];
console.log(`bench:key  ${requests.length} distinct requests, ${PER_ROUND} keys per round, node ${process.version}`);
console.log('round  bare md5 keys/s  requestKey keys/s  ratio');
for (let round = 1; round <= ROUNDS; round++) {
  // Alternate which goes first, so neither always runs on a warmer or quieter machine.
  let b: number;
  let o: number;
  if (round % 2) {
    b = timeIt(bare);
    o = timeIt(ours);
  } else {
    o = timeIt(ours);
    b = timeIt(bare);
  }
  ratios.push(o / b);
  console.log(`${String(round).padStart(5)}  ${fmt(b).padStart(15)}  ${fmt(o).padStart(17)}  ${(o / b).toFixed(2)}`);
}
const median = [...ratios].sort((a, b) => a - b)[Math.floor(ratios.length / 2)] as number;
console.log(`median ratio requestKey / bare md5: ${median.toFixed(2)} (target >= 0.80) ${median >= 0.8 ? 'MET' : 'NOT MET'}`);
// A smoke run is too short to judge the target: it only shows the benchmark still works.
process.exitCode = SMOKE || median >= 0.8 ? 0 : 1;

function fmt(n: number): string {
  return `${(n / 1000).toFixed(0)}k`;
}
