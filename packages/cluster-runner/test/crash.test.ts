import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { execa, type ResultPromise } from 'execa';
import type { TempDir } from '@sitecache/test-services';
import { alive, cli, fixture, jobFolder, readRecords, readStamps, stampViolations, waitFor } from './helpers.js';

let dir: TempDir;
let log: string;
let stamps: string;

beforeEach(async () => ({ dir, log, stamps } = await jobFolder('cluster-runner-crash')));
afterEach(() => dir.remove());

function stampArgs(clusters: number, extra: readonly string[] = []): string[] {
  return ['--clusters', String(clusters), '--jobs', '3', '--log', log, '--grace', '3s', ...extra, '--', process.execPath, fixture('stamp-child.mjs'), '{}'];
}

function startTime(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
}

/** Attempts the log shows launched or started and not ended: a runner died while they ran. */
function openAttempts(path: string): number {
  const open = new Set<string>();
  for (const record of readRecords(path)) {
    const key = `${record.cluster}/${record.attempt}`;
    if (record.event === 'launch' || record.event === 'start') open.add(key);
    else if (record.event === 'end') open.delete(key);
  }
  return open.size;
}

/** The first line of a log that a dead runner of `stampArgs(clusters)` wrote. */
function runRecord(clusters: number): string {
  const command = [process.execPath, fixture('stamp-child.mjs'), '{}'];
  return JSON.stringify({ event: 'run', version: 1, clusters, command, shell: false, worker: null, pid: 1, host: 'h', time: new Date().toISOString() });
}

describe('a runner killed with SIGKILL', () => {
  it('resumes after up to 25 SIGKILLs mid-run: every cluster done exactly once, never two copies at once, no attempt number reused', async () => {
    const env = { STAMPS: stamps, SLEEP_MS: '40-120' };
    const args = stampArgs(120);
    const starts = (): number => (existsSync(log) ? readRecords(log).filter((record) => record.event === 'start').length : 0);
    let kills = 0;
    let killsWithClustersRunning = 0;
    while (kills < 25) {
      const runner = cli(args, { env });
      let exited = false;
      void runner.then(() => (exited = true));
      // A random moment that is mid-run whatever the machine's load: once this run has started 1 to
      // 6 clusters of its own (a wall-clock delay could fall before its start or after its end).
      const wanted = starts() + 1 + Math.floor(Math.random() * 6);
      await waitFor(() => exited || starts() >= wanted, 30_000, 'the run to start clusters');
      runner.kill('SIGKILL');
      const result = await runner;
      if (result.signal !== 'SIGKILL') break; // it finished first: the job is done
      kills += 1;
      if (openAttempts(log) > 0) killsWithClustersRunning += 1;
    }
    // A kill that follows a start record finds that cluster still running (it sleeps 40 ms or more),
    // so the later runs had children of dead runners to stop.
    expect(killsWithClustersRunning).toBeGreaterThanOrEqual(3);
    const final = await cli(stampArgs(120, ['--json']), { env });
    expect(final.stderr).not.toMatch(/cluster-run: [A-Z]/);
    expect(final.exitCode).toBe(0);
    expect(JSON.parse(final.stdout)).toMatchObject({ ok: true, done: 120 });

    const records = readRecords(log);
    const done = records.filter((record) => record.event === 'end' && record.why === 'ok').map((record) => record.cluster as number);
    expect(done.sort((a, b) => a - b)).toEqual(Array.from({ length: 120 }, (_, i) => i + 1));
    const launched = records.filter((record) => record.event === 'launch').map((record) => `${record.cluster}/${record.attempt}`);
    expect(new Set(launched).size).toBe(launched.length);
    // The runner died with children running: later runs found and closed those attempts.
    expect(records.some((record) => record.event === 'end' && record.error === 'the runner died while this attempt ran')).toBe(true);
    expect(stampViolations(readStamps(stamps), log)).toEqual([]);
  }, 180_000);

  it('leaves children that the next run stops before running their clusters again', async () => {
    const env = { STAMPS: stamps, SLEEP_MS: '60000' };
    const runner = cli(stampArgs(3), { env });
    await waitFor(() => readStamps(stamps).filter((stamp) => stamp.what === 'start').length === 3, 10_000, 'three clusters to start');
    runner.kill('SIGKILL');
    await runner;
    const orphans = readStamps(stamps).map((stamp) => stamp.pid);
    expect(orphans.every(alive)).toBe(true);

    const next = await cli(stampArgs(3, ['--json']), { env: { ...env, SLEEP_MS: '5' } });
    expect(JSON.parse(next.stdout)).toMatchObject({ ok: true, orphansStopped: 3 });
    expect(orphans.some(alive)).toBe(false);
    expect(next.stderr).toMatch(/stopping pid \d+ \(cluster \d\/3\), left running by a runner that died/);
    expect(stampViolations(readStamps(stamps), log)).toEqual([]);
    const interrupted = readRecords(log).filter((record) => record.event === 'end' && record.why === 'interrupted');
    expect(interrupted.map((record) => record.signal)).toEqual(['SIGTERM', 'SIGTERM', 'SIGTERM']);
  }, 30_000);

  it('does not mistake a reused pid for its child: the start time must match', async () => {
    const stranger = execa('sleep', ['30'], { reject: false });
    const pid = stranger.pid as number;
    const reused = { event: 'start', cluster: 1, attempt: 1, pid, pidStart: startTime(pid) - 1, time: new Date().toISOString() };
    writeFileSync(log, `${runRecord(2)}\n${JSON.stringify(reused)}\n`);
    const result = await cli(stampArgs(2, ['--json']), { env: { STAMPS: stamps } });
    expect(JSON.parse(result.stdout)).toMatchObject({ ok: true, orphansStopped: 0 });
    expect(alive(pid)).toBe(true);
    stranger.kill('SIGKILL');
    await stranger;
  }, 30_000);
});

