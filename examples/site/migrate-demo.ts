#!/usr/bin/env node
// pnpm migrate:demo: the real migration, the way it runs in production. The 30,000-row legacy export
// goes through cluster-run in 1,000 clusters, 3 at a time; the runner is killed part-way (as a
// deploy or an OOM killer would) and started again with the same command, and it carries on from
// its log. At the end every published legacy post is an article, exactly once.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { openDatabase } from './site/db.js';
import { migrate } from './site/schema.js';
import { PROJECT_DIR } from './site/settings.js';
import { clusterRunBin, MANAGE } from './site/services.js';

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      clusters: { type: 'string', default: '1000' },
      jobs: { type: 'string', default: '3' },
      rows: { type: 'string', default: '30000' },
      'kill-at': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log('Usage: migrate-demo [--clusters N] [--jobs K] [--rows N] [--kill-at DONE]\n\n  --kill-at DONE  SIGKILL the runner once its log shows DONE clusters done (default a third)');
    return 0;
  }
  const clusters = Number(values.clusters);
  const killAt = values['kill-at'] === undefined ? Math.max(1, Math.floor(clusters / 3)) : Number(values['kill-at']);
  if (!Number.isInteger(killAt) || killAt < 1 || killAt >= clusters) {
    console.error(`migrate-demo: --kill-at: expected a whole number from 1 to ${clusters - 1}, got "${values['kill-at']}"`);
    return 2;
  }
  const dataDir = process.env.MIGRATE_DEMO_DIR ?? join(PROJECT_DIR, 'data', 'migrate-demo');
  rmSync(dataDir, { recursive: true, force: true });
  const env = { ...process.env, SITE_DATA_DIR: dataDir };
  const log = join(dataDir, 'import.log');

  console.log(`== legacy export: ${values.rows} rows`);
  execFileSync(process.execPath, [MANAGE, 'legacy', '--rows', values.rows], { env, stdio: 'inherit' });
  execFileSync(process.execPath, [MANAGE, 'migrate'], { env, stdio: 'inherit' });

  const command = [clusterRunBin(), '--clusters', values.clusters, '--jobs', values.jobs, '--log', log, '--', process.execPath, MANAGE, 'import', '--cluster={}'];
  console.log(`\n== cluster-run ${command.slice(1).join(' ').replace(process.execPath, 'node')}`);
  const first = spawn(process.execPath, command, { env, stdio: 'inherit' });
  const exited = new Promise<void>((resolve) => first.once('exit', () => resolve()));
  let running = true;
  void exited.then(() => (running = false));
  // Killed part-way by its own progress, not a timer, so the kill lands mid-run on any machine.
  while (running && doneClusters(log) < killAt) await new Promise((resolve) => setTimeout(resolve, 50));
  if (!running) throw new Error(`the runner finished before ${killAt} clusters were done: nothing to kill`);
  first.kill('SIGKILL');
  await exited;
  console.log(`\n== killed the runner with SIGKILL: ${doneClusters(log)} of ${values.clusters} clusters done by its log`);
  console.log('== the same command again resumes from the log');
  const resumed = spawnSync(process.execPath, command, { env, stdio: ['ignore', 'inherit', 'inherit'] });
  if (resumed.status !== 0) throw new Error(`the resumed run exited with ${resumed.status ?? resumed.signal}`);

  const site = openDatabase(join(dataDir, 'site.db'));
  migrate(site);
  const legacy = openDatabase(join(dataDir, 'legacy.db'), { readonly: true });
  const articles = (site.prepare('SELECT count(*) AS n, count(DISTINCT legacy_id) AS distinct_ids FROM articles').get() as { n: number; distinct_ids: number });
  const published = (legacy.prepare("SELECT count(*) AS n FROM wp_posts WHERE post_status = 'publish' AND post_type = 'post'").get() as { n: number }).n;
  site.close();
  legacy.close();
  const ok = articles.n === published && articles.distinct_ids === published;
  console.log(`\n${ok ? 'OK' : 'MISMATCH'}: ${articles.n} articles for ${published} published legacy posts, ${articles.distinct_ids} distinct`);
  return ok ? 0 : 1;
}

/** Clusters whose last end record in the log says ok. */
function doneClusters(log: string): number {
  const state = new Map<number, string>();
  let text: string;
  try {
    text = readFileSync(log, 'utf8');
  } catch {
    return 0; // not written yet
  }
  for (const line of text.split('\n')) {
    try {
      const record = JSON.parse(line) as { event?: string; cluster?: number; why?: string };
      if (record.event === 'end' && record.cluster !== undefined && record.why) state.set(record.cluster, record.why);
    } catch {
      // a torn last line
    }
  }
  return [...state.values()].filter((reason) => reason === 'ok').length;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: Error) => {
    console.error(`migrate-demo: ${error.message}`);
    process.exitCode = 1;
  },
);
