import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { readFileSync, statSync } from 'node:fs';
import type { TempDir } from '@sitecache/test-services';
import { runClusters, type ProgressEvent, type RunOptions } from '@sitecache/cluster-runner';
import { alive, cli, fixture, jobFolder, readRecords, readStamps, startsPerCluster } from './helpers.js';

let dir: TempDir;
let log: string;
let stamps: string;

beforeEach(async () => ({ dir, log, stamps } = await jobFolder('cluster-runner-limits')));
afterEach(() => dir.remove());

/** A job whose clusters run `node SCRIPT i/N`, or `node ARGS... i/N` when given a list. */
function job(script: string | readonly string[], clusters: number, extra: Partial<RunOptions> = {}, env: Record<string, string> = {}): RunOptions {
  return {
    clusters,
    log,
    jobs: 3,
    command: [process.execPath, ...(typeof script === 'string' ? [fixture(script)] : script)],
    handleSignals: false,
    retryDelay: 10,
    env: { STAMPS: stamps, SLEEP_MS: '5', ...env },
    ...extra,
  };
}

const ends = (): Array<Record<string, unknown>> => readRecords(log).filter((record) => record.event === 'end');

describe('output', () => {
  it('streams a child that writes 32 MB to stderr into its file without blocking it', async () => {
    // Through the bin, so the runner's peak memory is its own and not this test process's.
    const result = await cli(['--clusters', '2', '--log', log, '--timeout', '20s', '--json', '--', process.execPath, fixture('chatty-child.mjs')], {
      env: { MEGABYTES: '32' },
    });
    const summary = JSON.parse(result.stdout) as { ok: boolean; done: number; runnerPeakRss: number };
    expect(summary).toMatchObject({ ok: true, done: 2 });
    expect(statSync(`${log}.output/cluster-1.attempt-1.stderr`).size).toBe(32 * 1024 * 1024);
    expect(readFileSync(`${log}.output/cluster-2.attempt-1.stdout`, 'utf8')).toBe('finished\n');
    // The bytes went to the file, not through the runner.
    expect(summary.runnerPeakRss).toBeLessThan(150 * 1024 * 1024);
  });
});

describe('--timeout', () => {
  it('stops a cluster that runs past the timeout with SIGTERM, records it as timeout, and lets the others finish', async () => {
    const summary = await runClusters(job('stamp-child.mjs', 3, { timeout: '2s' }, { HANG: '2' }));
    expect(summary).toMatchObject({ ok: false, done: 2, failedClusters: [2] });
    // Stopped by the signal, not run to its end: it stamped "term" and never "end".
    expect(readStamps(stamps).filter((stamp) => stamp.cluster === 2).map((stamp) => stamp.what)).toEqual(['start', 'term']);
    const stopped = ends().find((record) => record.cluster === 2);
    expect(stopped).toMatchObject({ why: 'timeout', exitCode: 143 });
    expect(stopped?.durationMs as number).toBeGreaterThanOrEqual(2_000);
  });

  it('kills a cluster that ignores SIGTERM once the grace period is over, and retries it', async () => {
    // sh sets its trap within milliseconds, so SIGTERM a second later finds it (and its sleep) ignoring the signal.
    const deaf = { ...job('hang-child.mjs', 1, { timeout: '1s', grace: '300ms', retries: 1 }), command: ['sh', '-c', 'trap "" TERM; while :; do sleep 0.05; done'] };
    const summary = await runClusters(deaf);
    expect(summary).toMatchObject({ ok: false, attempts: 2, failedClusters: [1] });
    const records = ends();
    expect(records.map((record) => [record.attempt, record.why, record.signal])).toEqual([
      [1, 'timeout', 'SIGKILL'],
      [2, 'timeout', 'SIGKILL'],
    ]);
    // SIGKILL came only after the timeout and the grace that followed it.
    for (const record of records) expect(record.durationMs as number).toBeGreaterThanOrEqual(1_300);
    const pids = readRecords(log).filter((record) => record.event === 'start').map((record) => record.pid as number);
    expect(pids.some(alive)).toBe(false);
  });
});

describe('--max-rss', () => {
  it('stops a cluster whose memory passes the limit, records rss-limit with its peak, and retries it', async () => {
    const summary = await runClusters(job('alloc-child.mjs', 2, { maxRss: '120M', retries: 1 }, { LIMIT_MB: '600' }));
    expect(summary).toMatchObject({ ok: false, failed: 2, attempts: 4 });
    for (const end of ends()) {
      expect(end).toMatchObject({ why: 'rss-limit', signal: 'SIGTERM' });
      expect(end.peakRss as number).toBeGreaterThan(120 * 1024 * 1024);
      // Sampled five times a second: it is caught long before it holds its 600 MB.
      expect(end.peakRss as number).toBeLessThan(500 * 1024 * 1024);
    }
  });

  it('leaves a cluster under the limit alone and records its peak memory', async () => {
    const holdBriefly = ['-e', 'const b = Buffer.alloc(64 << 20, 1); setTimeout(() => console.log(b.length), 700)'];
    const summary = await runClusters(job(holdBriefly, 1, { maxRss: '1G' }));
    expect(summary).toMatchObject({ ok: true });
    const [end] = ends();
    expect(end?.peakRss as number).toBeGreaterThan(64 * 1024 * 1024);
  });
});

describe('--mem-free', () => {
  it('starts no cluster while available memory is below the floor, and says so', async () => {
    const controller = new AbortController();
    const events: ProgressEvent[] = [];
    const summary = await runClusters(
      job('stamp-child.mjs', 4, {
        memFree: '64T',
        signal: controller.signal,
        onProgress: (event) => {
          events.push(event);
          if (event.type === 'memory-wait') setTimeout(() => controller.abort(), 600);
        },
      }),
    );
    expect(events[0]).toMatchObject({ type: 'memory-wait', memFree: 64 * 1024 ** 4 });
    expect(summary).toMatchObject({ ok: false, attempts: 0, notStarted: 4, stoppedBy: 'abort' });
    expect(readStamps(stamps)).toEqual([]);
  });

  it('runs as usual while memory is above the floor', async () => {
    const summary = await runClusters(job('stamp-child.mjs', 4, { memFree: '1M' }));
    expect(summary).toMatchObject({ ok: true, done: 4 });
  });
});

describe('--halt', () => {
  it('now,fail=1 stops the running clusters and starts no more after the first failure', async () => {
    const summary = await runClusters(job('stamp-child.mjs', 30, { jobs: 2, halt: 'now,fail=1' }, { SLEEP_MS: '200', FAIL: '1' }));
    expect(summary).toMatchObject({ ok: false, stoppedBy: 'halt', exitCode: 1 });
    expect(summary.notStarted).toBeGreaterThan(20);
    const why = ends().map((record) => record.why);
    expect(why).toContain('failed');
    expect(why.filter((reason) => reason === 'interrupted').length).toBeLessThanOrEqual(1);
  });

  it('soon,fail=2 lets running clusters finish and then stops', async () => {
    const summary = await runClusters(job('stamp-child.mjs', 30, { jobs: 3, halt: 'soon,fail=2' }, { SLEEP_MS: '100', FAIL: '1,2' }));
    expect(summary).toMatchObject({ ok: false, stoppedBy: 'halt' });
    expect(ends().some((record) => record.why === 'interrupted')).toBe(false);
    expect(summary.notStarted).toBeGreaterThan(20);
    expect([...startsPerCluster(readStamps(stamps)).values()].every((count) => count === 1)).toBe(true);
  });
});
