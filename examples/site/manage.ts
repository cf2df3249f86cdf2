#!/usr/bin/env node
// manage: the site's commands, as Django's manage.py.
import { writeFileSync } from 'node:fs';
import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { openDatabase } from './site/db.js';
import { migrate } from './site/schema.js';
import { loadSettings, type Settings } from './site/settings.js';

import { generateLegacyExport, LEGACY_ROWS } from './migration/legacy.js';

// Each command loads only what it uses: `import` runs a thousand times in a migration, and Express,
// nunjucks and the memcached client would be most of its start-up.

const HELP = `Usage: manage <command> [options]

Commands:
  runserver                     serve the site on the first "app" address of sitecache.config.json (or $PORT)
  migrate                       create the site's tables
  legacy [--rows N]             write the legacy export the migration reads (default ${LEGACY_ROWS} rows)
  import --cluster=i/N          import cluster i of N of the legacy export (run by cluster-run)
  createuser NAME PASSWORD [DISPLAY NAME]
  warm [--concurrency K]        render and store every page (home and its older pages, articles, tags, feed) in memcached
  purge URL|PATH...             remove pages from memcached (a path means every configured host)
  purge --tag TAG...            remove every page tagged TAG (article:42, tag:indie, home, feed)
  nginx [--standalone --prefix DIR] [--output FILE]
                                write the nginx config generated from sitecache.config.json

Environment: SITECACHE_CONFIG, SITE_DATA_DIR, SITE_DATABASE, SITE_LEGACY_DATABASE, PORT, SITE_SECRET_KEY,
SITE_SERVE_FROM_CACHE=1 (answer hits from memcached in the app, for running without nginx).
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(HELP);
    return command ? 0 : 2;
  }
  const settings = loadSettings();
  switch (command) {
    case 'runserver':
      return runserver(settings);
    case 'migrate': {
      const db = openDatabase(settings.databasePath);
      migrate(db);
      db.close();
      console.log(`migrated ${settings.databasePath}`);
      return 0;
    }
    case 'legacy': {
      const { values } = parseArgs({ args: rest, options: { rows: { type: 'string', default: String(LEGACY_ROWS) } } });
      const rows = Number(values.rows);
      if (!Number.isInteger(rows) || rows < 1) throw new UsageError(`--rows: expected a whole number >= 1, got "${values.rows}"`);
      const db = openDatabase(settings.legacyDatabasePath);
      generateLegacyExport(db, rows);
      db.close();
      console.log(`wrote ${rows} legacy posts to ${settings.legacyDatabasePath}`);
      return 0;
    }
    case 'import': {
      const { values, positionals } = parseArgs({ args: rest, options: { cluster: { type: 'string' } }, allowPositionals: true });
      const spec = values.cluster ?? positionals[0];
      if (!spec) throw new UsageError('import needs --cluster=i/N');
      const { importCluster } = await import('./migration/import.js');
      const site = openDatabase(settings.databasePath);
      const legacy = openDatabase(settings.legacyDatabasePath, { readonly: true });
      const result = importCluster(site, legacy, spec);
      site.close();
      legacy.close();
      console.log(`cluster ${result.cluster}: ids ${result.first ?? '-'}..${result.last ?? '-'}, ${result.imported} articles`);
      return 0;
    }
    case 'createuser': {
      const [name, password, ...display] = rest;
      if (!name || !password) throw new UsageError('createuser needs NAME and PASSWORD');
      const { hashPassword } = await import('./site/auth.js');
      const { Users } = await import('./site/models.js');
      const db = openDatabase(settings.databasePath);
      migrate(db);
      new Users(db).create(name, display.join(' ') || name, hashPassword(password));
      db.close();
      console.log(`user ${name} created`);
      return 0;
    }
    case 'warm': {
      const { values } = parseArgs({ args: rest, options: { concurrency: { type: 'string', default: '8' } } });
      return warm(settings, Number(values.concurrency));
    }
    case 'purge': {
      const { values, positionals } = parseArgs({ args: rest, options: { tag: { type: 'boolean', default: false } }, allowPositionals: true });
      if (positionals.length === 0) throw new UsageError(values.tag ? 'purge --tag needs at least one tag' : 'purge needs at least one URL or path');
      const { createPageStore } = await import('@sitecache/cache-store');
      const store = createPageStore(settings.cache);
      try {
        if (values.tag) {
          const purge = await store.purgeTags(positionals);
          for (const page of purge.pages) console.log(`${page.result.padEnd(10)} ${page.key} on ${page.server}${page.error ? ` (${page.error})` : ''}`);
          console.log(`${purge.purged} pages purged for ${purge.tags.join(' ')}`);
          return purge.servers.some((server) => server.failed > 0) ? 1 : 0;
        }
        const results = await store.purge(positionals);
        for (const r of results) console.log(`${r.result.padEnd(10)} ${r.url}${r.error ? ` (${r.error})` : ''}`);
        return results.some((r) => r.result === 'failed') ? 1 : 0;
      } finally {
        await store.close();
      }
    }
    case 'nginx': {
      const { values } = parseArgs({ args: rest, options: { standalone: { type: 'boolean', default: false }, prefix: { type: 'string' }, output: { type: 'string' } } });
      const { renderNginxConf } = await import('@sitecache/nginx-conf');
      const text = renderNginxConf(settings.cache, { standalone: values.standalone, ...(values.prefix ? { prefix: values.prefix } : {}) });
      if (values.output) writeFileSync(values.output, text);
      else process.stdout.write(text);
      return 0;
    }
    default:
      throw new UsageError(`unknown command "${command}"`);
  }
}

async function runserver(settings: Settings): Promise<number> {
  const { createSite } = await import('./site/app.js');
  const site = createSite(settings);
  const server = site.app.listen(settings.port, settings.host);
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const address = server.address() as AddressInfo;
  console.log(`serving on http://${address.address}:${address.port} (memcached ${settings.cache.memcached.join(', ')})`);
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      server.close(() => resolve());
      server.closeAllConnections();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await site.close();
  return 0;
}

