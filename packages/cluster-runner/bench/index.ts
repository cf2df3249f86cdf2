/**
 * `pnpm bench:runner`: the figures issue 4 asks for, each measured side by side in this one run.
 *   overhead   2,000 no-op clusters at K=3: cluster-run against `xargs -P 3` and GNU parallel
 *              with --joblog (rounds alternate; the median of each is compared)
 *   big log    a 100,000-cluster job run whole in worker mode (the runner's peak RSS), then the
 *              same command again: the time to read the log and find every cluster done
 *   workers    1,000 clusters whose child takes 300 ms to start: --worker against a process per cluster
 * BENCH_ROUNDS, BENCH_CLUSTERS, BENCH_BIG_CLUSTERS and BENCH_STARTUP_CLUSTERS scale it down.
 */
import { execFile } from 'node:child_process';
import { rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeTempDir, requireBinary } from '@sitecache/test-services';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CLUSTERS = Number(process.env.BENCH_CLUSTERS ?? 2_000);
const BIG_CLUSTERS = Number(process.env.BENCH_BIG_CLUSTERS ?? 100_000);
const STARTUP_CLUSTERS = Number(process.env.BENCH_STARTUP_CLUSTERS ?? 1_000);
const JOBS = 3;
const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;
const secs = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
const mb = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

interface Timed {
  readonly ms: number;
  readonly stdout: string;
}

