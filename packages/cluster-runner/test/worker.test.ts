import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { TempDir } from '@sitecache/test-services';
import { runClusters, WorkerModuleError, type RunOptions } from '@sitecache/cluster-runner';
import { alive, cli, fixture, jobFolder, readRecords, readStamps, stampViolations, startsPerCluster, waitFor } from './helpers.js';

let dir: TempDir;
let log: string;
let stamps: string;

beforeEach(async () => ({ dir, log, stamps } = await jobFolder('cluster-runner-worker')));
afterEach(() => dir.remove());

function workerJob(clusters: number, extra: Partial<RunOptions> = {}, env: Record<string, string> = {}): RunOptions {
  return {
    clusters,
    log,
    jobs: 3,
    worker: fixture('cluster-worker.mjs'),
    handleSignals: false,
    retryDelay: 10,
    env: { STAMPS: stamps, SLEEP_MS: '2', ...env },
    ...extra,
  };
}

/** Distinct worker processes that ran clusters, from the stamps. */
const workerPids = (): Set<number> => new Set(readStamps(stamps).map((stamp) => stamp.pid));

describe('worker mode', () => {
  it('runs every cluster exactly once on K long-lived workers', async () => {
    const summary = await runClusters(workerJob(60));
    expect(summary).toMatchObject({ ok: true, done: 60, attempts: 60 });
    const starts = startsPerCluster(readStamps(stamps));
    expect(starts.size).toBe(60);
    expect([...starts.values()].every((count) => count === 1)).toBe(true);
    expect(workerPids().size).toBeLessThanOrEqual(3);
    expect(stampViolations(readStamps(stamps), log)).toEqual([]);
    // The log is the same as a process-per-cluster run's, with the worker's pid in each start record.
    const starting = readRecords(log).filter((record) => record.event === 'start');
    expect(new Set(starting.map((record) => record.pid))).toEqual(workerPids());
    expect(readRecords(log)[0]).toMatchObject({ event: 'run', worker: fixture('cluster-worker.mjs'), command: null });
  });

  it('sends what a cluster prints to its own output files', async () => {
    await runClusters(workerJob(3));
    expect(readFileSync(`${log}.output/cluster-2.attempt-1.stdout`, 'utf8')).toBe('cluster 2/3 by 2/3\n');
  });

  it('replaces a worker after max-clusters-per-worker clusters', async () => {
    const summary = await runClusters(workerJob(12, { jobs: 2, maxClustersPerWorker: 3 }));
    expect(summary).toMatchObject({ ok: true, done: 12 });
    const perWorker = new Map<number, number>();
    for (const stamp of readStamps(stamps)) if (stamp.what === 'start') perWorker.set(stamp.pid, (perWorker.get(stamp.pid) ?? 0) + 1);
    expect(Math.max(...perWorker.values())).toBe(3);
    // Usually four workers of three clusters; a fifth when the last clusters fall to a fresh one.
    expect(perWorker.size).toBeGreaterThanOrEqual(4);
    expect(perWorker.size).toBeLessThanOrEqual(5);
  });

  it('replaces a worker whose memory grew past max-rss after a cluster, without failing the cluster', async () => {
    const summary = await runClusters(workerJob(8, { jobs: 1, maxRss: '150M' }, { LEAK_MB: '40' }));
    expect(summary).toMatchObject({ ok: true, done: 8 });
    // A fresh worker holds ~50 MB; 40 MB leaked per cluster passes 150 MB after the third cluster.
    expect(workerPids().size).toBeGreaterThanOrEqual(2);
    expect(workerPids().size).toBeLessThanOrEqual(4);
    for (const end of readRecords(log).filter((record) => record.event === 'end')) expect(end.why).toBe('ok');
  });

  it('records a cluster whose function throws as failed with the error, retries it, and keeps the worker', async () => {
    const summary = await runClusters(workerJob(4, { jobs: 1, retries: 1 }, { FAIL: '2', FAIL_UNTIL_ATTEMPT: '2' }));
    expect(summary).toMatchObject({ ok: true, done: 4, attempts: 5 });
    const failed = readRecords(log).find((record) => record.event === 'end' && record.why === 'failed');
    expect(failed).toMatchObject({ cluster: 2, attempt: 1, exitCode: null, error: expect.stringContaining('cluster 2 failed on purpose') });
    expect(workerPids().size).toBe(1);
  });

  it('times out a hanging cluster by stopping its worker, and carries on with a new one', async () => {
    const summary = await runClusters(workerJob(5, { jobs: 1, timeout: '500ms', grace: '300ms' }, { HANG: '3' }));
    expect(summary).toMatchObject({ ok: false, done: 4, failedClusters: [3] });
    const hung = readRecords(log).find((record) => record.event === 'end' && record.cluster === 3);
    expect(hung).toMatchObject({ why: 'timeout' });
    expect(workerPids().size).toBe(2);
  });

  it('resumes from the log like a process-per-cluster run', async () => {
    await runClusters(workerJob(6, {}, { FAIL: '5' }));
    const again = await runClusters(workerJob(6));
    expect(again).toMatchObject({ ok: true, doneBefore: 5, attempts: 1 });
    expect(startsPerCluster(readStamps(stamps)).get(5)).toBe(2);
  });

  it.each([
    ['exports no function', fixture('broken-worker.mjs'), /broken-worker\.mjs" cannot run clusters: it exports no function/],
    ['does not exist', fixture('no-such-worker.mjs'), /no-such-worker\.mjs" cannot run clusters: it failed to load/],
  ])('refuses a module that %s, naming it, before any cluster starts: nothing logged, nothing run', async (_, module, message) => {
    const attempt = runClusters({ ...workerJob(2), worker: module });
    await expect(attempt).rejects.toThrow(WorkerModuleError);
    await expect(attempt).rejects.toThrow(message);
    expect(existsSync(log)).toBe(false);
    expect(readStamps(stamps)).toEqual([]);
    expect(existsSync(`${log}.output`)).toBe(false);
  });

  it('a module refused on a --fresh run leaves the old log and its output where they were', async () => {
    await runClusters(workerJob(3, {}, { FAIL: '2' }));
    writeFileSync(`${log}.output/kept`, 'the first run\'s output');
    const before = readFileSync(log, 'utf8');
    const attempt = runClusters({ ...workerJob(3), fresh: true, worker: fixture('no-such-worker.mjs') });
    await expect(attempt).rejects.toThrow(WorkerModuleError);
    expect(readFileSync(log, 'utf8')).toBe(before);
    expect(readFileSync(`${log}.output/kept`, 'utf8')).toBe('the first run\'s output');
    expect(readdirSync(dirname(log)).filter((name) => name.startsWith('job.log.'))).toEqual(['job.log.output']);
  });

  it('a module that prints and then fails on a --fresh run: refused as such, the old log back, what it printed kept', async () => {
    await runClusters(workerJob(3));
    const before = readFileSync(log, 'utf8');
    const attempt = runClusters({ ...workerJob(3), fresh: true, worker: fixture('loud-broken-worker.mjs') });
    await expect(attempt).rejects.toThrow(WorkerModuleError);
    await expect(attempt).rejects.toThrow(/cannot start without a database/);
    expect(readFileSync(log, 'utf8')).toBe(before);
    // The new output folder holds what the module printed, so the old one stays set aside beside it.
    const outputs = readdirSync(dirname(log)).filter((name) => name.startsWith('job.log.') && name.endsWith('.output'));
    expect(outputs).toHaveLength(2);
    expect(readFileSync(`${log}.output/worker-1.stderr`, 'utf8')).toContain('no database at localhost:5432');
  });

  it('leaves no worker behind when the runner is killed with SIGKILL', async () => {
    const runner = cli(['--clusters', '6', '--jobs', '2', '--log', log, '--worker', fixture('cluster-worker.mjs')], {
      env: { STAMPS: stamps, SLEEP_MS: '60000' },
    });
    await waitFor(() => workerPids().size === 2, 10_000, 'two workers to start clusters');
    runner.kill('SIGKILL');
    await runner;
    // A worker exits as soon as its IPC channel to the runner closes.
    await waitFor(() => ![...workerPids()].some(alive), 5_000, 'the workers to exit');
    const resumed = await cli(['--clusters', '6', '--jobs', '2', '--log', log, '--worker', fixture('cluster-worker.mjs'), '--json'], {
      env: { STAMPS: stamps, SLEEP_MS: '2' },
    });
    expect(JSON.parse(resumed.stdout)).toMatchObject({ ok: true, done: 6 });
    expect(stampViolations(readStamps(stamps), log)).toEqual([]);
  });
});
