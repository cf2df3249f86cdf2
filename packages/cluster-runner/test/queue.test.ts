import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { Redis } from 'ioredis';
import { freePort, startRedis, type RedisServer, type TempDir } from '@sitecache/test-services';
import { runClusters, type ProgressEvent } from '@sitecache/cluster-runner';
import { cli, fixture, jobFolder, overlaps, peakConcurrency, readQueueStamps, readStamps, stampViolations, waitFor } from './helpers.js';

// Queue mode as users run it: the bin, a real redis-server, and several runners standing for
// machines (separate processes, each with its own --host and --output-dir).

let redis: RedisServer;
let client: Redis;
let dir: TempDir;
let stamps: string;

beforeAll(async () => {
  redis = await startRedis();
  client = new Redis(redis.url);
}, 30_000);
afterAll(async () => {
  client?.disconnect();
  await redis?.stop();
});
beforeEach(async () => ({ dir, stamps } = await jobFolder('cluster-runner-queue')));
afterEach(() => dir.remove());

/** `cluster-run` on the queue as machine `host`: its own output folder, a short lock so tests stay quick. */
function runner(name: string, host: string, clusters: number, extra: readonly string[] = [], env: Record<string, string> = {}) {
  const args = [
    '--clusters', String(clusters), '--jobs', '3', '--queue', redis.url, '--name', name, '--host', host,
    '--output-dir', join(dir.path, host), '--lock-duration', '5s', '--json', ...extra,
    '--', process.execPath, fixture('queue-child.mjs'), '{}',
  ];
  return cli(args, { env: { STAMPS: stamps, ...env } });
}

async function status(name: string): Promise<Record<string, unknown>> {
  const result = await cli(['status', '--queue', redis.url, '--name', name, '--json']);
  expect(result.stderr).toBe('');
  return JSON.parse(result.stdout) as Record<string, unknown>;
}