/** Renders every page through the site's own middleware, which stores them where nginx reads. */
async function warm(settings: Settings, concurrency: number): Promise<number> {
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new UsageError(`--concurrency: expected a whole number >= 1, got "${concurrency}"`);
  const { createSite } = await import('./site/app.js');
  const { Articles } = await import('./site/models.js');
  const { cachedPaths } = await import('./site/views.js');
  const { progressBar } = await import('./site/progress.js');
  const site = createSite(settings);
  const paths = cachedPaths(new Articles(site.db));
  const server = site.app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', resolve));
  const port = (server.address() as AddressInfo).port;
  const bar = progressBar('warm', paths.length);
  let failed = 0;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < paths.length) {
      const path = paths[next++] as string;
      const status = await get(port, path, settings.cache.hosts[0] as string);
      if (status !== 200) failed++;
      bar.tick();
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  bar.done();
  // Stores happen after each response has finished: let the last ones land before closing.
  const settled = (): number => {
    const m = site.cache.metrics.snapshot();
    return m.stored + m.errors + Object.values(m.skipped).reduce((a, b) => a + b, 0);
  };
  for (let waited = 0; settled() < paths.length - failed && waited < 5_000; waited += 20) await new Promise((r) => setTimeout(r, 20));
  const { stored } = site.cache.metrics.snapshot();
  server.close();
  await site.close();
  console.log(`rendered ${paths.length - failed} of ${paths.length} pages, stored ${stored} in memcached${failed ? ` (${failed} did not answer 200)` : ''}`);
  return failed ? 1 : 0;
}

function get(port: number, path: string, host: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { host } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', () => resolve(0));
    req.end();
  });
}

class UsageError extends Error {}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: Error) => {
    process.stderr.write(`manage: ${error.message}\n`);
    if (error instanceof UsageError) process.stderr.write(`\n${HELP}`);
    process.exitCode = 1;
  },
);