/** Runs a command to its end and times it; a non-zero exit is a broken benchmark. */
function timed(file: string, args: readonly string[], input?: string): Promise<Timed> {
  const began = performance.now();
  return new Promise((resolve, reject) => {
    const child = execFile(file, args, { maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${file} ${args.join(' ')} failed: ${error.message}\n${stderr}`));
      else resolve({ ms: performance.now() - began, stdout });
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

function clusterRun(args: readonly string[]): Promise<Timed> {
  return timed(process.execPath, [CLI, ...args]);
}

interface Summary {
  readonly ok: boolean;
  readonly done: number;
  readonly doneBefore: number;
  readonly scanMs: number;
  readonly runnerPeakRss: number;
  readonly durationMs: number;
}

async function overhead(dir: string): Promise<void> {
  const trueBin = requireBinary('true');
  const xargs = requireBinary('xargs');
  const parallel = requireBinary('parallel');
  const specs = Array.from({ length: CLUSTERS }, (_, i) => `${i + 1}/${CLUSTERS}\n`).join('');
  const sides: Record<'cluster-run' | 'xargs -P 3' | 'parallel --joblog', number[]> = {
    'cluster-run': [],
    'xargs -P 3': [],
    'parallel --joblog': [],
  };
  let runnerRss = 0;
  for (let round = 1; round <= ROUNDS; round++) {
    const log = join(dir, `noop-${round}.log`);
    const ours = await clusterRun(['--clusters', String(CLUSTERS), '--jobs', String(JOBS), '--log', log, '--json', '--', trueBin, '{}']);
    const summary = JSON.parse(ours.stdout) as Summary;
    if (!summary.ok || summary.done !== CLUSTERS) throw new Error(`cluster-run did not finish: ${ours.stdout}`);
    runnerRss = Math.max(runnerRss, summary.runnerPeakRss);
    sides['cluster-run'].push(ours.ms);
    sides['xargs -P 3'].push((await timed(xargs, ['-P', String(JOBS), '-n', '1', trueBin], specs)).ms);
    const joblog = join(dir, `parallel-${round}.joblog`);
    sides['parallel --joblog'].push((await timed(parallel, ['--will-cite', '-j', String(JOBS), '--joblog', joblog, trueBin], specs)).ms);
    rmSync(`${log}.output`, { recursive: true, force: true });
    console.log(
      `  round ${round}: ${Object.entries(sides)
        .map(([name, values]) => `${name} ${secs(values.at(-1) as number)}`)
        .join(', ')}`,
    );
  }
  const ours = median(sides['cluster-run']);
  const xargsMs = median(sides['xargs -P 3']);
  const parallelMs = median(sides['parallel --joblog']);
  console.log(`\n${CLUSTERS} no-op clusters at K=${JOBS} (median of ${ROUNDS}):`);
  console.log(`  cluster-run        ${secs(ours)}  (${((ours / CLUSTERS) * JOBS).toFixed(2)} ms per cluster per slot; runner peak RSS ${mb(runnerRss)})`);
  console.log(`  xargs -P 3         ${secs(xargsMs)}`);
  console.log(`  parallel --joblog  ${secs(parallelMs)}`);
  console.log(`  cluster-run / xargs     ${(ours / xargsMs).toFixed(2)}x   (target: at most 2x)`);
  console.log(`  cluster-run / parallel  ${(ours / parallelMs).toFixed(2)}x   (target: at most 0.5x)`);
}

async function bigLog(dir: string): Promise<void> {
  const worker = join(dir, 'noop-worker.mjs');
  writeFileSync(worker, 'export default function runCluster() {}\n');
  const log = join(dir, 'big.log');
  const args = ['--clusters', String(BIG_CLUSTERS), '--jobs', String(JOBS), '--log', log, '--worker', worker, '--json'];
  const whole = await clusterRun(args);
  const run = JSON.parse(whole.stdout) as Summary;
  if (!run.ok) throw new Error(`the ${BIG_CLUSTERS}-cluster run did not finish: ${whole.stdout}`);
  const resumed: Summary[] = [];
  for (let round = 0; round < ROUNDS; round++) resumed.push(JSON.parse((await clusterRun(args)).stdout) as Summary);
  const scanMs = median(resumed.map((summary) => summary.scanMs));
  console.log(`\nA ${BIG_CLUSTERS.toLocaleString('en-US')}-cluster job in worker mode (log ${mb(statSync(log).size)}):`);
  console.log(`  whole run        ${secs(run.durationMs)}, runner peak RSS ${mb(run.runnerPeakRss)}   (target: under 100 MB)`);
  console.log(`  resume scan      ${scanMs.toFixed(0)} ms to read the log and find all ${resumed[0]?.doneBefore} done   (target: under 500 ms)`);
  console.log(`  whole rerun      ${secs(median(resumed.map((summary) => summary.durationMs)))} from start to the summary, peak RSS ${mb(Math.max(...resumed.map((s) => s.runnerPeakRss)))}`);
}

async function startupCost(dir: string): Promise<void> {
  // A child that spends 300 ms loading before its cluster's work, as a framework's boot does.
  const boot = 'await new Promise((resolve) => setTimeout(resolve, 300));\n';
  const child = join(dir, 'slow-start.mjs');
  writeFileSync(child, boot);
  const worker = join(dir, 'slow-start-worker.mjs');
  writeFileSync(worker, `${boot}export default function runCluster() {}\n`);
  const common = ['--clusters', String(STARTUP_CLUSTERS), '--jobs', String(JOBS), '--json'];
  const perProcess = await clusterRun([...common, '--log', join(dir, 'slow-process.log'), '--', process.execPath, child, '{}']);
  const pooled = await clusterRun([...common, '--log', join(dir, 'slow-worker.log'), '--worker', worker]);
  console.log(`\n${STARTUP_CLUSTERS} clusters whose child takes 300 ms to start, K=${JOBS}:`);
  console.log(`  a process per cluster  ${secs(perProcess.ms)}`);
  console.log(`  --worker               ${secs(pooled.ms)}`);
  console.log(`  speed-up               ${(perProcess.ms / pooled.ms).toFixed(1)}x`);
}

async function main(): Promise<void> {
  const dir = await makeTempDir('bench-runner');
  try {
    console.log(`cluster-run benchmarks on node ${process.version}, ${ROUNDS} rounds\n`);
    await overhead(dir.path);
    await bigLog(dir.path);
    await startupCost(dir.path);
  } finally {
    await dir.remove();
  }
}

await main();
