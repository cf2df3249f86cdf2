/**
 * `pnpm bench:runner`: the figures issue 4 asks for, each measured side by side in this one run.
 *   overhead   2,000 no-op clusters at K=3: cluster-run against `xargs -P 3` and GNU parallel
 *              with --joblog (rounds alternate; the median of each is compared)
 *   big log    a 100,000-cluster job run whole in worker mode (the runner's peak RSS), then the
 *              same command again: the time to read the log and find every cluster done
 *   workers    1,000 clusters whose child takes 300 ms to start: --worker against a process per cluster
 *   queue      (issue 12, on a real redis-server) 5,000 no-op clusters on 3 queue-mode runners
 *              against the local mode on one, K=3 each: the queue's cost per cluster; then 300
 *              clusters of 100 ms (`sleep 0.1`) at K=3 on 1, 2 and 3 runners: how throughput scales
 * `--queue-only` runs only the last. `--help` lists the flags and the BENCH_* settings that scale
 * it down; `--smoke` scales every part down at once (one round, a few hundred clusters) to check it
 * still runs.
 */
import { execFile } from 'node:child_process';
import { rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchArgs, makeTempDir, requireBinary, startRedis } from '@sitecache/test-services';

const args = benchArgs({
  command: 'pnpm bench:runner',
  about: `
cluster-run's overhead per cluster against xargs -P and GNU parallel --joblog (2,000 no-op
clusters at K=3); a 100,000-cluster job's peak RSS and resume scan; worker mode against a process
per cluster for children slow to start; and on a real redis-server, queue mode on 3 runners against
the local mode on one, and 100 ms clusters on 1, 2 and 3 runners.`,
  flags: [
    { name: '--smoke', about: 'every part scaled down (one round, a few hundred clusters): checks it still runs' },
    { name: '--queue-only', about: 'only the queue-mode part' },
  ],
  settings: [
    { name: 'BENCH_ROUNDS', kind: 'count', default: '3', about: 'rounds of the overhead part' },
    { name: 'BENCH_CLUSTERS', kind: 'count', default: '2000', about: 'clusters of the overhead part' },
    { name: 'BENCH_BIG_CLUSTERS', kind: 'count', default: '100000', about: 'clusters of the big-log part' },
    { name: 'BENCH_STARTUP_CLUSTERS', kind: 'count', default: '1000', about: 'clusters of the worker-mode part' },
    { name: 'BENCH_QUEUE_CLUSTERS', kind: 'count', default: '5000', about: 'no-op clusters of the queue part' },
    { name: 'BENCH_SCALE_CLUSTERS', kind: 'count', default: '300', about: '100 ms clusters of the scaling part' },
  ],
});
const SMOKE = args.has('--smoke');
const ROUNDS = args.number('BENCH_ROUNDS', SMOKE ? 1 : 3);
const CLUSTERS = args.number('BENCH_CLUSTERS', SMOKE ? 200 : 2_000);
const BIG_CLUSTERS = args.number('BENCH_BIG_CLUSTERS', SMOKE ? 2_000 : 100_000);
const STARTUP_CLUSTERS = args.number('BENCH_STARTUP_CLUSTERS', SMOKE ? 30 : 1_000);
const QUEUE_CLUSTERS = args.number('BENCH_QUEUE_CLUSTERS', SMOKE ? 200 : 5_000);
const SCALE_CLUSTERS = args.number('BENCH_SCALE_CLUSTERS', SMOKE ? 30 : 300);
const QUEUE_ONLY = args.has('--queue-only');
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

/** `cluster-run --queue` as machine `host` (each runner its own output folder, as on its own machine). */
function queueRunner(url: string, name: string, host: string, clusters: number, command: readonly string[], dir: string): Promise<Timed> {
  const args = ['--clusters', String(clusters), '--jobs', String(JOBS), '--queue', url, '--name', name, '--host', host];
  return clusterRun([...args, '--output-dir', join(dir, `${name}-${host}`), '--json', '--', ...command]);
}

