import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TempDir } from '@sitecache/test-services';
import {
  LogFormatError,
  LogMismatchError,
  RunnerOptionError,
  runClusters,
  type ProgressEvent,
  type RunOptions,
} from '@sitecache/cluster-runner';
import { fixture, jobFolder, readRecords, readStamps, stampViolations, startsPerCluster } from './helpers.js';

let dir: TempDir;
let log: string;
let stamps: string;

beforeEach(async () => ({ dir, log, stamps } = await jobFolder('cluster-runner')));
afterEach(() => dir.remove());

function stampJob(clusters: number, extra: Partial<RunOptions> = {}, env: Record<string, string> = {}): RunOptions {
  return {
    clusters,
    log,
    jobs: 3,
    command: [process.execPath, fixture('stamp-child.mjs'), '{}'],
    handleSignals: false,
    retryDelay: 10,
    env: { STAMPS: stamps, SLEEP_MS: '5', ...env },
    ...extra,
  };
}

describe('runClusters', () => {
  it('runs every cluster 1..N exactly once on a clean run, N included', async () => {
    const summary = await runClusters(stampJob(25));
    expect(summary).toMatchObject({ ok: true, clusters: 25, done: 25, failed: 0, notStarted: 0, attempts: 25, exitCode: 0 });
    const starts = startsPerCluster(readStamps(stamps));
    expect([...starts.keys()].sort((a, b) => a - b)).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
    expect([...starts.values()].every((count) => count === 1)).toBe(true);
    expect(stampViolations(readStamps(stamps), log)).toEqual([]);
  });

  it('never runs more than `jobs` clusters at once', async () => {
    // Clusters long enough to overlap even when a loaded machine starts them slowly.
    await runClusters(stampJob(6, { jobs: 2 }, { SLEEP_MS: '400' }));
    let running = 0;
    let most = 0;
    for (const stamp of readStamps(stamps)) {
      running += stamp.what === 'start' ? 1 : -1;
      most = Math.max(most, running);
    }
    expect(most).toBe(2);
  });

  it('fills {} with i/N, {i} and {n} with its parts, and appends i/N when there is no placeholder', async () => {
    const outputDir = join(dir.path, 'out');
    await runClusters({ clusters: 2, log, command: [process.execPath, fixture('args-child.mjs'), '--cluster={}', '{i}-of-{n}'], outputDir, handleSignals: false });
    expect(JSON.parse(readFileSync(join(outputDir, 'cluster-2.attempt-1.stdout'), 'utf8'))).toEqual(['--cluster=2/2', '2-of-2']);
    const plain = join(dir.path, 'plain.log');
    await runClusters({ clusters: 3, log: plain, command: [process.execPath, fixture('args-child.mjs'), 'import'], handleSignals: false });
    expect(JSON.parse(readFileSync(`${plain}.output/cluster-3.attempt-1.stdout`, 'utf8'))).toEqual(['import', '3/3']);
  });

  it('passes the words to the program without a shell unless asked for one', async () => {
    const outputDir = join(dir.path, 'out');
    await runClusters({ clusters: 1, log, command: [process.execPath, fixture('args-child.mjs'), '$HOME', 'a b'], outputDir, handleSignals: false });
    expect(JSON.parse(readFileSync(join(outputDir, 'cluster-1.attempt-1.stdout'), 'utf8'))).toEqual(['$HOME', 'a b', '1/1']);
    const shellLog = join(dir.path, 'shell.log');
    await runClusters({ clusters: 2, log: shellLog, command: ['echo', 'cluster', '{}', '>', `${dir.path}/shell-{i}.txt`], shell: true, handleSignals: false });
    expect(readFileSync(join(dir.path, 'shell-2.txt'), 'utf8')).toBe('cluster 2/2\n');
  });

  it('retries a failing cluster, records each attempt, and reports the run as not ok', async () => {
    const summary = await runClusters(stampJob(6, { retries: 2 }, { FAIL: '4' }));
    expect(summary).toMatchObject({ ok: false, done: 5, failed: 1, failedClusters: [4], attempts: 8, exitCode: 1 });
    const ends = readRecords(log).filter((record) => record.event === 'end' && record.cluster === 4);
    expect(ends.map((record) => [record.attempt, record.why, record.exitCode])).toEqual([
      [1, 'failed', 1],
      [2, 'failed', 1],
      [3, 'failed', 1],
    ]);
    expect(readFileSync(`${log}.output/cluster-4.attempt-3.stderr`, 'utf8')).toBe('cluster 4 failed on purpose\n');
  });

  it('counts a cluster done only when it exits 0, and a rerun runs only what is not done', async () => {
    await runClusters(stampJob(8, {}, { FAIL: '2,7' }));
    const first = startsPerCluster(readStamps(stamps));
    expect(first.size).toBe(8);
    const again = await runClusters(stampJob(8, {}, { FAIL: '7' }));
    expect(again).toMatchObject({ ok: false, doneBefore: 6, done: 7, attempts: 2, failedClusters: [7] });
    const last = await runClusters(stampJob(8));
    expect(last).toMatchObject({ ok: true, doneBefore: 7, attempts: 1 });
    expect(startsPerCluster(readStamps(stamps))).toEqual(new Map([...first].map(([cluster]) => [cluster, cluster === 2 ? 2 : cluster === 7 ? 3 : 1])));
    const nothing = await runClusters(stampJob(8));
    expect(nothing).toMatchObject({ ok: true, doneBefore: 8, attempts: 0 });
  });

  it('writes a start and an end record per attempt, with pid, exit code, duration and reason', async () => {
    await runClusters(stampJob(2, {}, { FAIL: '2' }));
    const records = readRecords(log);
    expect(records[0]).toMatchObject({ event: 'run', version: 1, clusters: 2, shell: false, worker: null, pid: process.pid });
    const start = records.find((record) => record.event === 'start' && record.cluster === 1);
    expect(start).toMatchObject({ attempt: 1, pid: expect.any(Number), pidStart: expect.any(Number), time: expect.any(String) });
    const end2 = records.find((record) => record.event === 'end' && record.cluster === 2);
    expect(end2).toMatchObject({ attempt: 1, why: 'failed', exitCode: 1, signal: null, durationMs: expect.any(Number) });
    expect(records.filter((record) => record.event === 'start')).toHaveLength(2);
  });

  it('keeps each cluster output in its own files and removes the empty ones', async () => {
    await runClusters(stampJob(3, {}, { FAIL: '3' }));
    expect(readdirSync(`${log}.output`).sort()).toEqual([
      'cluster-1.attempt-1.stdout',
      'cluster-2.attempt-1.stdout',
      'cluster-3.attempt-1.stderr',
    ]);
    expect(readFileSync(`${log}.output/cluster-2.attempt-1.stdout`, 'utf8')).toBe('cluster 2/3 done\n');
  });

  it('records a command that cannot start as failed, with the reason', async () => {
    const summary = await runClusters({ clusters: 2, log, command: [join(dir.path, 'no-such-program')], handleSignals: false });
    expect(summary).toMatchObject({ ok: false, failed: 2 });
    const end = readRecords(log).find((record) => record.event === 'end');
    expect(end).toMatchObject({ why: 'failed', exitCode: null, error: expect.stringContaining('ENOENT') });
  });

  it('reports each start and end to onProgress with running counts', async () => {
    const events: ProgressEvent[] = [];
    await runClusters(stampJob(4, { onProgress: (event) => events.push(event) }, { FAIL: '3' }));
    expect(events.filter((event) => event.type === 'start')).toHaveLength(4);
    const ends = events.filter((event) => event.type === 'end');
    expect(ends).toHaveLength(4);
    expect(ends.find((event) => event.cluster === 3)).toMatchObject({ why: 'failed', exitCode: 1, retryInMs: null });
    expect(ends.at(-1)?.stats).toMatchObject({ clusters: 4, done: 3, failed: 1, running: 0 });
  });
});

