#!/usr/bin/env node
// The demo: fills the database through the resumable migration, starts memcached, the app and nginx
// on free ports, and shows a page going MISS (rendered by the app) then HIT (served by nginx from
// memcached). Runs until Ctrl-C, or with --smoke checks the promises the site makes and exits.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { fetchPage, type PageResponse } from './site/client.js';
import { openDatabase } from './site/db.js';
import { migrate } from './site/schema.js';
import { PROJECT_DIR } from './site/settings.js';
import { clusterRunBin, MANAGE, startStack, type Stack } from './site/services.js';

const HOST = 'www.pixelpress.test';

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { smoke: { type: 'boolean', default: false }, rows: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help) {
    console.log('Usage: demo [--smoke] [--rows N]\n\n  --smoke   check MISS/HIT, purge, login bypass, memcached down and app down, then exit\n  --rows N  legacy rows to migrate on first run (default 30000)');
    return 0;
  }
  const dataDir = process.env.SITE_DATA_DIR ?? join(PROJECT_DIR, 'data');
  fillDatabase(dataDir, values.rows);

  step('starting memcached, the app and nginx on free loopback ports');
  const stack = await startStack(dataDir);
  const stopping = (): void => {
    void stack.stop().then(() => process.exit(0));
  };
  process.once('SIGINT', stopping);
  process.once('SIGTERM', stopping);
  try {
    console.log(`  memcached ${stack.memcached.address}, app 127.0.0.1:${stack.appPort}, nginx 127.0.0.1:${stack.nginx.port}`);
    const slug = firstArticle(dataDir);
    step(`one page twice through nginx: /article/${slug}/`);
    const first = await fetchPage(stack.nginx.port, `/article/${slug}/`, { host: HOST });
    show('first request', first);
    const second = await waitForHit(stack, `/article/${slug}/`);
    show('second request', second);
    if (values.smoke) return await smoke(stack, slug);
    console.log(`\nOpen http://127.0.0.1:${stack.nginx.port}/ (log in as demo / demo to see the cache step aside). Ctrl-C stops everything.`);
    await new Promise(() => undefined);
    return 0;
  } finally {
    // Reached after --smoke, or when something failed before the demo settled into waiting: either
    // way nothing it started may outlive it. (Ctrl-C while waiting stops the stack in `stopping`.)
    await stack.stop();
  }
}

/**
 * The schema, the legacy export, and the migration through cluster-run. The migration runs every
 * time: its log makes a finished one a no-op, and a first run stopped half-way carries on.
 */
function fillDatabase(dataDir: string, rows: string | undefined): void {
  const env = { ...process.env, SITE_DATA_DIR: dataDir };
  const db = openDatabase(join(dataDir, 'site.db'));
  migrate(db);
  db.close();
  if (!existsSync(join(dataDir, 'legacy.db'))) {
    step('writing the legacy export');
    execFileSync(process.execPath, [MANAGE, 'legacy', ...(rows ? ['--rows', rows] : [])], { env, stdio: 'inherit' });
  }
  step('migrating it with cluster-run: 30 clusters, 2 at a time, resumable from its log (done clusters are skipped)');
  execFileSync(process.execPath, [clusterRunBin(), '--clusters', '30', '--jobs', '2', '--log', join(dataDir, 'import.log'), '--', process.execPath, MANAGE, 'import', '--cluster={}'], { env, stdio: 'inherit' });
  execFileSync(process.execPath, [MANAGE, 'createuser', 'demo', 'demo', 'Demo Visitor'], { env, stdio: 'ignore' });
}

function firstArticle(dataDir: string): string {
  const db = openDatabase(join(dataDir, 'site.db'));
  const row = db.prepare('SELECT slug FROM articles ORDER BY published_at DESC, id DESC LIMIT 1').get() as { slug: string };
  db.close();
  return row.slug;
}

/**
 * The app stores after its response has finished; a hit follows within moments, or within the page
 * store's retry interval (1 s) when memcached has just come back. Five seconds leaves room for a
 * loaded machine.
 */
async function waitForHit(stack: Stack, path: string, headers: Record<string, string> = {}): Promise<PageResponse> {
  const deadline = Date.now() + 5000;
  let response = await fetchPage(stack.nginx.port, path, { host: HOST, headers });
  while (Date.now() < deadline && response.headers[stack.config.cacheHeader.toLowerCase()] !== 'HIT') {
    await new Promise((resolve) => setTimeout(resolve, 20));
    response = await fetchPage(stack.nginx.port, path, { host: HOST, headers });
  }
  return response;
}

