import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cacheKey } from '@sitecache/cache-key';
import { freePort, makeTempDir, memcachedGet, startMemcached, type MemcachedServer, type TempDir } from '@sitecache/test-services';
import { createPageStore, type PageStore, type ServerStats } from '../src/index.js';
import { HOST, sitecache, STEADY, testConfig } from './site.js';

describe('the sitecache bin', () => {
  let servers: MemcachedServer[];
  let dir: TempDir;
  let configFile: string;
  let store: PageStore;

  beforeAll(async () => {
    servers = [await startMemcached(), await startMemcached()];
    dir = await makeTempDir('sitecache-cli');
    const fields = { hosts: [HOST, 'example.test'], memcached: servers.map((s) => s.address), app: ['127.0.0.1:9'], gzip: false };
    configFile = join(dir.path, 'sitecache.config.json');
    await writeFile(configFile, JSON.stringify(fields));
    store = createPageStore(testConfig(fields.memcached, fields), STEADY);
  });
  afterAll(async () => {
    await store?.close();
    for (const s of servers ?? []) await s.stop();
    await dir?.remove();
  });

  const held = async (url: string): Promise<boolean> => {
    const key = cacheKey(url);
    return (await memcachedGet(store.serverFor(key), key)) !== null;
  };

  it('purges the URLs it is given and a path under every configured host, one line per page', async () => {
    for (const url of [`https://${HOST}/a`, `https://${HOST}/b`, 'https://example.test/b', `https://${HOST}/keep`]) await store.put(url, 'x');
    const result = await sitecache(['purge', '--config', configFile, `https://${HOST}/a`, '/b', `https://${HOST}/never`]);
    expect(result.code).toBe(0);
    const lines = result.stdout.trim().split('\n').map((line) => line.split('\t').slice(0, 2));
    expect(lines).toEqual([
      ['purged', `https://${HOST}/a`],
      ['purged', `https://${HOST}/b`],
      ['purged', 'https://example.test/b'],
      ['not-cached', `https://${HOST}/never`],
    ]);
    expect(await held(`https://${HOST}/a`)).toBe(false);
    expect(await held('https://example.test/b')).toBe(false);
    expect(await held(`https://${HOST}/keep`)).toBe(true);
  });

  it('purges the fresh copy only with --soft, keeping the stale copy, and both without it', async () => {
    const graceFile = join(dir.path, 'grace.json');
    const fields = { hosts: [HOST], memcached: servers.map((s) => s.address), app: ['127.0.0.1:9'], gzip: false, grace: 120 };
    await writeFile(graceFile, JSON.stringify(fields));
    const graceStore = createPageStore(testConfig(fields.memcached, fields), STEADY);
    try {
      const page = `https://${HOST}/soft`;
      await graceStore.put(page, '<p>soft</p>');
      const soft = await sitecache(['purge', '--soft', '--config', graceFile, page]);
      expect([soft.code, soft.stdout.split('\t')[0]]).toEqual([0, 'purged']);
      expect(await graceStore.get(page)).toBeUndefined();
      expect((await graceStore.get(page, { stale: true }))?.body.toString()).toBe('<p>soft</p>');
      const hard = await sitecache(['purge', '--config', graceFile, page]);
      expect([hard.code, hard.stdout.split('\t')[0]]).toEqual([0, 'purged']);
      expect(await graceStore.get(page, { stale: true })).toBeUndefined();
      expect((await sitecache(['purge', '--soft', '--all', '--config', graceFile])).code).toBe(2);
    } finally {
      await graceStore.close();
    }
  });

  it('purges by tag with --tag, keeping the stale copies with --soft, one line per server and a total', async () => {
    for (const path of ['/t/1', '/t/2', '/t/3']) await store.put(`https://${HOST}${path}`, 'x', { tags: [path === '/t/3' ? 'other' : 'cli-tag', 'all'] });
    const result = await sitecache(['purge', '--config', configFile, '--tag', 'cli-tag', '--tag', 'nothing']);
    expect(result.code).toBe(0);
    const lines = result.stdout.trim().split('\n');
    expect(lines.slice(0, -1).map((line) => line.split('\t')[0])).toEqual(servers.map((s) => s.address));
    expect(lines.at(-1)).toBe('total\tpurged 2');
    expect(await held(`https://${HOST}/t/1`)).toBe(false);
    expect(await held(`https://${HOST}/t/3`)).toBe(true);
    const soft = await sitecache(['purge', '--config', configFile, '--soft', '--tag', 'all']);
    expect([soft.code, soft.stdout.trim().split('\n').at(-1)]).toEqual([0, 'total\tpurged 1']);
    const usage = await sitecache(['purge', '--config', configFile, '--tag', 'a', '--all']);
    expect(usage.code).toBe(2);
  });

  it('takes the arguments after purge --tag as more tags, as --help writes it, and --tag repeated', async () => {
    for (const tag of ['one', 'two', 'three', 'four']) await store.put(`https://${HOST}/many/${tag}`, 'x', { tags: [tag] });
    const listed = await sitecache(['purge', '--config', configFile, '--tag', 'one', 'two']);
    expect([listed.code, listed.stdout.trim().split('\n').at(-1)]).toEqual([0, 'total\tpurged 2']);
    const repeated = await sitecache(['purge', '--config', configFile, '--tag', 'three', '--tag', 'four']);
    expect([repeated.code, repeated.stdout.trim().split('\n').at(-1)]).toEqual([0, 'total\tpurged 2']);
    for (const tag of ['one', 'two', 'three', 'four']) expect(await held(`https://${HOST}/many/${tag}`)).toBe(false);
  });

  it('exits 2, bad usage, for a tag that cannot be one, naming it', async () => {
    const result = await sitecache(['purge', '--config', configFile, '--tag', 'a b']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('Invalid tag "a b": a tag is printable ASCII without spaces');
  });

  it('refuses a URL after --tag, which would be taken for a tag and purge nothing; a --tag of its own takes it', async () => {
    const mixed = await sitecache(['purge', '--config', configFile, '--tag', 'a', `https://${HOST}/page`]);
    expect(mixed.code).toBe(2);
    expect(mixed.stderr).toContain(`"https://${HOST}/page" after --tag looks like a URL: purge URLs and tags in separate commands`);
    expect((await sitecache(['purge', '--config', configFile, '--tag', 'a', '/page'])).code).toBe(2);
    const own = await sitecache(['purge', '--config', configFile, '--tag', 'a', '--tag', 'https://tag.example/x']);
    expect([own.code, own.stdout.trim().split('\n').at(-1)]).toEqual([0, 'total\tpurged 0']);
  });

  it("prints the help the README's CLI section shows, word for word", async () => {
    const help = await sitecache(['--help']);
    const readme = await readFile(fileURLToPath(new URL('../README.md', import.meta.url)), 'utf8');
    const copy = /## CLI: `sitecache`\n\n```\n([\s\S]*?)```\n/.exec(readme)?.[1];
    expect([help.code, copy]).toEqual([0, help.stdout]);
  });

  it('prints per-server stats as JSON with --json and as a table otherwise', async () => {
    await store.put(`https://${HOST}/counted`, 'x');
    const json = await sitecache(['stats', '--json', '--config', configFile]);
    expect(json.code).toBe(0);
    const stats = JSON.parse(json.stdout) as ServerStats[];
    expect(stats.map((s) => s.server)).toEqual(servers.map((s) => s.address));
    expect(stats.every((s) => s.up && ['hits', 'misses', 'items', 'evictions', 'bytes'].every((k) => typeof s[k as keyof ServerStats] === 'number'))).toBe(true);
    expect(stats.reduce((n, s) => n + s.items, 0)).toBeGreaterThan(0);
    const table = await sitecache(['stats', '--config', configFile]);
    const [header, ...rows] = table.stdout.trim().split('\n');
    expect(header?.split(/\s+/)).toEqual(['server', 'up', 'hits', 'misses', 'items', 'evictions', 'bytes']);
    expect(rows.map((row) => row.split(/\s+/)[0])).toEqual(servers.map((s) => s.address));
  });

  it('empties every server with purge --all', async () => {
    await store.put(`https://${HOST}/flushed`, 'x');
    const result = await sitecache(['purge', '--all', '--config', configFile]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`${servers[0]?.address}\tflushed`);
    expect(await held(`https://${HOST}/flushed`)).toBe(false);
  });

  it('exits 1 naming the server when memcached is down, and 2 with the usage on bad arguments', async () => {
    const down = join(dir.path, 'down.json');
    await writeFile(down, JSON.stringify({ hosts: [HOST], memcached: [`127.0.0.1:${await freePort()}`], app: ['127.0.0.1:9'] }));
    const failed = await sitecache(['stats', '--config', down, '--timeout', '300']);
    expect(failed.code).toBe(1);
    expect(failed.stdout).toMatch(/no \(/);
    const usage = await sitecache(['purge', '--config', configFile]);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('purge needs URLs, --tag TAG or --all');
    // A URL nginx would never look up is bad usage, refused before any server is asked.
    const badUrl = await sitecache(['purge', '--config', configFile, `https://${HOST}/fine`, `http://${HOST}/a`]);
    expect(badUrl.code).toBe(2);
    expect(badUrl.stderr).toContain('configured scheme "https"');
    expect(badUrl.stdout).toBe('');
    // So is a URL with user info or a host nginx refuses.
    for (const bad of [`https://user@${HOST}/a`, 'https://exa mple.com/a']) {
      const refused = await sitecache(['purge', '--config', configFile, bad]);
      expect({ bad, code: refused.code, stdout: refused.stdout }).toEqual({ bad, code: 2, stdout: '' });
    }
  });
});