describe('the log as the state', () => {
  it('refuses a log written for another cluster count or command, naming both', async () => {
    await runClusters(stampJob(3));
    await expect(runClusters(stampJob(4))).rejects.toThrow(LogMismatchError);
    await expect(runClusters(stampJob(4))).rejects.toThrow(/was written for 3 clusters of .*stamp-child.* but this run is 4 clusters/);
    await expect(runClusters({ ...stampJob(3), command: [process.execPath, fixture('args-child.mjs'), '{}'] })).rejects.toThrow(
      /args-child/,
    );
  });

  it('starts over with fresh, keeping the old log and its output beside it', async () => {
    await runClusters(stampJob(3, {}, { FAIL: '1' }));
    const summary = await runClusters(stampJob(5, { fresh: true }));
    expect(summary).toMatchObject({ ok: true, clusters: 5, doneBefore: 0, attempts: 5 });
    expect(summary.oldLog).toMatch(/job\.log\.\d{4}-\d\d-\d\dT/);
    const old = readRecords(summary.oldLog as string);
    expect(old[0]).toMatchObject({ event: 'run', clusters: 3 });
    expect(existsSync(`${summary.oldLog}.output/cluster-1.attempt-1.stderr`)).toBe(true);
    expect(readRecords(log)[0]).toMatchObject({ event: 'run', clusters: 5 });
  });

  it('carries on after a torn last line, and appends the next record on a line of its own', async () => {
    await runClusters(stampJob(4, {}, { FAIL: '4' }));
    writeFileSync(log, `${readFileSync(log, 'utf8')}{"event":"end","cluster":4,"attempt":2,"why":"o`);
    const summary = await runClusters(stampJob(4));
    expect(summary).toMatchObject({ ok: true, tornLines: 1, doneBefore: 3, attempts: 1 });
    const lines = readFileSync(log, 'utf8').split('\n');
    expect(lines.filter((line) => line.startsWith('{"event":"end","cluster":4,"attempt":2,"why":"o') && !line.endsWith('}'))).toHaveLength(1);
    const again = await runClusters(stampJob(4));
    expect(again).toMatchObject({ ok: true, tornLines: 1, attempts: 0 });
  });

  it('refuses to append to a file that is not a cluster-run log', async () => {
    writeFileSync(log, '{"name":"package.json"}\n{"other":1}\n');
    await expect(runClusters(stampJob(2))).rejects.toThrow(LogFormatError);
    expect(readFileSync(log, 'utf8')).toBe('{"name":"package.json"}\n{"other":1}\n');
  });

  it('reads a big log in one pass, with later attempts overriding earlier ones', async () => {
    const clusters = 20_000;
    const lines = [JSON.stringify({ event: 'run', version: 1, clusters, command: [process.execPath, fixture('stamp-child.mjs'), '{}'], shell: false, worker: null, pid: 1, host: 'h', time: new Date().toISOString() })];
    for (let cluster = 1; cluster <= clusters; cluster += 1) {
      lines.push(JSON.stringify({ event: 'start', cluster, attempt: 1, pid: 1, pidStart: 1, time: 't' }));
      const why = cluster % 1000 === 0 ? 'failed' : 'ok';
      lines.push(JSON.stringify({ event: 'end', cluster, attempt: 1, why, exitCode: why === 'ok' ? 0 : 1, signal: null, durationMs: 1, peakRss: null, time: 't' }));
    }
    writeFileSync(log, `${lines.join('\n')}\n`);
    const summary = await runClusters(stampJob(clusters));
    expect(summary).toMatchObject({ ok: true, doneBefore: clusters - 20, attempts: 20 });
    // One pass takes about 40 ms here; a pass per cluster would take hours. The bound sits far from
    // both, so a loaded machine cannot trip it.
    expect(summary.scanMs).toBeLessThan(10_000);
    expect([...startsPerCluster(readStamps(stamps)).keys()].sort((a, b) => a - b)).toEqual(
      Array.from({ length: 20 }, (_, i) => (i + 1) * 1000),
    );
  });
});

describe('options', () => {
  it.each([
    [{ jobs: 0 }, 'Invalid jobs: expected a whole number >= 1, got 0'],
    [{ clusters: 2.5 }, 'Invalid clusters: expected a whole number >= 1, got 2.5'],
    [{ timeout: '5 minutes' }, 'Invalid timeout: expected a duration such as 500ms, 30s, 5m or 1h, got "5 minutes"'],
    [{ maxRss: '-1G' }, 'Invalid maxRss: expected a size above zero such as 512M, 2G or 100k, got "-1G"'],
    [{ halt: 'later,fail=1' }, 'Invalid halt: expected never, now,fail=N, soon,fail=N or now,fail=N%, got "later,fail=1"'],
    [{ command: [] }, 'Invalid command: expected a command to run for each cluster (or a worker module), got []'],
  ])('refuses %j naming the option, what it expected and what it got', async (patch, message) => {
    const attempt = runClusters({ ...stampJob(2), ...patch } as RunOptions);
    await expect(attempt).rejects.toThrow(RunnerOptionError);
    await expect(runClusters({ ...stampJob(2), ...patch } as RunOptions)).rejects.toThrow(message);
    expect(existsSync(log)).toBe(false);
  });
});