describe('looking for processes a dead runner left', () => {
  /** A process that is no cluster's but carries this log in its environment, as a cluster's process does. */
  async function strayCarryingTheLog(): Promise<{ pid: number; stray: ResultPromise }> {
    const stray = execa('sleep', ['30'], { reject: false, env: { CLUSTER_RUN_LOG: log } });
    const pid = stray.pid as number;
    await waitFor(() => readFileSync(`/proc/${pid}/environ`, 'utf8').includes(`\0CLUSTER_RUN_LOG=${log}\0`), 5_000, 'the stray to exec');
    return { pid, stray };
  }

  it('reads no process environment when the log has no attempt left open: a process carrying the log is left alone', async () => {
    expect((await cli(stampArgs(2), { env: { STAMPS: stamps } })).exitCode).toBe(0);
    const { pid, stray } = await strayCarryingTheLog();
    const result = await cli(stampArgs(2, ['--json']), { env: { STAMPS: stamps } });
    expect(JSON.parse(result.stdout)).toMatchObject({ ok: true, orphansStopped: 0 });
    expect(alive(pid)).toBe(true);
    stray.kill('SIGKILL');
    await stray;
  }, 30_000);

  it('with an attempt left open, finds a process by the log in its environment and stops it before the cluster runs again', async () => {
    const launched = { event: 'launch', cluster: 1, attempt: 1, time: new Date().toISOString() };
    writeFileSync(log, `${runRecord(2)}\n${JSON.stringify(launched)}\n`);
    const { pid, stray } = await strayCarryingTheLog();
    const result = await cli(stampArgs(2, ['--json']), { env: { STAMPS: stamps } });
    expect(JSON.parse(result.stdout)).toMatchObject({ ok: true, orphansStopped: 1, attempts: 2 });
    expect((await stray).signal).toBe('SIGTERM');
    // The only attempt the log left open without a pid is the one it ran.
    expect(result.stderr).toContain(`stopping pid ${pid} (cluster 1/2), left running by a runner that died`);
    expect(readRecords(log).find((record) => record.event === 'end' && record.cluster === 1)).toMatchObject({ attempt: 1, why: 'interrupted', signal: 'SIGTERM' });
  }, 30_000);
});