describe('cluster-run --queue on three machines', () => {
  it('runs 300 clusters, K=3 each: every cluster once, at most 9 at a time, each runner some; a rerun runs nothing', async () => {
    const hosts = ['m1', 'm2', 'm3'];
    const results = await Promise.all(hosts.map((host) => runner('three', host, 300, [], { SLEEP_MS: '20-60' })));
    const summaries = results.map((result) => JSON.parse(result.stdout) as Record<string, unknown>);
    for (const [i, result] of results.entries()) {
      expect(result.exitCode).toBe(0);
      expect(summaries[i]).toMatchObject({ ok: true, done: 300, failed: 0, log: null, queue: { url: redis.url, name: 'three', host: hosts[i] } });
      expect(summaries[i]?.attempts).toBeGreaterThan(0);
    }
    expect(summaries.reduce((sum, summary) => sum + (summary.attempts as number), 0)).toBe(300);

    const all = readQueueStamps(stamps);
    const starts = all.filter((stamp) => stamp.what === 'start');
    expect(starts.map((stamp) => stamp.cluster).sort((a, b) => a - b)).toEqual(Array.from({ length: 300 }, (_, i) => i + 1));
    expect(overlaps(all)).toEqual([]);
    expect(peakConcurrency(all)).toBeLessThanOrEqual(9);
    for (const host of hosts) expect(peakConcurrency(all, new Set([host]))).toBeLessThanOrEqual(3);
    // Each cluster's output went to the machine that ran it.
    for (const host of hosts) {
      const ran = starts.filter((stamp) => stamp.host === host).map((stamp) => `cluster-${stamp.cluster}.attempt-1.stdout`);
      expect(readdirSync(join(dir.path, host)).sort()).toEqual(ran.sort());
    }

    const rerun = await runner('three', 'm4', 300);
    expect(rerun.exitCode).toBe(0);
    expect(JSON.parse(rerun.stdout)).toMatchObject({ ok: true, done: 300, doneBefore: 300, attempts: 0 });
    expect(readQueueStamps(stamps)).toHaveLength(all.length);
    expect(await status('three')).toMatchObject({ clusters: 300, done: 300, running: [], waiting: 0, failed: [], etaMs: 0 });
  }, 120_000);

  it('retries a cluster that fails twice with --retries 2, with backoff, and it passes on its third attempt', async () => {
    const result = await runner('retried', 'm1', 4, ['--retries', '2', '--retry-delay', '100ms'], { FAIL: '3', FAIL_UNTIL_ATTEMPT: '3' });
    expect(result.exitCode).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ ok: true, done: 4, attempts: 6 });
    expect(result.stderr).toMatch(/^cluster 3\/4 failed \(exit code 1\) in \d+\.\d\ds, attempt 1; retry in 0\.10s$/m);
    expect(result.stderr).toMatch(/^cluster 3\/4 failed \(exit code 1\) in \d+\.\d\ds, attempt 2; retry in 0\.20s$/m);
    expect(result.stderr).toMatch(/^cluster 3\/4 ok in \d+\.\d\ds, attempt 3$/m);
    const cluster3 = readQueueStamps(stamps).filter((stamp) => stamp.cluster === 3 && stamp.what === 'end');
    expect(cluster3.map((stamp) => `${stamp.attempt} ${stamp.result}`)).toEqual(['1 failed', '2 failed', '3 ok']);
  }, 60_000);

  it('records a cluster that failed for good with its exit code and stderr; status shows it; a rerun retries only it', async () => {
    const failing = await runner('failing', 'm1', 3, ['--retries', '1', '--retry-delay', '10ms'], { FAIL: '2' });
    expect(failing.exitCode).toBe(1);
    expect(JSON.parse(failing.stdout)).toMatchObject({ ok: false, done: 2, failed: 1, failedClusters: [2] });
    expect(failing.stderr).toContain('not done: 2 (rerun the same command to retry them)');

    const found = await status('failing');
    expect(found).toMatchObject({ done: 2, running: [], waiting: 0 });
    expect(found.failed).toEqual([
      {
        cluster: 2,
        host: 'm1',
        attempt: 2,
        why: 'failed',
        exitCode: 1,
        signal: null,
        reason: 'exit code 1 on m1 (attempt 2)\ncluster 2 failed on purpose',
        stderrTail: 'cluster 2 failed on purpose',
      },
    ]);
    const text = await cli(['status', '--queue', redis.url, '--name', 'failing']);
    expect(text.stdout).toContain('  failed    1\n    2/3 exit code 1 on m1, attempt 2: cluster 2 failed on purpose\n');

    const rerun = await runner('failing', 'm2', 3);
    expect(rerun.exitCode).toBe(0);
    expect(JSON.parse(rerun.stdout)).toMatchObject({ ok: true, done: 3, doneBefore: 2, attempts: 1 });
    expect(readQueueStamps(stamps).filter((stamp) => stamp.what === 'start').map((stamp) => stamp.cluster)).toHaveLength(5);
  }, 60_000);

  it('status while it runs: an ETA from the rate of the latest completions; each record keeps its output\'s last lines', async () => {
    // 45 clusters of 400 ms, 3 at a time: about 6 s, so both status calls (a second or so each on a
    // loaded machine) come while it runs.
    const running = runner('eta', 'm1', 45, [], { SLEEP_MS: '400' });
    await waitFor(() => readQueueStamps(stamps).filter((stamp) => stamp.what === 'end').length >= 6, 30_000, 'six clusters to finish');
    const [mid, text] = await Promise.all([status('eta'), cli(['status', '--queue', redis.url, '--name', 'eta'])]);
    expect(mid.ratePerSecond).toBeGreaterThan(0);
    const left = 45 - (mid.done as number);
    // The rate is printed rounded to 1/100 cluster/s; the ETA comes from the unrounded rate.
    expect(Math.abs((mid.etaMs as number) - (left / (mid.ratePerSecond as number)) * 1000)).toBeLessThan(0.01 * (mid.etaMs as number));
    expect(text.stdout).toMatch(/^ {2}ETA {7}\S+ at [\d.]+ clusters\/s$/m);
    expect((await running).exitCode).toBe(0);

    // The queue record of a done cluster (BullMQ's return value) ends with what it printed.
    const record = JSON.parse((await client.hget('cluster-run:eta:cluster-7', 'returnvalue')) as string) as Record<string, unknown>;
    expect(record).toMatchObject({ host: 'm1', why: 'ok', exitCode: 0, stdoutTail: 'cluster 7/45 done on m1', stderrTail: '' });
    expect(await status('eta')).toMatchObject({ done: 45, etaMs: 0 });
  }, 60_000);

  it('runs --worker clusters across runners the same way', async () => {
    const args = (host: string): string[] => [
      '--clusters', '30', '--jobs', '2', '--queue', redis.url, '--name', 'workers', '--host', host,
      '--output-dir', join(dir.path, host), '--lock-duration', '5s', '--json', '--worker', fixture('cluster-worker.mjs'),
    ];
    const results = await Promise.all(['m1', 'm2'].map((host) => cli(args(host), { env: { STAMPS: stamps, SLEEP_MS: '20' } })));
    for (const result of results) expect(JSON.parse(result.stdout)).toMatchObject({ ok: true, done: 30 });
    const started = readStamps(stamps).filter((stamp) => stamp.what === 'start');
    expect(started.map((stamp) => stamp.cluster).sort((a, b) => a - b)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
  }, 60_000);
});

