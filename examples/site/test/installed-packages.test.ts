import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeTempDir, type TempDir } from '@sitecache/test-services';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const PUBLISHED = ['nginx-model', 'config', 'cache-key', 'cache-store', 'nginx-conf', 'cluster-runner'];

// The packages as users get them: packed tarballs installed with npm into a project outside the
// workspace, used from ESM and CommonJS, bins included.
describe('the published packages, installed from their tarballs', () => {
  let project: TempDir;
  const run = (file: string, args: string[]): string => execFileSync(file, args, { cwd: project.path, encoding: 'utf8' });

  beforeAll(async () => {
    project = await makeTempDir('sitecache-consumer');
    const tarballs = join(project.path, 'tarballs');
    for (const name of PUBLISHED) {
      execFileSync('pnpm', ['pack', '--pack-destination', tarballs], { cwd: join(ROOT, 'packages', name), stdio: 'pipe' });
    }
    writeFileSync(join(project.path, 'package.json'), JSON.stringify({ name: 'consumer', private: true }));
    const files = readdirSync(tarballs).map((file) => join(tarballs, file));
    expect(files).toHaveLength(PUBLISHED.length);
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--silent', ...files], { cwd: project.path, stdio: 'pipe' });
  }, 180_000);

  afterAll(() => project?.remove());

  it('works from ESM', () => {
    writeFileSync(
      join(project.path, 'esm.mjs'),
      `import { parseConfig } from '@sitecache/config';
import { createHashRing, GZIP_FLAG } from '@sitecache/nginx-model';
import { cacheKey } from '@sitecache/cache-key';
import { renderNginxConf } from '@sitecache/nginx-conf';
import { pageCache } from '@sitecache/cache-store';
import { clusterRange, parseCluster } from '@sitecache/cluster-runner';
const config = parseConfig({ hosts: ['www.example.com'], memcached: ['127.0.0.1:11211', '127.0.0.1:11212'], app: ['127.0.0.1:3000'] });
console.log(JSON.stringify({
  key: cacheKey('https://www.example.com/'),
  conf: renderNginxConf(config).includes('set_md5 $memcached_key'),
  ring: typeof createHashRing, middleware: typeof pageCache,
  range: clusterRange(10, 3, 3), cluster: parseCluster('3/10'), flag: GZIP_FLAG,
}));`,
    );
    expect(JSON.parse(run(process.execPath, ['esm.mjs']))).toEqual({
      key: 'dcbfe5ad9e8af3495ca4582e364c1bce',
      conf: true,
      ring: 'function',
      middleware: 'function',
      range: { offset: 7, limit: 3 },
      cluster: { index: 3, total: 10 },
      flag: 16,
    });
  });

  it('works from CommonJS', () => {
    writeFileSync(
      join(project.path, 'cjs.cjs'),
      `const { cacheKey } = require('@sitecache/cache-key');
const { loadConfig } = require('@sitecache/config');
const { renderNginxConf } = require('@sitecache/nginx-conf');
const { createPageStore } = require('@sitecache/cache-store');
const { clusterKeyRange } = require('@sitecache/cluster-runner');
console.log(JSON.stringify({ key: cacheKey('https://www.example.com/'), types: [typeof loadConfig, typeof renderNginxConf, typeof createPageStore], keys: clusterKeyRange(1, 100, 1, 4) }));`,
    );
    expect(JSON.parse(run(process.execPath, ['cjs.cjs']))).toEqual({
      key: 'dcbfe5ad9e8af3495ca4582e364c1bce',
      types: ['function', 'function', 'function'],
      keys: { first: 1, last: 25 },
    });
  });

  it.each([
    ['sitecache-nginx', 'Usage: sitecache-nginx'],
    ['sitecache', 'Usage: sitecache <command>'],
    ['cluster-run', 'Usage: cluster-run'],
  ])('installs the %s bin', (bin, usage) => {
    expect(run(join(project.path, 'node_modules', '.bin', bin), ['--help'])).toContain(usage);
  });
});
