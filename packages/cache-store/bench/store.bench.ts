/**
 * `pnpm bench:store`: ratios of two rates measured side by side in this one run (rounds alternate
 * which side goes first; the median of each side is compared).
 *   miss path   the same app alone and behind pageCache, every request a new 42 KB page that is
 *               stored, gzip off and on, at renders of 0.09 ms, 1.8 ms and 20 ms (targets >= 0.75,
 *               0.9 and 0.98). Each side runs in a process of its own (bench/side.ts), which counts
 *               its own full (mark-compact) and young-generation collections from perf_hooks' 'gc'
 *               entries (one per collection, exact, and no parsing of --trace-gc's stdout, which C
 *               buffers out of step with the rounds) and samples process.memoryUsage().arrayBuffers
 *               every 20 ms for its peak. The app hands Node what Express's res.send does: a Buffer
 *               for a string of 1,000+ characters, with its Content-Length.
 *               A render is template passes (0.05-0.09 ms of CPU each, calibrated at the start). The
 *               20 ms render is CPU: the worst case for the cache, whose work per page is then the
 *               largest share it can be of a 20 ms page; it is the row the 0.98 target is for. A page
 *               waiting 20 ms for its database spends that time idle, where the cache's CPU costs
 *               nothing and only the latency it adds (the claim's round trip before the render) shows:
 *               printed too, as "20 ms wait" (0.09 ms of CPU after a 20 ms setTimeout).
 *               Each row also prints CPU per request alone / cached: what the ratio would be if
 *               each side had a core to itself, steadier than the rates when other work shares the
 *               machine (for the wait row it is not a throughput ratio: there the app idles).
 *   writer      puts per second of 42 KB pages, PageStore against a minimal raw-socket writer
 *   hits        serveFromCache hits against the app answering from an in-memory Buffer
 *   grace       the cost of the stale copy (config.grace: a second set per page), grace off against on,
 *               on the miss path (0.09 ms render) and in the writer
 * The 20 ms CPU row runs wrk with 4 connections for three times the seconds (see its row).
 * `--miss` runs the miss-path rows alone (BENCH_RENDERS=0.09,1.8,20cpu,20wait picks among them), `--grace` the grace rows alone (about two minutes each with
 * the defaults), `--smoke` one short round of a row of each kind, to check the bench still works
 * (its figures mean nothing). BENCH_ROUNDS (default 3) and BENCH_SECONDS (default 5) set the rounds and
 * their length; BENCH_PASS_MS pins the cost of a template pass (ms of CPU) to compare runs with the
 * same renders, rather than calibrate it; BENCH_TRACE_GC=<dir> also runs each side with --trace-gc into <dir>/<row>-<side>.log
 * and prints the Mark-Compact and Scavenge lines counted there (the whole process, start-up included).
 */
import { execFile, fork, type ChildProcess } from 'node:child_process';
import { createServer, type RequestListener, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { availableParallelism, loadavg } from 'node:os';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cacheKey } from '@sitecache/cache-key';
import { parseConfig, type SitecacheConfig } from '@sitecache/config';
import { benchArgs, makeTempDir, requireBinary, startMemcached, type MemcachedServer } from '@sitecache/test-services';
import { pageCache } from '../src/index.js';
import { passMs, renderPage, type RenderCost } from './app.js';
import { putRate } from './put-rate.js';
import type { RoundFigures, SideMessage, SideSpec } from './side.js';