describe('stopping and limits', () => {
  it('on SIGTERM hands its running clusters back at once and exits 143; status shows them running, then waiting', async () => {
    const first = runner('handback', 'm1', 6, [], { SLEEP_MS: '60000' });
    await waitFor(() => readQueueStamps(stamps).filter((stamp) => stamp.what === 'start').length === 3, 20_000, 'three clusters to start');
    const running = await status('handback');
    expect(running).toMatchObject({ clusters: 6, done: 0, waiting: 3, failed: [] });
    expect((running.running as Array<Record<string, unknown>>).map((cluster) => [cluster.host, cluster.attempt])).toEqual([
      ['m1', 1],
      ['m1', 1],
      ['m1', 1],
    ]);
    const text = await cli(['status', '--queue', redis.url, '--name', 'handback']);
    expect(text.stdout).toMatch(/^ {4}\d\/6 on m1 for \d+s, attempt 1$/m);
    // Replacing the job under a runner would run its clusters twice.
    const fresh = await runner('handback', 'm9', 6, ['--fresh']);
    expect(fresh.exitCode).toBe(2);
    expect(fresh.stderr).toBe(`cluster-run: Job "handback" on ${redis.url} has 3 cluster(s) running: stop its runners (or wait for them) before --fresh starts it over.`);

    first.kill('SIGTERM');
    const stopped = await first;
    expect(stopped.exitCode).toBe(143);
    expect(JSON.parse(stopped.stdout)).toMatchObject({ ok: false, stoppedBy: 'SIGTERM', done: 0, failed: 0, notStarted: 6 });
    expect(stopped.stderr).toContain('stopping (SIGTERM)');
    // Back on the queue for any runner, without waiting for their locks to expire.
    expect(await status('handback')).toMatchObject({ running: [], waiting: 6 });

    const second = await runner('handback', 'm2', 6, [], { SLEEP_MS: '10' });
    expect(JSON.parse(second.stdout)).toMatchObject({ ok: true, done: 6, attempts: 6 });
    expect(overlaps(readQueueStamps(stamps))).toEqual([]);
  }, 60_000);

  it('stops a cluster that runs past --timeout on the machine that runs it, and records it as timed out', async () => {
    const result = await runner('timeout', 'm1', 1, ['--timeout', '300ms', '--grace', '1s'], { SLEEP_MS: '30000' });
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toMatch(/^cluster 1\/1 timeout \(exit code 143\) in \d+\.\d\ds, attempt 1$/m);
    expect((await status('timeout')).failed).toMatchObject([{ cluster: 1, host: 'm1', why: 'timeout', exitCode: 143, reason: 'timed out on m1 (attempt 1)' }]);
  }, 30_000);
});

