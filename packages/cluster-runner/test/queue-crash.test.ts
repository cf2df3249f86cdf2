import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { startRedis, type RedisServer, type TempDir } from '@sitecache/test-services';
import { alive, cli, fixture, jobFolder, overlaps, readQueueStamps, readStamps, waitFor, type QueueStamp } from './helpers.js';

// Queue mode under faults: a machine's runner killed with SIGKILL mid-run, again and again, and
// Redis restarted mid-run. Several runners stand for machines: separate processes, each with its
// own --host and --output-dir, on one real redis-server with its append-only file on.

let redis: RedisServer;
let dir: TempDir;
let stamps: string;

let client: Redis;

beforeAll(async () => {
  redis = await startRedis({ appendOnly: true });
  client = new Redis(redis.url);
  // Redis is restarted by a test below: the client reconnects, and its errors meanwhile are expected.
  client.on('error', () => undefined);
}, 30_000);
afterAll(async () => {
  client?.disconnect();
  await redis?.stop();
});
beforeEach(async () => ({ dir, stamps } = await jobFolder('cluster-runner-queue-crash')));
afterEach(() => dir.remove());

/**
 * A short lock keeps the test quick (a dead runner's clusters are taken up within 5.8 s of its
 * death), and long enough that a runner on a loaded CI machine renews its locks in time.
 */
const LOCK = '5s';

function runner(name: string, host: string, clusters: number, env: Record<string, string>, jobs = 3) {
  const args = [
    '--clusters', String(clusters), '--jobs', String(jobs), '--queue', redis.url, '--name', name, '--host', host,
    '--output-dir', join(dir.path, host), '--lock-duration', LOCK, '--json',
    '--', process.execPath, fixture('queue-child.mjs'), '{}',
  ];
  return cli(args, { env: { STAMPS: stamps, ...env } });
}

/** Clusters each cluster's ok end, from the stamps. */
function doneClusters(all: readonly QueueStamp[]): number[] {
  return [...new Set(all.filter((stamp) => stamp.what === 'end' && stamp.result === 'ok').map((stamp) => stamp.cluster))].sort((a, b) => a - b);
}

/** The processes of clusters `host` started that have not ended: what ran there when its runner died. */
function inFlight(host: string): QueueStamp[] {
  const open = new Map<number, QueueStamp>();
  for (const stamp of readQueueStamps(stamps)) {
    if (stamp.host !== host) continue;
    if (stamp.what === 'start') open.set(stamp.pid, stamp);
    // A process seen dead at an earlier kill was counted then: it is not in flight at the next one.
    else if (stamp.what === 'end' || stamp.what === 'dead') open.delete(stamp.pid);
  }
  return [...open.values()];
}

describe('a runner killed with SIGKILL, on one of three machines', () => {
  it('5 kills at random moments: every cluster done, never two copies at once, reruns bounded by what ran at the kills', async () => {
    const clusters = 300;
    const env = { SLEEP_MS: '50-250' };
    // The steady machines run one cluster at a time, so the job outlasts the five kills however
    // slowly the killed machine starts on a loaded CI machine.
    const steady = [runner('kills', 'm1', clusters, env, 1), runner('kills', 'm2', clusters, env, 1)];
    // Each killed runner has a host name of its own, so what each started is told apart to the end,
    // a start it stamped as it died included.
    const victims: { host: string; doneAtKill: Set<number> }[] = [];
    for (let kill = 1; kill <= 5; kill += 1) {
      const host = `m3-${kill}`;
      const victim = runner('kills', host, clusters, env);
      let exited = false;
      void victim.then(() => (exited = true));
      // A random moment that is mid-run whatever the machine's load: once this runner has started
      // 1 to 6 clusters of its own.
      const wanted = 1 + Math.floor(Math.random() * 6);
      await waitFor(() => exited || readQueueStamps(stamps).filter((stamp) => stamp.host === host && stamp.what === 'start').length >= wanted, 60_000, `${host} to start clusters`);
      expect(exited).toBe(false);
      victim.kill('SIGKILL');
      expect((await victim).signal).toBe('SIGKILL');
      // Its clusters die with it (their launcher kills them when its pipe to the runner closes),
      // long before their locks expire and another machine takes them up.
      const orphans = inFlight(host);
      await waitFor(() => orphans.every((stamp) => !alive(stamp.pid)), 5_000, 'the killed runner\'s clusters to die');
      for (const stamp of orphans) appendFileSync(stamps, `dead ${stamp.cluster} ${stamp.attempt} ${stamp.pid} ${host}\n`);
      // What the queue had recorded done of what it started: those may not run again.
      const started = new Set(readQueueStamps(stamps).filter((stamp) => stamp.host === host && stamp.what === 'start').map((stamp) => stamp.cluster));
      const doneAtKill = new Set<number>();
      for (const cluster of started) if ((await client.hget(`cluster-run:kills:cluster-${cluster}`, 'finishedOn')) !== null) doneAtKill.add(cluster);
      victims.push({ host, doneAtKill });
    }
    const last = runner('kills', 'm3', clusters, env);
    const results = await Promise.all([...steady, last]);
    for (const result of results) {
      expect(result.exitCode).toBe(0);
      expect(JSON.parse(result.stdout)).toMatchObject({ ok: true, done: clusters, failed: 0 });
    }

    const all = readQueueStamps(stamps);
    expect(overlaps(all)).toEqual([]);
    expect(doneClusters(all)).toEqual(Array.from({ length: clusters }, (_, i) => i + 1));
    // Only what a killed runner held ran again: a cluster it started that the queue had not recorded
    // done when it died (running then, or ended but not yet reported). Never one a live runner had.
    const startsOf = new Map<number, string[]>();
    for (const stamp of all) if (stamp.what === 'start') startsOf.set(stamp.cluster, [...(startsOf.get(stamp.cluster) ?? []), stamp.host]);
    const held = victims.reduce((sum, { host, doneAtKill }) => sum + new Set(all.filter((s) => s.host === host && s.what === 'start' && !doneAtKill.has(s.cluster)).map((s) => s.cluster)).size, 0);
    const reruns = [...startsOf].filter(([, hosts]) => hosts.length > 1).map(([cluster, hosts]) => ({ cluster, hosts }));
    const rerunFromLive = reruns.filter(({ hosts }) => hosts.slice(0, -1).some((host) => !host.startsWith('m3-')));
    expect(rerunFromLive).toEqual([]);
    expect(reruns.reduce((sum, { hosts }) => sum + hosts.length - 1, 0)).toBeLessThanOrEqual(held);
    expect(held).toBeGreaterThan(0);
  }, 150_000);
});