/** The miss-path rows, by the names BENCH_RENDERS picks them with. */
const RENDERS = ['0.09', '1.8', '20cpu', '20wait'];
const args = benchArgs({
  command: 'pnpm bench:store',
  about: `
The miss path: the same app alone and behind pageCache, every request a new 42 KB page that is
stored, gzip off and on, at renders of 0.09 ms, 1.8 ms and 20 ms (CPU, and a 20 ms database wait);
targets >= 0.75, 0.9 and 0.98. Then puts per second against a raw-socket writer, serveFromCache
hits, and the cost of grace. Each pair runs side by side in alternating rounds; medians compared.`,
  flags: [
    { name: '--miss', about: 'the miss-path rows only' },
    { name: '--grace', about: 'the grace rows only' },
    { name: '--smoke', about: 'one short round of a row of each kind: checks the bench still runs (its figures mean nothing)' },
  ],
  settings: [
    { name: 'BENCH_ROUNDS', kind: 'count', default: '3', about: 'rounds' },
    { name: 'BENCH_SECONDS', kind: 'count', default: '5', about: 'seconds per side and round' },
    { name: 'BENCH_RENDERS', kind: 'list', choices: RENDERS, default: RENDERS.join(','), about: 'the miss-path rows to run, comma-separated' },
    { name: 'BENCH_PASS_MS', kind: 'number', zero: true, default: '0', about: 'ms of CPU a template pass costs, to compare runs with the same renders (0: calibrated here)' },
    { name: 'BENCH_TRACE_GC', default: 'off', about: 'a folder: also run each side with --trace-gc into DIR/ROW-SIDE.log and count its collections' },
  ],
});
const SMOKE = args.has('--smoke');
const GRACE_ONLY = args.has('--grace');
const MISS_ONLY = args.has('--miss');
const ROUNDS = SMOKE ? 1 : args.number('BENCH_ROUNDS', 3);
const SECONDS = SMOKE ? 2 : args.number('BENCH_SECONDS', 5);
const TRACE_DIR = args.text('BENCH_TRACE_GC');
const CHOSEN = args.list('BENCH_RENDERS');
const CONNECTIONS = 32;
const HOST = '127.0.0.1';
const SIDE_SCRIPT = fileURLToPath(new URL('./side.ts', import.meta.url));

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;
const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');
const mb = (bytes: number): string => (bytes / 1024 / 1024).toFixed(1);

async function listen(handler: RequestListener): Promise<Server & { port: number }> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  return Object.assign(server, { port: (server.address() as AddressInfo).port });
}

async function close(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
}

/** How wrk loads a side: connections and seconds. */
interface Load {
  readonly connections: number;
  readonly seconds: number;
}

const LOAD: Load = { connections: CONNECTIONS, seconds: SECONDS };

/** Requests per second wrk measures against `port`; with `script`, each request its own path. */
async function wrk(port: number, script?: string, load: Load = LOAD): Promise<number> {
  // A request waits for the ones ahead of it: 32 of 20 ms renders is 640 ms, past wrk's 2 s at times.
  const args = ['-t1', `-c${load.connections}`, `-d${load.seconds}s`, '--timeout', '10s'];
  if (script) args.push('-s', script);
  args.push(`http://${HOST}:${port}/article`);
  const output = await new Promise<string>((resolve, reject) =>
    execFile(requireBinary('wrk'), args, { timeout: (load.seconds + 30) * 1000 }, (error, stdout) => (error ? reject(error) : resolve(stdout))),
  );
  if (/Non-2xx|Socket errors/.test(output)) throw new Error(`wrk saw failed requests:\n${output}`);
  const match = /Requests\/sec:\s+([\d.]+)/.exec(output);
  if (!match) throw new Error(`no Requests/sec in wrk's output:\n${output}`);
  return Number(match[1]);
}

/** A side's process: the app alone or behind pageCache, answering on its own port. */
class Side {
  private readonly waiting: ((message: SideMessage) => void)[] = [];

  private constructor(
    private readonly child: ChildProcess,
    readonly port: number,
  ) {
    child.on('message', (message: SideMessage) => this.waiting.shift()?.(message));
  }

  static async start(spec: SideSpec, traceFile: string | undefined): Promise<Side> {
    const child = fork(SIDE_SCRIPT, [JSON.stringify(spec)], {
      // tsx's loader comes with process.execArgv.
      execArgv: [...process.execArgv, ...(traceFile ? ['--trace-gc'] : [])],
      stdio: ['ignore', traceFile ? 'pipe' : 'inherit', 'inherit', 'ipc'],
    });
    if (traceFile) child.stdout?.pipe(createWriteStream(traceFile));
    const ready = await new Promise<SideMessage>((resolve, reject) => {
      child.once('message', resolve);
      child.once('exit', (code) => reject(new Error(`a bench side exited (${code}) before it listened`)));
    });
    if (ready.type !== 'ready') throw new Error(`a bench side said ${ready.type} before it listened`);
    return new Side(child, ready.port);
  }

