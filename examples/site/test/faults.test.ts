import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { requireBinary, type TempDir } from '@sitecache/test-services';
import { fetchPage } from '../site/client.js';
import { openDatabase } from '../site/db.js';
import { MANAGE, startStack, type Stack } from '../site/services.js';
import { importedSite } from './fixtures/site-data.js';

const HOST = 'www.pixelpress.test';
const LOAD_SCRIPT = fileURLToPath(new URL('./fixtures/fault-load.lua', import.meta.url));

/** What wrk saw while one fault was done to the running site. */
interface LoadResult {
  readonly fault: string;
  readonly requests: number;
  readonly non2xx: number;
  /** The non-2xx statuses, per wrk thread: "502=3 504=1". */
  readonly statuses: string;
  readonly stale: number;
  readonly hits: number;
  readonly socketErrors: number;
  readonly p99Ms: number;
}

// The site under load while things go wrong: wrk asks for every page in turn through nginx, in
// front of 2 app processes and 3 memcached servers, while each fault below is done to it. Pages
// stay fresh 3 s and have a day of grace, so during each run pages expire and are rendered again,
// and whenever the app cannot answer, the visitor gets the stale copy: never an error.
describe('the site under load while things fail (pnpm test:faults)', () => {
  let data: TempDir;
  let stack: Stack;
  let pathsFile: string;
  let paths: string[];
  const results: LoadResult[] = [];

  beforeAll(async () => {
    requireBinary('wrk');
    data = await importedSite('pixelpress-faults', 600);
    stack = await startStack(data.path, { apps: 2, memcachedServers: 3, ttl: 3 });
    expect(stack.config.grace).toBeGreaterThan(0);

    const db = openDatabase(join(data.path, 'site.db'));
    const articles = db.prepare('SELECT slug FROM articles').all() as { slug: string }[];
    const tags = db.prepare('SELECT slug FROM tags').all() as { slug: string }[];
    db.close();
    paths = ['/', '/feed.xml', ...articles.map((a) => `/article/${a.slug}/`), ...tags.map((t) => `/tag/${t.slug}/`)];
    pathsFile = join(data.path, 'paths.txt');
    writeFileSync(pathsFile, `${paths.join('\n')}\n`);
    // Every page rendered once, so each has its stale copy before the faults begin.
    for (let i = 0; i < paths.length; i += 8) {
      const batch = await Promise.all(paths.slice(i, i + 8).map((path) => fetchPage(stack.nginx.port, path, { host: HOST })));
      for (const response of batch) expect(response.status).toBe(200);
    }
  }, 120_000);

  afterAll(async () => {
    if (results.length > 0) process.stdout.write(`\n${table(results)}\n`);
    await stack?.stop();
    await data?.remove();
  });

  /** Runs wrk for `seconds` and does `fault` one second in; resolves with what wrk counted. */
  const underLoad = async (name: string, seconds: number, fault: () => Promise<void>): Promise<LoadResult> => {
    const wrk = spawn(requireBinary('wrk'), ['-t2', '-c16', `-d${seconds}s`, '-s', LOAD_SCRIPT, `http://127.0.0.1:${stack.nginx.port}`, '--', pathsFile], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    wrk.stdout.on('data', (chunk: Buffer) => (output += chunk));
    wrk.stderr.on('data', (chunk: Buffer) => (output += chunk));
    const exited = new Promise<number | null>((resolve) => wrk.on('exit', resolve));
    await sleep(1_000);
    await fault();
    const code = await exited;
    const line = output.split('\n').find((l) => l.startsWith('RESULT '));
    if (code !== 0 || !line) throw new Error(`wrk failed (exit ${code}):\n${output}`);
    const result = { fault: name, ...(JSON.parse(line.slice('RESULT '.length)) as Omit<LoadResult, 'fault'>) };
    results.push(result);
    return result;
  };

  const expectNoErrors = (result: LoadResult, { connectionsMayClose = false } = {}): void => {
    expect(result.requests).toBeGreaterThan(100);
    expect({ fault: result.fault, non2xx: result.non2xx, statuses: result.statuses }).toEqual({ fault: result.fault, non2xx: 0, statuses: '' });
    if (!connectionsMayClose) expect({ fault: result.fault, socketErrors: result.socketErrors }).toEqual({ fault: result.fault, socketErrors: 0 });
  };

  it('kill -9 of an app process, restarted a second later: every request answered', async () => {
    const result = await underLoad('app process killed (-9), restarted', 5, async () => {
      stack.apps[0]?.signal('SIGKILL');
      await sleep(1_000);
      await stack.restartApp(0);
    });
    expectNoErrors(result);
  });

  it('every app process stopped for 5 s: pages come from their stale copies', async () => {
    const result = await underLoad('all app processes stopped 5 s', 8, async () => {
      await Promise.all(stack.apps.map((app) => app.stop()));
      await sleep(5_000);
      await stack.restartApp();
    });
    expectNoErrors(result);
    expect(result.stale).toBeGreaterThan(0);
  });

  it('one memcached frozen (SIGSTOP) for 2 s: its pages are rendered by the app meanwhile', async () => {
    const frozen = stack.memcachedServers[1];
    const result = await underLoad('one memcached frozen 2 s', 5, async () => {
      frozen?.process.signal('SIGSTOP');
      await sleep(2_000);
      frozen?.process.signal('SIGCONT');
    });
    expectNoErrors(result);
  });

  it('one memcached killed (-9) and restarted empty: its pages are rendered and stored again', async () => {
    const victim = stack.memcachedServers[2];
    const result = await underLoad('one memcached killed (-9), restarted empty', 5, async () => {
      victim?.process.signal('SIGKILL');
      await sleep(500);
      await victim?.restart();
    });
    expectNoErrors(result);
  });

  // A reload ends the old workers, which close their idle keep-alive connections: a request sent on
  // one at that moment meets a closed connection (a browser sends it again). Every answer is 2xx.
  it('nginx -s reload under load: every answer is 2xx', async () => {
    const nginx = requireBinary('nginx');
    const prefix = stack.nginx.prefix;
    const result = await underLoad('nginx -s reload', 4, async () => {
      execFileSync(nginx, ['-p', `${prefix}/`, '-c', join(prefix, 'nginx.conf'), '-e', join(prefix, 'error.log'), '-s', 'reload']);
    });
    expectNoErrors(result, { connectionsMayClose: true });
  });

  it('purge of 50 pages under load: each is rendered again, no request fails', async () => {
    const purged = paths.slice(2, 52);
    const result = await underLoad('50 pages purged', 4, async () => {
      execFileSync(process.execPath, [MANAGE, 'purge', ...purged], { env: stack.env });
    });
    expectNoErrors(result);
  });
});

function table(results: readonly LoadResult[]): string {
  const rows = results.map((r) => [r.fault, String(r.requests), String(r.non2xx), String(r.socketErrors), String(r.stale), r.p99Ms.toFixed(1)]);
  const head = ['fault (wrk -t2 -c16, 2 apps, 3 memcached)', 'requests', 'non-2xx', 'closed connections', 'STALE', 'p99 ms'];
  return [`| ${head.join(' | ')} |`, `| ${head.map(() => '---').join(' | ')} |`, ...rows.map((row) => `| ${row.join(' | ')} |`)].join('\n');
}