describe('a worker-mode runner killed with SIGKILL', () => {
  it('takes its workers, and what their clusters started, with it', async () => {
    const args = [
      '--clusters', '2', '--jobs', '2', '--queue', redis.url, '--name', 'workers-killed', '--host', 'm1',
      '--output-dir', join(dir.path, 'm1'), '--lock-duration', LOCK, '--worker', fixture('spawning-worker.mjs'),
    ];
    const victim = cli(args, { env: { STAMPS: stamps } });
    await waitFor(() => readStamps(stamps).length === 4, 30_000, 'two clusters to start their processes');
    const pids = readStamps(stamps).map((stamp) => stamp.pid);
    expect(new Set(pids).size).toBe(4);
    expect(pids.every(alive)).toBe(true);
    victim.kill('SIGKILL');
    await victim;
    await waitFor(() => !pids.some(alive), 5_000, 'the workers and their processes to die with their runner');
  }, 60_000);
});

describe('Redis unreachable for longer than half the lock', () => {
  it('stops the clusters before their locks can expire, and they run again later: never two copies at once', async () => {
    const clusters = 6;
    const env = { SLEEP_MS: '5000' };
    const runs = [runner('frozen', 'm1', clusters, env), runner('frozen', 'm2', clusters, env)];
    await waitFor(() => readQueueStamps(stamps).filter((stamp) => stamp.what === 'start').length >= 6, 60_000, 'six clusters to start');
    // SIGSTOP: the server keeps its connections but answers nothing, as behind a network partition.
    redis.process.signal('SIGSTOP');
    const frozenAt = Date.now();
    try {
      // Half of the 5 s lock passes without a renewal: each runner kills its clusters (by 2.9 s),
      // well before their locks (renewed every 0.83 s until the freeze) can expire.
      await new Promise((resolve) => setTimeout(resolve, 3_600 - (Date.now() - frozenAt)));
      const stopped = [...inFlight('m1'), ...inFlight('m2')];
      expect(stopped.length).toBeGreaterThan(0);
      expect(stopped.filter((stamp) => alive(stamp.pid))).toEqual([]);
      for (const stamp of stopped) appendFileSync(stamps, `dead ${stamp.cluster} ${stamp.attempt} ${stamp.pid} ${stamp.host}\n`);
    } finally {
      redis.process.signal('SIGCONT');
    }
    const results = await Promise.all(runs);
    for (const result of results) {
      expect(result.exitCode).toBe(0);
      expect(JSON.parse(result.stdout)).toMatchObject({ ok: true, done: clusters });
    }
    expect(results.map((result) => result.stderr).join('')).toMatch(/^cluster \d+\/6 interrupted \(signal SIGKILL: its lock could not be renewed for \d\.\ds \(Redis unreachable\?\), so it was stopped before another runner could take it\)/m);
    const all = readQueueStamps(stamps);
    expect(overlaps(all)).toEqual([]);
    expect(doneClusters(all)).toEqual(Array.from({ length: clusters }, (_, i) => i + 1));
  }, 120_000);
});

describe('Redis restarted mid-run', () => {
  it('with its append-only file on: the run completes and nothing is lost', async () => {
    const clusters = 120;
    const env = { SLEEP_MS: '50-150' };
    const runs = [runner('restart', 'm1', clusters, env), runner('restart', 'm2', clusters, env)];
    await waitFor(() => doneClusters(readQueueStamps(stamps)).length >= 30, 60_000, '30 clusters to be done');
    await redis.restart();
    const results = await Promise.all(runs);
    for (const result of results) {
      expect(result.exitCode).toBe(0);
      expect(JSON.parse(result.stdout)).toMatchObject({ ok: true, done: clusters, failed: 0 });
    }
    const all = readQueueStamps(stamps);
    expect(overlaps(all)).toEqual([]);
    expect(doneClusters(all)).toEqual(Array.from({ length: clusters }, (_, i) => i + 1));
    const status = await cli(['status', '--queue', redis.url, '--name', 'restart', '--json']);
    expect(JSON.parse(status.stdout)).toMatchObject({ clusters, done: clusters, running: [], waiting: 0, failed: [] });
  }, 120_000);
});
