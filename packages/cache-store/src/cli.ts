#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { loadConfig, type SitecacheConfig } from '@sitecache/config';
import { InvalidHostError, InvalidUrlError } from '@sitecache/nginx-model';
import { checkPage, formatReport, reportPassed } from './check.js';
import { PageAddressError, PageTagError } from './errors.js';
import { createPageStore, type ServerStats } from './page-store.js';
import { checkTags } from './tags.js';

const HELP = `Usage: sitecache <command> [--config FILE]

Commands:
  purge URL...      remove pages from memcached; a path such as /news/ stands for that page
                    under every host in config.hosts, an absolute URL for one page
  purge --soft URL...
                    remove the fresh copies only and keep the stale ones (config.grace): the
                    next visitor renders the page once, the others get the stale copy meanwhile
  purge --tag TAG...
                    remove every page stored with any of these tags (Surrogate-Key, tagPage),
                    and its stale copy; one line per server: pages purged, already gone, failed
  purge --soft --tag TAG...
                    the same, keeping the stale copies
  purge --all       empty every memcached server of the config (flush_all: every site
                    sharing those servers loses its pages too)
  stats [--json]    each server's hits, misses, items, evictions and bytes: a table, or JSON
  check URL         fetch a page through nginx (URL is nginx's address, such as
                    http://127.0.0.1:8080/news/) twice and print the headers the hit does not
                    carry as the miss did, or why the page was not stored

Options:
  --tag TAG         purge: a tag; with --tag, purge's other arguments are tags too (or
                    repeat --tag)
  --config FILE     the config file (default: $SITECACHE_CONFIG or ./sitecache.config.json)
  --timeout MS      how long one memcached command, or one request of check, may take (default 2000)
  --host HOST       check: the Host to send (default: the URL's host when config.hosts names it,
                    else the first host of config.hosts)
  --wait MS         check: how long to leave the app to store the miss (default 300)
  -h, --help        show this help

Exit status: 0 done (check: stored, and the hit carries the miss's headers), 1 a server failed
(check: not stored, or headers differ), 2 bad usage.
`;