describe('memory limits, per machine', () => {
  it('--max-rss stops a cluster whose memory passes the limit and records it as rss-limit', async () => {
    const args = ['--clusters', '1', '--queue', redis.url, '--name', 'rss', '--host', 'm1', '--output-dir', join(dir.path, 'm1'), '--max-rss', '120M'];
    const result = await cli([...args, '--', process.execPath, fixture('alloc-child.mjs')], { env: { LIMIT_MB: '600' } });
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toMatch(/^cluster 1\/1 rss-limit \(signal SIGTERM\) in \d+\.\d\ds, attempt 1$/m);
    expect((await status('rss')).failed).toMatchObject([{ cluster: 1, host: 'm1', why: 'rss-limit', signal: 'SIGTERM', reason: 'stopped over --max-rss on m1 (attempt 1)' }]);
  }, 30_000);

  it('--mem-free starts no cluster below the floor, says so, and hands the clusters it held back when stopped', async () => {
    const controller = new AbortController();
    const events: ProgressEvent[] = [];
    const summary = await runClusters({
      clusters: 2,
      jobs: 2,
      queue: redis.url,
      name: 'memfree',
      host: 'm1',
      outputDir: join(dir.path, 'm1'),
      command: [process.execPath, fixture('queue-child.mjs'), '{}'],
      env: { STAMPS: stamps },
      memFree: '64T',
      signal: controller.signal,
      handleSignals: false,
      onProgress: (event) => {
        events.push(event);
        if (event.type === 'memory-wait') setTimeout(() => controller.abort(), 300);
      },
    });
    expect(events[0]).toMatchObject({ type: 'memory-wait', memFree: 64 * 1024 ** 4 });
    expect(summary).toMatchObject({ ok: false, attempts: 0, notStarted: 2, stoppedBy: 'abort', exitCode: 1 });
    expect(readQueueStamps(stamps)).toEqual([]);
    expect(await status('memfree')).toMatchObject({ running: [], waiting: 2 });
  }, 30_000);
});

describe('refusals (exit 2, nothing enqueued)', () => {
  it('an unreachable Redis: the URL and the connect error', async () => {
    const url = `redis://127.0.0.1:${await freePort()}/0`;
    const result = await cli(['--clusters', '3', '--queue', url, '--name', 'nowhere', '--', 'true']);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toBe(`cluster-run: Cannot reach Redis at ${url}: connect ECONNREFUSED ${url.slice(8, -2)}. Nothing was enqueued.`);
  });

  it('a Redis that may evict keys: the setting to change', async () => {
    await client.config('SET', 'maxmemory-policy', 'allkeys-lru');
    try {
      const result = await runner('evicting', 'm1', 3);
      expect(result.exitCode).toBe(2);
      expect(result.stderr).toContain(`cluster-run: Redis at ${redis.url} has maxmemory-policy "allkeys-lru"`);
      expect(result.stderr).toContain('BullMQ needs "noeviction". Set "maxmemory-policy noeviction" in redis.conf');
    } finally {
      await client.config('SET', 'maxmemory-policy', 'noeviction');
    }
    expect(await client.keys('cluster-run:evicting:*')).toEqual([]);
  });

  it('a job enqueued with another cluster count: both named; --fresh replaces it', async () => {
    expect((await runner('changed', 'm1', 2)).exitCode).toBe(0);
    const other = await runner('changed', 'm1', 3);
    expect(other.exitCode).toBe(2);
    const command = JSON.stringify([process.execPath, fixture('queue-child.mjs'), '{}']);
    expect(other.stderr).toBe(
      `cluster-run: Job "changed" on ${redis.url} was enqueued as 2 clusters of ${command}, but this run is 3 clusters of ${command}. ` +
        'Rerun with the same clusters and command to work on it, pass --fresh to replace it, or choose another --name.',
    );
    expect(readQueueStamps(stamps).filter((stamp) => stamp.what === 'start')).toHaveLength(2);
    // Refused before anything of this run is made: machine m2's output folder does not appear.
    const m2 = await runner('changed', 'm2', 3);
    expect(m2.exitCode).toBe(2);
    expect(existsSync(join(dir.path, 'm2'))).toBe(false);

    // The same count with another command is another job too.
    const otherCommand = await cli(['--clusters', '2', '--queue', redis.url, '--name', 'changed', '--output-dir', join(dir.path, 'm3'), '--', 'true', '{}']);
    expect(otherCommand.exitCode).toBe(2);
    expect(otherCommand.stderr).toBe(
      `cluster-run: Job "changed" on ${redis.url} was enqueued as 2 clusters of ${command}, but this run is 2 clusters of ["true","{}"]. ` +
        'Rerun with the same clusters and command to work on it, pass --fresh to replace it, or choose another --name.',
    );
    expect(existsSync(join(dir.path, 'm3'))).toBe(false);
    expect(readQueueStamps(stamps).filter((stamp) => stamp.what === 'start')).toHaveLength(2);

    const fresh = await runner('changed', 'm1', 3, ['--fresh']);
    expect(fresh.exitCode).toBe(0);
    expect(JSON.parse(fresh.stdout)).toMatchObject({ ok: true, done: 3, doneBefore: 0, attempts: 3 });
    expect(await status('changed')).toMatchObject({ clusters: 3, done: 3 });
  });

  it('a worker module that does not load: refused before anything is enqueued', async () => {
    const missing = join(dir.path, 'missing-worker.mjs');
    const result = await cli(['--clusters', '3', '--queue', redis.url, '--name', 'badworker', '--worker', missing], { cwd: dir.path });
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain(`cluster-run: Worker module "${missing}" cannot run clusters: it failed to load`);
    // No job, no clusters: only the queue's own meta, which BullMQ writes as it connects.
    expect(await client.keys('cluster-run:badworker:*')).toEqual(['cluster-run:badworker:meta']);
    // Nor an output folder (the default one is JOB.output in the working directory).
    expect(readdirSync(dir.path)).toEqual([]);

    // With --fresh, the folder a previous run left is not moved aside by a run that is then refused.
    mkdirSync(join(dir.path, 'badworker.output'));
    writeFileSync(join(dir.path, 'badworker.output', 'kept'), 'output of an earlier run');
    const fresh = await cli(['--clusters', '3', '--queue', redis.url, '--name', 'badworker', '--worker', missing, '--fresh'], { cwd: dir.path });
    expect(fresh.exitCode).toBe(2);
    expect(readdirSync(dir.path)).toEqual(['badworker.output']);
    expect(readdirSync(join(dir.path, 'badworker.output'))).toEqual(['kept']);
  });

  it('--log with --queue: the queue is the log', async () => {
    const result = await cli(['--clusters', '3', '--queue', redis.url, '--name', 'both', '--log', join(dir.path, 'job.log'), '--', 'true']);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toBe('cluster-run: Invalid --log: expected no log with --queue: the queue is the log, got "' + join(dir.path, 'job.log') + '"');
    expect(existsSync(join(dir.path, 'job.log'))).toBe(false);
  });

  it('status of a job the queue does not hold', async () => {
    const result = await cli(['status', '--queue', redis.url, '--name', 'unknown']);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toBe(`cluster-run: No job "unknown" on ${redis.url}: nothing was enqueued under that --name.`);
  });
});