describe('signals', () => {
  it('on SIGTERM stops launching, forwards it to the children, records them as interrupted and exits 143', async () => {
    const env = { STAMPS: stamps, SLEEP_MS: '60000' };
    const runner = cli(stampArgs(6), { env });
    await waitFor(() => readStamps(stamps).filter((stamp) => stamp.what === 'start').length === 3, 10_000, 'three clusters to start');
    runner.kill('SIGTERM');
    const result = await runner;
    expect(result.exitCode).toBe(143);
    expect(result.stderr).toContain('stopping (SIGTERM)');
    expect(readStamps(stamps).filter((stamp) => stamp.what === 'term')).toHaveLength(3);
    const ends = readRecords(log).filter((record) => record.event === 'end');
    expect(ends.map((record) => record.why)).toEqual(['interrupted', 'interrupted', 'interrupted']);
    expect(readRecords(log).filter((record) => record.event === 'start')).toHaveLength(3);

    const rerun = await cli(stampArgs(6, ['--json']), { env: { ...env, SLEEP_MS: '5' } });
    expect(JSON.parse(rerun.stdout)).toMatchObject({ ok: true, attempts: 6 });
    expect(stampViolations(readStamps(stamps), log)).toEqual([]);
  }, 30_000);

  it('kills a child that ignores the forwarded signal once the grace period is over', async () => {
    const runner = cli(['--clusters', '1', '--log', log, '--grace', '300ms', '--', process.execPath, fixture('hang-child.mjs')], {
      env: { IGNORE_TERM: '1' },
    });
    await waitFor(() => readFileSync(`${log}.output/cluster-1.attempt-1.stdout`, 'utf8') === 'ready\n', 10_000, 'the child to ignore SIGTERM');
    const child = readRecords(log).find((record) => record.event === 'start')?.pid as number;
    const began = Date.now();
    runner.kill('SIGTERM');
    const result = await runner;
    expect(result.exitCode).toBe(143);
    // After the 300 ms grace, and long before the 10 s default: the bound leaves room for a loaded machine.
    expect(Date.now() - began).toBeGreaterThanOrEqual(300);
    expect(Date.now() - began).toBeLessThan(10_000);
    expect(alive(child)).toBe(false);
    expect(readRecords(log).find((record) => record.event === 'end')).toMatchObject({ why: 'interrupted', signal: 'SIGKILL' });
  }, 30_000);
});

describe('a launcher killed under the runner', () => {
  it('stops the clusters it started, records them as failed with the reason, and the run goes on', async () => {
    const env = { STAMPS: stamps, SLEEP_MS: '1500' };
    const runner = cli(stampArgs(3, ['--retries', '1', '--retry-delay', '10ms']), { env });
    await waitFor(() => readStamps(stamps).filter((stamp) => stamp.what === 'start').length === 3, 10_000, 'three clusters to start');
    const launchers = readdirSync('/proc')
      .filter((name) => /^\d+$/.test(name))
      .filter((pid) => {
        try {
          return readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes('launcher-entry.') && readFileSync(`/proc/${pid}/stat`, 'latin1').split(') ')[1]?.split(' ')[1] === String(runner.pid);
        } catch {
          return false;
        }
      });
    expect(launchers).toHaveLength(3);
    process.kill(Number(launchers[0]), 'SIGKILL');
    const result = await runner;
    expect(result.exitCode).toBe(0);
    const lost = readRecords(log).filter((record) => record.event === 'end' && record.why === 'failed');
    expect(lost).toHaveLength(1);
    expect(lost[0]?.error).toMatch(/^the launcher that started it exited \(code null, signal SIGKILL\), so it was stopped$/);
    // Its process was gone before the failure was recorded and the retry started: never two
    // copies of a cluster at once. (SIGKILL leaves no stamp, so the log's order tells.)
    const records = readRecords(log);
    const cluster = lost[0]?.cluster;
    const killedPid = records.find((record) => record.event === 'start' && record.cluster === cluster && record.attempt === 1)?.pid as number;
    expect(alive(killedPid)).toBe(false);
    const order = records.filter((record) => record.cluster === cluster && record.event !== 'launch').map((record) => `${record.event} ${record.attempt}`);
    expect(order).toEqual(['start 1', 'end 1', 'start 2', 'end 2']);
  }, 30_000);
});

describe('one runner per log', () => {
  it('refuses a second runner, naming the holder pid, and takes over the lock once the holder died', async () => {
    const env = { STAMPS: stamps, SLEEP_MS: '60000' };
    const first = cli(stampArgs(3), { env });
    await waitFor(() => readStamps(stamps).length >= 1, 10_000, 'the first runner to start a cluster');
    const second = await cli(stampArgs(3), { env });
    expect(second.exitCode).toBe(2);
    expect(second.stderr).toContain(`is in use by another cluster-run (pid ${first.pid})`);

    first.kill('SIGKILL');
    await first;
    expect(readFileSync(`${log}.lock`, 'utf8')).toContain(`"pid":${first.pid}`);
    const third = await cli(stampArgs(3, ['--json']), { env: { ...env, SLEEP_MS: '5' } });
    expect(third.exitCode).toBe(0);
    expect(JSON.parse(third.stdout)).toMatchObject({ ok: true });
    expect(stampViolations(readStamps(stamps), log)).toEqual([]);
  }, 30_000);
});
