#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { loadConfig } from '@sitecache/config';
import { createPageStore, type ServerStats } from './page-store.js';

const HELP = `Usage: sitecache <command> [--config FILE]

Commands:
  purge URL...      remove pages from memcached; a path such as /news/ stands for that page
                    under every host in config.hosts, an absolute URL for one page
  purge --all       empty every memcached server of the config (flush_all: every site
                    sharing those servers loses its pages too)
  stats [--json]    each server's hits, misses, items, evictions and bytes: a table, or JSON

Options:
  --config FILE     the config file (default: $SITECACHE_CONFIG or ./sitecache.config.json)
  --timeout MS      how long one memcached command may take (default 2000)
  -h, --help        show this help

Exit status: 0 done, 1 a server failed, 2 bad usage.
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
  if (command !== 'purge' && command !== 'stats') throw new UsageError(`unknown command "${command}"`);
  if (command === 'purge' && !values.all && args.length === 0) throw new UsageError('purge needs URLs or --all');
  if (command === 'purge' && values.all && args.length > 0) throw new UsageError('purge takes URLs or --all, not both');
  if (command === 'stats' && args.length > 0) throw new UsageError('stats takes no arguments');
  const timeout = Number(values.timeout ?? 2000);
  if (!Number.isInteger(timeout) || timeout < 1) throw new UsageError(`--timeout expects whole milliseconds, got ${values.timeout}`);

  const config = loadConfig(values.config);
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
    const pages = await store.purge(args);
    for (const p of pages) process.stdout.write(`${p.result}\t${p.url}\t${p.server}${p.error ? `\t${p.error}` : ''}\n`);
    return pages.every((p) => p.result !== 'failed') ? 0 : 1;
  } finally {
    await store.close();
  }
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
    const usage = error instanceof UsageError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS');
    if (usage) process.stderr.write(`\n${HELP}`);
    process.exitCode = usage ? 2 : 1;
  },
);