  private ask(type: string): Promise<SideMessage> {
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      this.child.send({ type });
    });
  }

  /** Requests per second over one round of wrk, and what the process did meanwhile. */
  async round(script: string, load: Load): Promise<[number, RoundFigures]> {
    await this.ask('start');
    const rate = await wrk(this.port, script, load);
    const answer = await this.ask('stop');
    if (answer.type !== 'round') throw new Error(`a bench side answered ${answer.type} to stop`);
    return [rate, answer.figures];
  }

  async stop(): Promise<void> {
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.send({ type: 'exit' });
    await exited;
  }
}

/** One side's medians over the rounds. */
interface SideResult {
  readonly rate: number;
  readonly major: number;
  readonly minor: number;
  readonly gcMs: number;
  readonly peakArrayBuffers: number;
  /** CPU µs per request. */
  readonly cpu: number;
  /** Full collections per 1,000 requests. */
  readonly majorPerK: number;
  /** Share of the pages stored (with pageCache), over the whole row. */
  readonly stored?: number;
  /** The reasons pages were not stored, with their counts, over the whole row. */
  readonly notStored?: string;
  readonly errors?: number;
  /** From --trace-gc's log (BENCH_TRACE_GC), over the whole process. */
  readonly traced?: { markCompact: number; scavenge: number };
}

/** Two sides measured in alternating rounds, each request a new path. */
async function sideBySide(name: string, specs: [SideSpec, SideSpec], scriptDir: string, load: Load = LOAD): Promise<[SideResult, SideResult]> {
  const slug = name.replace(/[^a-z0-9]+/gi, '-');
  const traceFiles = specs.map((_, i) => (TRACE_DIR ? join(TRACE_DIR, `${slug}-${i === 0 ? 'a' : 'b'}.log`) : undefined));
  const sides = await Promise.all(specs.map((spec, i) => Side.start(spec, traceFiles[i])));
  const rates: [number[], number[]] = [[], []];
  const figures: [RoundFigures[], RoundFigures[]] = [[], []];
  try {
    for (let round = 0; round < ROUNDS; round++) {
      // Each side goes first every other round: the first wrk of a round meets a colder machine.
      for (const i of round % 2 === 0 ? ([0, 1] as const) : ([1, 0] as const)) {
        // A new path per request: no request joins another's render, every one stores its page.
        const script = join(scriptDir, `${slug}-${i}-${round}.lua`);
        await writeFile(script, `local n = 0\nrequest = function()\n  n = n + 1\n  return wrk.format("GET", "/${slug}/${i}/${round}/" .. n)\nend\n`);
        const [rate, figure] = await (sides[i] as Side).round(script, load);
        rates[i].push(rate);
        figures[i].push(figure);
      }
    }
  } finally {
    await Promise.all(sides.map((side) => side.stop()));
  }
  return (await Promise.all(
    ([0, 1] as const).map(async (i): Promise<SideResult> => {
      const rounds = figures[i];
      const last = rounds[rounds.length - 1] as RoundFigures;
      const of = (pick: (figure: RoundFigures) => number): number => median(rounds.map(pick));
      let stored: Partial<SideResult> = {};
      if (last.stored !== undefined) {
        const skipped = Object.entries(last.skipped ?? {}).filter(([, count]) => count > 0);
        const notStored = skipped.reduce((sum, [, count]) => sum + count, 0);
        stored = {
          stored: last.stored / Math.max(1, last.stored + notStored),
          notStored: skipped.map(([reason, count]) => `${reason} ${fmt(count)}`).join(', '),
          errors: last.errors ?? 0,
        };
      }
      const traceFile = traceFiles[i];
      const traced = traceFile ? await countTrace(traceFile) : undefined;
      return {
        rate: median(rates[i]),
        major: of((f) => f.major),
        minor: of((f) => f.minor),
        gcMs: of((f) => f.gcMs),
        peakArrayBuffers: of((f) => f.peakArrayBuffers),
        cpu: of((f) => f.cpuUs / Math.max(1, f.requests)),
        majorPerK: of((f) => (f.major * 1000) / Math.max(1, f.requests)),
        ...stored,
        ...(traced ? { traced } : {}),
      };
    }),
  )) as [SideResult, SideResult];
}

async function countTrace(file: string): Promise<{ markCompact: number; scavenge: number }> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return { markCompact: (text.match(/Mark-Compact/g) ?? []).length, scavenge: (text.match(/Scavenge/g) ?? []).length };
}