/** Starts `runners` queue-mode runners on one job together; the time until the last one exits. */
async function queueRun(url: string, name: string, runners: number, clusters: number, command: readonly string[], dir: string): Promise<number> {
  const began = performance.now();
  const results = await Promise.all(Array.from({ length: runners }, (_, i) => queueRunner(url, name, `m${i + 1}`, clusters, command, dir)));
  for (const result of results) {
    const summary = JSON.parse(result.stdout) as Summary;
    if (!summary.ok || summary.done !== clusters) throw new Error(`queue run ${name} did not finish: ${result.stdout}`);
  }
  return performance.now() - began;
}

async function queueMode(dir: string): Promise<void> {
  const redis = await startRedis();
  try {
    const trueBin = requireBinary('true');
    const sleepBin = requireBinary('sleep');
    const shBin = requireBinary('sh');
    const local: number[] = [];
    const queued: number[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      const log = join(dir, `queue-local-${round}.log`);
      local.push((await clusterRun(['--clusters', String(QUEUE_CLUSTERS), '--jobs', String(JOBS), '--log', log, '--json', '--', trueBin, '{}'])).ms);
      queued.push(await queueRun(redis.url, `noop-${round}`, 3, QUEUE_CLUSTERS, [trueBin, '{}'], dir));
      console.log(`  round ${round}: local on 1 runner ${secs(local.at(-1) as number)}, queue on 3 runners ${secs(queued.at(-1) as number)}`);
    }
    const localMs = median(local);
    const queueMs = median(queued);
    console.log(`\n${QUEUE_CLUSTERS} no-op clusters, K=${JOBS} per runner (median of ${ROUNDS}):`);
    console.log(`  local mode, 1 runner    ${secs(localMs)}  (${((localMs / QUEUE_CLUSTERS) * JOBS).toFixed(2)} ms per cluster per slot)`);
    console.log(`  --queue, 3 runners      ${secs(queueMs)}  (${((queueMs / QUEUE_CLUSTERS) * JOBS * 3).toFixed(2)} ms per cluster per slot)`);
    console.log(`  queue / local           ${(queueMs / localMs).toFixed(2)}x wall time, with 3x the slots`);

    // sh -c 'sleep 0.1' i/N: the cluster spec lands in $0, which the script ignores.
    const workload = [shBin, '-c', `${sleepBin} 0.1`, '{}'];
    const scale: number[] = [];
    for (const runners of [1, 2, 3]) {
      scale.push(await queueRun(redis.url, `sleep-${runners}`, runners, SCALE_CLUSTERS, workload, dir));
    }
    console.log(`\n${SCALE_CLUSTERS} clusters of 100 ms (sleep 0.1), K=${JOBS} per runner, --queue:`);
    const ideal = (SCALE_CLUSTERS * 100) / JOBS;
    for (const [i, ms] of scale.entries()) {
      const rate = SCALE_CLUSTERS / (ms / 1000);
      console.log(
        `  ${i + 1} runner${i === 0 ? ' ' : 's'}  ${secs(ms)}  ${rate.toFixed(1)} clusters/s  ${((scale[0] as number) / ms).toFixed(2)}x one runner  (ideal ${secs(ideal / (i + 1))})`,
      );
    }
  } finally {
    await redis.stop();
  }
}

async function main(): Promise<void> {
  const dir = await makeTempDir('bench-runner');
  try {
    console.log(`cluster-run benchmarks on node ${process.version}, ${ROUNDS} rounds\n`);
    if (!QUEUE_ONLY) {
      await overhead(dir.path);
      await bigLog(dir.path);
      await startupCost(dir.path);
    }
    console.log(`\nAcross machines (--queue on a local redis-server${QUEUE_ONLY ? '' : ', in the same run'}):`);
    await queueMode(dir.path);
  } finally {
    await dir.remove();
  }
}

await main();