describe('the local mode', () => {
  it('loads no Redis client: it runs with bullmq and ioredis unresolvable, which a --queue run needs', async () => {
    const forbid = ['--import', fixture('no-redis-client.mjs')];
    const log = join(dir.path, 'job.log');
    const local = await cli(['--clusters', '3', '--log', log, '--json', '--', process.execPath, fixture('stamp-child.mjs'), '{}'], {
      env: { STAMPS: stamps },
      nodeArgs: forbid,
    });
    expect(local.exitCode).toBe(0);
    expect(JSON.parse(local.stdout)).toMatchObject({ ok: true, done: 3 });
    expect(stampViolations(readStamps(stamps), log)).toEqual([]);

    // Importing the package loads neither: the ESM build under the same hooks, and the CommonJS
    // build (whose require() calls those hooks do not see on Node 20) by what require() loaded.
    const esm = new URL('../dist/index.js', import.meta.url).href;
    const imported = await execa(process.execPath, [...forbid, '--input-type=module', '-e', `const m = await import(${JSON.stringify(esm)}); console.log(typeof m.runClusters)`]);
    expect(imported.stdout).toBe('function');
    const cjs = fileURLToPath(new URL('../dist/index.cjs', import.meta.url));
    const required = await execa(process.execPath, ['-e', `require(${JSON.stringify(cjs)}); console.log(Object.keys(require.cache).filter((path) => /bullmq|ioredis/.test(path)).length)`]);
    expect(required.stdout).toBe('0');

    const queued = await cli(['--clusters', '3', '--queue', redis.url, '--name', 'forbidden', '--', 'true'], { nodeArgs: forbid });
    expect(queued.exitCode).toBe(1);
    expect(queued.stderr).toMatch(/this test forbids loading (bullmq|ioredis)/);
    expect(readFileSync(log, 'utf8')).not.toContain('forbidden');
  });
});