async function smoke(stack: Stack, slug: string): Promise<number> {
  const header = stack.config.cacheHeader.toLowerCase();
  const results: [string, boolean, string][] = [];
  const check = async (name: string, run: () => Promise<[boolean, string]>): Promise<void> => {
    try {
      const [ok, detail] = await run();
      results.push([name, ok, detail]);
    } catch (error) {
      results.push([name, false, (error as Error).message]);
    }
  };
  const page = `/article/${slug}/`;

  step('smoke checks');
  await check('a page goes MISS, then HIT from nginx', async () => {
    const path = '/';
    await runManage(stack, ['purge', path]);
    const miss = await fetchPage(stack.nginx.port, path, { host: HOST });
    const hit = await waitForHit(stack, path);
    return [miss.headers[header] === 'MISS' && hit.headers[header] === 'HIT' && hit.body.includes('<h1>Latest news</h1>'), `${miss.headers[header]} ${miss.ms.toFixed(1)} ms, then ${hit.headers[header]} ${hit.ms.toFixed(1)} ms`];
  });
  await check('purge removes a cached page', async () => {
    await waitForHit(stack, page);
    const output = await runManage(stack, ['purge', page]);
    const after = await fetchPage(stack.nginx.port, page, { host: HOST });
    return [after.headers[header] === 'MISS', `${output.trim().split('\n')[0]}; next request ${after.headers[header]}`];
  });
  await check('a logged-in visitor bypasses the cache and is never stored', async () => {
    await waitForHit(stack, '/');
    const login = await fetchPage(stack.nginx.port, '/login', { host: HOST, method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'username=demo&password=demo' });
    const cookie = String(login.headers['set-cookie'] ?? '').split(';')[0] ?? '';
    const mine = await fetchPage(stack.nginx.port, '/', { host: HOST, headers: { cookie } });
    const anonymous = await fetchPage(stack.nginx.port, '/', { host: HOST });
    const ok = login.status === 303 && mine.headers[header] === 'MISS' && mine.body.includes('Hello, Demo Visitor') && !anonymous.body.includes('Hello, Demo Visitor');
    return [ok, `login ${login.status}; logged-in ${mine.headers[header]}; anonymous page never shows the name`];
  });
  await check('with memcached killed the site still answers 200 through the app', async () => {
    stack.memcached.process.signal('SIGKILL');
    const response = await fetchPage(stack.nginx.port, page, { host: HOST });
    await stack.memcached.restart();
    return [response.status === 200, `${response.status} ${response.headers[header]} in ${response.ms.toFixed(1)} ms`];
  });
  await check('with the app stopped, cached pages are still served', async () => {
    await waitForHit(stack, page);
    await stack.app.stop();
    const cached = await fetchPage(stack.nginx.port, page, { host: HOST });
    const uncached = await fetchPage(stack.nginx.port, '/tag/no-such-tag/', { host: HOST });
    await stack.restartApp();
    return [cached.status === 200 && cached.headers[header] === 'HIT', `cached page ${cached.status} ${cached.headers[header]}; an uncached one ${uncached.status}`];
  });

  console.log('');
  for (const [name, ok, detail] of results) console.log(`${ok ? 'PASS' : 'FAIL'}  ${name}: ${detail}`);
  const failed = results.filter(([, ok]) => !ok).length;
  console.log(`\n${results.length - failed} of ${results.length} checks held`);
  return failed ? 1 : 0;
}

async function runManage(stack: Stack, args: string[]): Promise<string> {
  return execFileSync(process.execPath, [MANAGE, ...args], { env: stack.env, encoding: 'utf8' });
}

function show(label: string, response: PageResponse): void {
  console.log(`  ${label.padEnd(15)} ${response.status} X-Cache: ${String(response.headers['x-cache']).padEnd(4)} ${response.ms.toFixed(1).padStart(6)} ms  ${response.body.length} bytes`);
}

function step(text: string): void {
  console.log(`\n== ${text}`);
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: Error) => {
    console.error(`demo: ${error.message}`);
    process.exitCode = 1;
  },
);