/** The figures of both sides, "a / b". */
function pair(a: SideResult, b: SideResult): string {
  const both = (pick: (side: SideResult) => string): string => `${pick(a)} / ${pick(b)}`;
  const traced = a.traced && b.traced ? `; --trace-gc whole process: Mark-Compact ${both((s) => fmt(s.traced?.markCompact ?? 0))}, Scavenge ${both((s) => fmt(s.traced?.scavenge ?? 0))}` : '';
  return (
    `full GCs ${both((s) => fmt(s.major))} per round (${both((s) => s.majorPerK.toFixed(2))} per 1,000 requests), scavenges ${both((s) => fmt(s.minor))}, GC ${both((s) => fmt(s.gcMs))} ms per round; ` +
    `peak arrayBuffers ${both((s) => mb(s.peakArrayBuffers))} MB; CPU ${both((s) => fmt(s.cpu))} us/request${traced}`
  );
}

function storedText(side: SideResult): string {
  const stored = `${((side.stored ?? 0) * 100).toFixed(1)}% stored`;
  const errors = side.errors ? `, ${fmt(side.errors)} memcached errors` : '';
  return side.notStored ? `${stored}: not stored ${side.notStored}${errors}` : `${stored}${errors}`;
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
  const both = (rows: [number, number][]): [number, number] => [median(rows.map((r) => r[0])), median(rows.map((r) => r[1]))];
  return [median(raw), both(without), both(withGrace)];
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

/** A miss-path row: its render, its cost in template passes and idle ms, its target, how wrk loads it. */
interface MissRow {
  /** Its name in BENCH_RENDERS. */
  readonly name: string;
  readonly label: string;
  readonly cost: RenderCost;
  /** The ratio it should reach; none for a row that measures something else (the wait row: latency, not throughput). */
  readonly target?: number;
  readonly load: Load;
}

async function main(): Promise<void> {
  const memcached = await startMemcached({ memoryMb: 1024 });
  const dir = await makeTempDir('sitecache-bench');
  if (TRACE_DIR) await mkdir(TRACE_DIR, { recursive: true });
  const config = (gzip: boolean, grace = 0): SitecacheConfig =>
    parseConfig({ hosts: [HOST], memcached: [memcached.address], app: ['127.0.0.1:9'], gzip, grace });
  const failures: string[] = [];
  try {
    const pinnedPass = args.number('BENCH_PASS_MS', 0);
    const pass = pinnedPass || passMs();
    const passes = (ms: number): number => Math.max(1, Math.round(ms / pass));
    const rows: MissRow[] = [
      { name: '0.09', label: '0.09 ms', cost: { passes: passes(0.09), waitMs: 0 }, target: 0.75, load: LOAD },
      { name: '1.8', label: '1.8 ms', cost: { passes: passes(1.8), waitMs: 0 }, target: 0.9, load: LOAD },
      // One thread renders: 4 connections keep it busy. Fewer requests in flight when wrk stops, and
      // three times the seconds, keep a round's count of 20 ms requests to within 1%.
      { name: '20cpu', label: '20 ms CPU', cost: { passes: passes(20), waitMs: 0 }, target: 0.98, load: { connections: 4, seconds: SECONDS * 3 } },
      // No target: the app idles here, so the ratio shows the latency the claim adds, not the cache's CPU (the header).
      { name: '20wait', label: '20 ms wait', cost: { passes: 1, waitMs: 20 }, load: LOAD },
    ];
    const [load1, load5] = loadavg();
    console.log(
      `sitecache cache-store benchmarks${SMOKE ? ' (--smoke: one short round, the figures mean nothing)' : ''}: ${new Date().toISOString()}, ` +
        `node ${process.version}, ${availableParallelism()} cores, load average ${load1?.toFixed(1)} / ${load5?.toFixed(1)}, ` +
        `wrk -t1 -c${CONNECTIONS}, ${ROUNDS} rounds of ${SECONDS} s per side, alternating; medians; a 42,000-byte page\n` +
        `a template pass costs ${pass.toFixed(3)} ms of CPU ${pinnedPass ? '(BENCH_PASS_MS)' : 'here'}: ` +
        rows.map((row) => `${row.label} = ${row.cost.passes} pass${row.cost.passes === 1 ? '' : 'es'}${row.cost.waitMs ? ` after ${row.cost.waitMs} ms idle` : ''}`).join(', ') +
        '\nper side below: "app alone / app + pageCache", per round of wrk; full GCs are mark-compacts\n',
    );
    const cached = (gzip: boolean, grace = 0): SideSpec['config'] => ({ hosts: [HOST], memcached: [memcached.address], app: ['127.0.0.1:9'], gzip, grace });
    if (!GRACE_ONLY) {
      const selected = SMOKE ? rows.slice(0, 1) : rows.filter((row) => CHOSEN === undefined || CHOSEN.includes(row.name));
      for (const row of selected) {
        for (const gzip of [false, true]) {
          const name = `miss ${row.label} gzip ${gzip ? 'on' : 'off'}`;
          const [alone, withCache] = await sideBySide(name, [{ cost: row.cost }, { cost: row.cost, config: cached(gzip) }], dir.path, row.load);
          const ratio = withCache.rate / alone.rate;
          // What the ratio would be if each side had a core to itself: steadier on a shared machine.
          const cpuRatio = alone.cpu / withCache.cpu;
          console.log(
            `miss path, render ${row.label}, gzip ${gzip ? 'on ' : 'off'}${row.load === LOAD ? '' : ` (wrk -c${row.load.connections}, ${row.load.seconds} s)`}: app alone ${fmt(alone.rate)} req/s, app + pageCache ${fmt(withCache.rate)} req/s ` +
              `(${storedText(withCache)}) -> ratio ${ratio.toFixed(2)} (${row.target === undefined ? '' : `target >= ${row.target}; `}CPU per request alone / cached ${cpuRatio.toFixed(2)})\n    ${pair(alone, withCache)}`,
          );
          if (SMOKE && !(withCache.stored && withCache.stored > 0)) failures.push(`${name}: no page stored`);
        }
      }
    }
    if (!GRACE_ONLY && !MISS_ONLY) {
      const [raw, ours] = await writer(memcached, config(false));
      console.log(`writer: raw-socket set ${fmt(raw)} puts/s, PageStore.put ${fmt(ours)} puts/s -> ratio ${(ours / raw).toFixed(2)} (target >= 0.7)`);
      if (SMOKE && !(ours > 0)) failures.push('writer: no page stored');
      const [memory, fromCache] = await hits(config(false));
      console.log(`hits: app from an in-memory Buffer ${fmt(memory)} req/s, serveFromCache ${fmt(fromCache)} req/s -> ratio ${(fromCache / memory).toFixed(2)}`);
    }
    if (!MISS_ONLY) {
      for (const gzip of SMOKE ? [true] : [false, true]) {
        const cost = (rows[0] as MissRow).cost;
        const [off, on] = await sideBySide(`grace gzip ${gzip ? 'on' : 'off'}`, [{ cost, config: cached(gzip) }, { cost, config: cached(gzip, 300) }], dir.path);
        console.log(
          `grace, miss path, gzip ${gzip ? 'on ' : 'off'}, render 0.09 ms: app + pageCache grace off ${fmt(off.rate)} req/s (${fmt(off.cpu)} us CPU/request), ` +
            `grace on (a stale copy too) ${fmt(on.rate)} req/s (${fmt(on.cpu)} us CPU/request) -> ratio ${(on.rate / off.rate).toFixed(2)}\n    ${pair(off, on)}`,
        );
      }
      if (!SMOKE) {
        const [raw, [off, offCpu], [on, onCpu]] = await writerGrace(memcached, config(false), config(false, 300));
        console.log(
          `grace, writer: raw-socket set ${fmt(raw)} puts/s, PageStore.put grace off ${fmt(off)} puts/s (${fmt(offCpu)} us CPU/put, ratio to raw ${(off / raw).toFixed(2)}), ` +
            `grace on ${fmt(on)} puts/s (${fmt(onCpu)} us CPU/put, two sets per page) -> ratio on/off ${(on / off).toFixed(2)}`,
        );
      }
    }
  } finally {
    await dir.remove();
    await memcached.stop();
  }
  if (failures.length > 0) throw new Error(`the smoke run found: ${failures.join('; ')}`);
}

main().catch((error: Error) => {
  console.error(`bench:store failed: ${error.stack ?? error.message}`);
  process.exitCode = 1;
});