class UsageError extends Error {}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      config: { type: 'string' },
      all: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      timeout: { type: 'string' },
      soft: { type: 'boolean', default: false },
      tag: { type: 'string', multiple: true },
      host: { type: 'string' },
      wait: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    allowPositionals: true,
    strict: true,
  });
  const [command, ...args] = positionals;
  if (values.help || command === undefined) {
    process.stdout.write(HELP);
    return command === undefined && !values.help ? 2 : 0;
  }
  if (command !== 'purge' && command !== 'stats' && command !== 'check') throw new UsageError(`unknown command "${command}"`);
  // `purge --tag a b` as the help writes it: with --tag, the other arguments are tags too, not URLs.
  const tags = values.tag === undefined ? [] : [...values.tag, ...args];
  if (values.soft && (command !== 'purge' || values.all)) throw new UsageError('--soft goes with purge URL... or purge --tag TAG...');
  if (tags.length > 0 && (command !== 'purge' || values.all)) throw new UsageError('--tag goes with purge, without --all');
  // A tag that cannot be one is bad usage (2), found before any server is asked.
  if (tags.length > 0) checkTags(tags);
  // `purge --tag a https://host/page` used to be refused; a URL taken for a tag would purge nothing
  // and say so quietly. A tag that really looks like that can still be given with a --tag of its own.
  const urlLike = values.tag === undefined ? undefined : args.find((arg) => arg.startsWith('/') || arg.includes('://'));
  if (urlLike !== undefined) throw new UsageError(`"${urlLike}" after --tag looks like a URL: purge URLs and tags in separate commands (for a tag that looks like one, --tag "${urlLike}")`);
  if ((values.host !== undefined || values.wait !== undefined) && command !== 'check') throw new UsageError('--host and --wait go with check');
  if (command === 'check' && args.length !== 1) throw new UsageError('check takes one URL');
  if (command === 'purge' && !values.all && args.length === 0 && tags.length === 0) throw new UsageError('purge needs URLs, --tag TAG or --all');
  if (command === 'purge' && values.all && args.length > 0) throw new UsageError('purge takes URLs or --all, not both');
  if (command === 'stats' && args.length > 0) throw new UsageError('stats takes no arguments');
  const timeout = Number(values.timeout ?? 2000);
  if (!Number.isInteger(timeout) || timeout < 1) throw new UsageError(`--timeout expects whole milliseconds, got ${values.timeout}`);

  const config = loadConfig(values.config);
  if (command === 'check') return check(config, args[0] as string, values.host, values.wait, timeout);
  // An operator's command waits longer than a page write would, and says what failed.
  const store = createPageStore(config, { commandTimeoutMs: timeout, connectTimeoutMs: timeout, logger: { warn: () => undefined } });
  try {
    if (command === 'stats') {
      const stats = await store.stats();
      process.stdout.write(values.json ? `${JSON.stringify(stats, null, 2)}\n` : statsTable(stats));
      return stats.every((s) => s.up) ? 0 : 1;
    }
    if (values.all) {
      const results = await store.purgeAll();
      for (const r of results) process.stdout.write(`${r.server}\t${r.ok ? 'flushed' : `failed: ${r.error}`}\n`);
      return results.every((r) => r.ok) ? 0 : 1;
    }
    if (tags.length > 0) {
      const purge = await store.purgeTags(tags, { soft: values.soft });
      for (const s of purge.servers) {
        process.stdout.write(`${s.server}\tpurged ${s.purged}\tnot-cached ${s.notCached}\tfailed ${s.failed}${s.error ? `\t${s.error}` : ''}\n`);
      }
      process.stdout.write(`total\tpurged ${purge.purged}\n`);
      return purge.servers.every((s) => s.failed === 0) ? 0 : 1;
    }
    const pages = await store.purge(args, { soft: values.soft });
    for (const p of pages) process.stdout.write(`${p.result}\t${p.url}\t${p.server}${p.error ? `\t${p.error}` : ''}\n`);
    return pages.every((p) => p.result !== 'failed') ? 0 : 1;
  } finally {
    await store.close();
  }
}

async function check(config: SitecacheConfig, address: string, host: string | undefined, wait: string | undefined, timeout: number): Promise<number> {
  let url: URL;
  try {
    url = new URL(address);
  } catch {
    throw new UsageError(`check expects nginx's URL, such as http://127.0.0.1:8080/news/, got ${address}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`check expects an http or https URL, got ${address}`);
  const waitMs = Number(wait ?? 300);
  if (!Number.isInteger(waitMs) || waitMs < 0) throw new UsageError(`--wait expects whole milliseconds, got ${wait}`);
  const named = config.hosts.find((h) => h === url.hostname);
  const sent = host ?? named ?? config.hosts.find((h) => !h.startsWith('*.'));
  if (sent === undefined) throw new UsageError('config.hosts names only wildcard hosts: give --host');
  const report = await checkPage(config, url, sent, waitMs, timeout);
  process.stdout.write(formatReport(report, config));
  return reportPassed(report, config) ? 0 : 1;
}

function statsTable(stats: readonly ServerStats[]): string {
  const header = ['server', 'up', 'hits', 'misses', 'items', 'evictions', 'bytes'];
  const rows = stats.map((s) => [s.server, s.up ? 'yes' : `no (${s.error})`, s.hits, s.misses, s.items, s.evictions, s.bytes].map(String));
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
  const line = (cells: string[]): string =>
    cells.map((c, i) => (i < 2 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join('  ').trimEnd();
  return `${[line(header), ...rows.map(line)].join('\n')}\n`;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: Error) => {
    process.stderr.write(`sitecache: ${error.message}\n`);
    // Bad input is refused before any server is asked: a URL nginx would never look up, a tag that cannot be one.
    const usage =
      error instanceof UsageError ||
      error instanceof PageAddressError ||
      error instanceof InvalidUrlError ||
      error instanceof InvalidHostError ||
      error instanceof PageTagError ||
      (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS');
    if (usage) process.stderr.write(`\n${HELP}`);
    process.exitCode = usage ? 2 : 1;
  },
);
