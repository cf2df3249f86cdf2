import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import type { TempDir } from '@sitecache/test-services';
import { cli, fixture, jobFolder, readStamps, startsPerCluster } from './helpers.js';

// The bin as users run it: `cluster-run --clusters N --jobs K --log FILE [options] -- COMMAND ARGS...`.

let dir: TempDir;
let log: string;
let stamps: string;

beforeEach(async () => ({ dir, log, stamps } = await jobFolder('cluster-runner-cli')));
afterEach(() => dir.remove());

const stampCommand = (): string[] => ['--', process.execPath, fixture('stamp-child.mjs'), '{}'];

describe('cluster-run', () => {
  it('--help prints the usage and exits 0', async () => {
    const result = await cli(['--help']);
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toMatch(/^Usage: cluster-run --clusters N --log FILE \[options\] -- COMMAND \[ARGS...\]/);
    for (const option of ['--jobs', '--fresh', '--shell', '--retries', '--timeout', '--halt', '--mem-free', '--max-rss', '--worker', '--max-clusters-per-worker', '--json']) {
      expect(result.stdout).toContain(option);
    }
  });

  it('without a TTY prints one plain line per finished cluster and a summary, and exits 0 when all are done', async () => {
    const result = await cli(['--clusters', '3', '--jobs', '2', '--log', log, ...stampCommand()], { env: { STAMPS: stamps } });
    expect(result.exitCode).toBe(0);
    const lines = result.stderr.split('\n');
    for (const cluster of [1, 2, 3]) expect(lines.some((line) => new RegExp(`^cluster ${cluster}/3 ok in \\d+\\.\\d\\ds, attempt 1$`).test(line))).toBe(true);
    expect(result.stderr).toContain('cluster-run: 3 of 3 clusters done; 3 attempts in');
    expect(result.stderr).not.toContain('\x1b[');
    expect(result.stdout).toBe('');
  });

  it('exits 1 naming the clusters that are not done, and resumes them when run again', async () => {
    const args = ['--clusters', '5', '--log', log, '--retries', '1', '--retry-delay', '10ms', ...stampCommand()];
    const failing = await cli(args, { env: { STAMPS: stamps, FAIL: '2,4' } });
    expect(failing.exitCode).toBe(1);
    expect(failing.stderr).toMatch(/^cluster 2\/5 failed \(exit code 1\) in \d+\.\d\ds, attempt 1; retry in 0\.01s$/m);
    expect(failing.stderr).toContain('not done: 2, 4 (rerun the same command to retry them)');
    const again = await cli([...args.slice(0, -4), '--json', ...stampCommand()], { env: { STAMPS: stamps } });
    expect(again.exitCode).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ ok: true, done: 5, doneBefore: 3, attempts: 2 });
  });

  it('refuses a bad option with exit 2, naming the flag and the value, before touching the log', async () => {
    const result = await cli(['--clusters', 'ten', '--log', log, ...stampCommand()]);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toBe('cluster-run: Invalid --clusters: expected a whole number >= 1, got "ten"');
    expect(existsSync(log)).toBe(false);
    const size = await cli(['--clusters', '2', '--log', log, '--max-rss', 'lots', ...stampCommand()]);
    expect(size.stderr).toContain('Invalid --max-rss: expected a size above zero such as 512M, 2G or 100k, got "lots"');
  });

  it('refuses an unknown flag with exit 2 and the usage', async () => {
    const result = await cli(['--clusters', '2', '--log', log, '--parallel', '3', ...stampCommand()]);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toMatch(/cluster-run: Unknown option '--parallel'/);
    expect(result.stderr).toContain('Usage: cluster-run');
  });

  it('refuses a worker module that does not load with exit 2, naming it, before any cluster starts', async () => {
    const missing = join(dir.path, 'missing-worker.mjs');
    const result = await cli(['--clusters', '2', '--log', log, '--worker', missing]);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain(`cluster-run: Worker module "${missing}" cannot run clusters: it failed to load`);
    expect(existsSync(log)).toBe(false);
  });

  it('refuses a log written for another job with exit 2 and the way out', async () => {
    await cli(['--clusters', '2', '--log', log, ...stampCommand()], { env: { STAMPS: stamps } });
    const result = await cli(['--clusters', '3', '--log', log, ...stampCommand()], { env: { STAMPS: stamps } });
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toMatch(/was written for 2 clusters .* but this run is 3 clusters .* pass --fresh to start over/);
    expect(readStamps(stamps)).toHaveLength(4);
  });
});

describe('the CommonJS build', () => {
  it('runs a job from require(), as the README shows it', async () => {
    // Installed under its name, so require() goes through the package's exports map to dist/index.cjs.
    mkdirSync(join(dir.path, 'node_modules/@sitecache'), { recursive: true });
    symlinkSync(fileURLToPath(new URL('..', import.meta.url)), join(dir.path, 'node_modules/@sitecache/cluster-runner'));
    const command = JSON.stringify([process.execPath, fixture('stamp-child.mjs'), '{}']);
    writeFileSync(
      join(dir.path, 'run.cjs'),
      `const { runClusters } = require('@sitecache/cluster-runner');\n` +
        `runClusters({ clusters: 3, jobs: 2, log: 'job.log', command: ${command} }).then((summary) => {\n` +
        `  if (!summary.ok) process.exitCode = 1;\n` +
        `});\n`,
    );
    const result = await execa(process.execPath, ['run.cjs'], { cwd: dir.path, env: { STAMPS: stamps }, reject: false });
    expect(result.stderr).toBe('');
    expect(result.exitCode).toBe(0);
    expect(startsPerCluster(readStamps(stamps))).toEqual(new Map([[1, 1], [2, 1], [3, 1]]));
  });
});
