import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { cacheKey } from '@sitecache/cache-key';
import { makeTempDir, memcachedSet, sendRaw, startMemcached, startNginx, type TempDir } from '@sitecache/test-services';

const run = promisify(execFile);
// The CLI as the source has it, not a build that may be older: run with tsx's loader, resolved from
// here to an absolute URL.
const cliSource = fileURLToPath(new URL('../src/cli.ts', import.meta.url));
const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', tsx, cliSource, ...args]);
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failure = error as { code: number; stdout: string; stderr: string };
    return { code: failure.code, stdout: failure.stdout, stderr: failure.stderr };
  }
}

describe('sitecache-nginx', () => {
  let dir: TempDir;
  let configFile: string;

  beforeAll(async () => {
    dir = await makeTempDir('sitecache-cli');
    configFile = join(dir.path, 'sitecache.config.json');
    await writeFile(configFile, JSON.stringify({ hosts: ['www.example.com'], memcached: ['127.0.0.1:11211'], app: ['127.0.0.1:3000'] }));
  });
  afterAll(() => dir.remove());

  it('prints its usage with --help', async () => {
    const { code, stdout } = await cli(['--help']);
    expect(code).toBe(0);
    expect(stdout).toContain('Usage: sitecache-nginx');
    expect(stdout).toContain('--standalone');
  });

  it('prints an include-able snippet by default', async () => {
    const { code, stdout } = await cli(['--config', configFile]);
    expect(code).toBe(0);
    expect(stdout).toContain('upstream sitecache_memcached {');
    expect(stdout).not.toContain('events {');
  });

  it('prints a standalone nginx.conf that nginx runs as it is, serving hits', async () => {
    const memcached = await startMemcached();
    const nginx = await startNginx(async ({ port, prefix }) => {
      const file = join(prefix, 'site.json');
      await writeFile(file, JSON.stringify({ hosts: ['www.example.com'], listen: `127.0.0.1:${port}`, memcached: [memcached.address], app: ['127.0.0.1:1'], gzip: false }));
      const { stdout } = await cli(['--config', file, '--standalone', '--prefix', prefix]);
      return stdout;
    });
    try {
      await memcachedSet(memcached.address, cacheKey('https://www.example.com/'), 'home');
      const response = await sendRaw(nginx.port, 'GET / HTTP/1.1\r\nHost: www.example.com\r\nConnection: close\r\n\r\n');
      expect(response.headers['x-cache']).toBe('HIT');
      expect(response.body.toString()).toBe('home');
    } finally {
      await nginx.stop();
      await memcached.stop();
    }
  });

  it('writes to --output and reports nginx -t with --check', async () => {
    const output = join(dir.path, 'out.conf');
    const { code, stderr } = await cli(['--config', configFile, '--output', output, '--check']);
    expect(code).toBe(0);
    expect(stderr).toContain('test is successful');
    expect(await readFile(output, 'utf8')).toContain('set_md5 $memcached_key "https://$host$sitecache_key_uri";');
  });

  it("fails --check with nginx's own message", async () => {
    const file = join(dir.path, 'unresolvable.json');
    await writeFile(file, JSON.stringify({ hosts: ['www.example.com'], memcached: ['no-such-host.invalid:11211'], app: ['127.0.0.1:3000'] }));
    const { code, stderr } = await cli(['--config', file, '--check']);
    expect(code).toBe(1);
    expect(stderr).toContain('host not found in upstream "no-such-host.invalid:11211"');
  });

  it("sets the app's idle-connection timeout with --app-keepalive-timeout, and names a bad one", async () => {
    const { stdout } = await cli(['--config', configFile, '--app-keepalive-timeout', '2500ms']);
    expect(stdout).toContain('keepalive_timeout 2500ms;');
    const { code, stderr } = await cli(['--config', configFile, '--app-keepalive-timeout', '0']);
    expect(code).toBe(1);
    expect(stderr).toContain('Invalid nginx-conf option "appKeepaliveTimeout"');
  });

  it('names the bad field of a bad config and exits 1', async () => {
    const file = join(dir.path, 'bad.json');
    await writeFile(file, JSON.stringify({ hosts: ['www.example.com'], memcached: ['localhost'], app: ['127.0.0.1:3000'] }));
    const { code, stderr } = await cli(['--config', file]);
    expect(code).toBe(1);
    expect(stderr).toContain('Invalid config field "memcached[0]"');
    expect(stderr).toContain('expected "host:port" or "unix:/path", got "localhost"');
  });

  it('names an unknown option and shows the usage', async () => {
    const { code, stderr } = await cli(['--config', configFile, '--stand-alone']);
    expect(code).toBe(1);
    expect(stderr).toContain("Unknown option '--stand-alone'");
    expect(stderr).toContain('Usage: sitecache-nginx');
  });
});
