import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeTempDir, requireBinary, type TempDir } from '@sitecache/test-services';
import { fetchPage } from '../site/client.js';
import { openDatabase } from '../site/db.js';
import { MANAGE, startStack, type Stack } from '../site/services.js';
import { importedSite, untilHit as untilHitOf } from './fixtures/site-data.js';

const HOST = 'www.pixelpress.test';

// The site as a visitor meets it: through real nginx, memcached and the app.
describe('the example site behind nginx and memcached', () => {
  let data: TempDir;
  let stack: Stack;
  let env: NodeJS.ProcessEnv;
  const manage = (...args: string[]): string => execFileSync(process.execPath, [MANAGE, ...args], { env: stack?.env ?? env, encoding: 'utf8' });

  beforeAll(async () => {
    data = await importedSite('pixelpress-test', 1500, { editor: true });
    env = { ...process.env, SITE_DATA_DIR: data.path };
    stack = await startStack(data.path);
  });

  afterAll(async () => {
    await stack?.stop();
    await data?.remove();
  });

  const get = (path: string, headers: Record<string, string> = {}) => fetchPage(stack.nginx.port, path, { host: HOST, headers });
  const untilHit = (path: string) => untilHitOf(stack, path);
  const anArticle = (): { id: number; slug: string; tag: string } => {
    const db = openDatabase(join(data.path, 'site.db'));
    const row = db.prepare('SELECT a.id, a.slug, g.slug AS tag FROM articles a JOIN article_tags t ON t.article_id = a.id JOIN tags g ON g.id = t.tag_id ORDER BY a.published_at DESC, a.id DESC LIMIT 1').get() as { id: number; slug: string; tag: string };
    db.close();
    return row;
  };
  const login = async (): Promise<string> => {
    const response = await fetchPage(stack.nginx.port, '/login', { host: HOST, method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'username=ed&password=pw' });
    expect(response.status).toBe(303);
    return String(response.headers['set-cookie']).split(';')[0] as string;
  };

  it('renders a page once, then nginx serves it from memcached', async () => {
    const { slug } = anArticle();
    const first = await get(`/article/${slug}/`);
    expect(first.status).toBe(200);
    expect(first.headers['x-cache']).toBe('MISS');
    const later = await untilHit(`/article/${slug}/`);
    expect(later.headers['x-cache']).toBe('HIT');
    expect(later.headers['content-type']).toBe('text/html; charset=utf-8');
  });

  it('caches the RSS feed behind its own location, and nginx serves it with its real type', async () => {
    const first = await get('/feed.xml');
    expect(first.headers['x-cache']).toBe('MISS');
    expect(first.headers['content-type']).toBe('application/rss+xml; charset=utf-8');
    const later = await untilHit('/feed.xml');
    expect(later.headers['x-cache']).toBe('HIT');
    expect(later.headers['content-type']).toBe('application/rss+xml; charset=utf-8');
    expect(later.body).toBe(first.body);
    expect(later.body).toMatch(/^<\?xml version="1.0" encoding="utf-8"\?>\s*<rss/);
  });

  it('never caches the JSON comment count the article page fetches', async () => {
    const { id, slug } = anArticle();
    // The article page (cached, identical for everyone) asks for the live count from the browser.
    const page = await get(`/article/${slug}/`);
    expect(page.body).toContain(`data-article="${id}"`);
    expect(page.body).toContain("fetch('/api/comments/' + el.dataset.article)");
    const before = await get(`/api/comments/${id}`);
    expect(before.headers['content-type']).toMatch(/^application\/json/);
    expect(before.headers['cache-control']).toBe('no-store');
    await fetchPage(stack.nginx.port, `/api/comments/${id}`, { host: HOST, method: 'POST' });
    await new Promise((resolve) => setTimeout(resolve, 50));
    const after = await get(`/api/comments/${id}`);
    expect(JSON.parse(after.body).count).toBe(JSON.parse(before.body).count + 1);
    expect(after.headers['x-cache']).toBe('MISS');
  });

  it('shows a logged-in visitor their name, never from or into the cache', async () => {
    await untilHit('/');
    const cookie = await login();
    const mine = await get('/', { cookie });
    expect(mine.headers['x-cache']).toBe('MISS');
    expect(mine.body).toContain('Hello, Ed Itor');
    await new Promise((resolve) => setTimeout(resolve, 50));
    const anonymous = await get('/');
    expect(anonymous.body).not.toContain('Hello, Ed Itor');
  });

  it('purges the pages tagged with the article (itself, the home page, its tag pages, the feed) when an editor retitles it', async () => {
    const { id, slug, tag } = anArticle();
    for (const path of [`/article/${slug}/`, '/', `/tag/${tag}/`, '/feed.xml']) expect((await untilHit(path)).headers['x-cache']).toBe('HIT');
    const cookie = await login();
    const edit = await fetchPage(stack.nginx.port, `/admin/article/${id}/title`, { host: HOST, method: 'POST', headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' }, body: 'title=Retitled+by+the+editor' });
    expect(edit.status).toBe(200);
    for (const path of [`/article/${slug}/`, '/', `/tag/${tag}/`, '/feed.xml']) {
      const page = await get(path);
      expect({ path, cache: page.headers['x-cache'], retitled: page.body.includes('Retitled by the editor') }).toEqual({ path, cache: 'MISS', retitled: true });
    }
  });

  it('purges from the command line', async () => {
    await untilHit('/');
    expect(manage('purge', '/')).toContain('purged');
    expect((await get('/')).headers['x-cache']).toBe('MISS');
  });

  it('purges by tag from the command line: the cached pages that show the article, and no other', async () => {
    const { id, slug, tag } = anArticle();
    // The latest article: on the home page, in the "Latest" box above page 2, on its tag page and in the feed.
    const showing = [`/article/${slug}/`, '/', '/page/2/', `/tag/${tag}/`, '/feed.xml'];
    const db = openDatabase(join(data.path, 'site.db'));
    const elsewhere = (db.prepare('SELECT slug FROM articles ORDER BY published_at, id LIMIT 1').get() as { slug: string }).slug;
    db.close();
    for (const path of [...showing, `/article/${elsewhere}/`]) expect((await untilHit(path)).headers['x-cache']).toBe('HIT');
    expect(manage('purge', '--tag', `article:${id}`)).toMatch(new RegExp(`^${showing.length} pages purged for article:${id}$`, 'm'));
    for (const path of showing) expect({ path, cache: (await get(path)).headers['x-cache'] }).toEqual({ path, cache: 'MISS' });
    expect((await get(`/article/${elsewhere}/`)).headers['x-cache']).toBe('HIT');
  });

  it('warms every page into memcached, with progress', async () => {
    const { slug, tag } = anArticle();
    const cold = [`/article/${slug}/`, `/tag/${tag}/`, '/page/2/', '/feed.xml'];
    manage('purge', ...cold);
    for (const path of cold) expect((await get(path)).headers['x-cache']).toBe('MISS');
    manage('purge', ...cold);
    const warm = spawnSync(process.execPath, [MANAGE, 'warm', '--concurrency', '4'], { env: stack.env, encoding: 'utf8' });
    expect(warm.status).toBe(0);
    const [, rendered] = /rendered (\d+) of \1 pages, stored \1 in memcached/.exec(warm.stdout) ?? [];
    expect(Number(rendered)).toBeGreaterThan(100);
    // Not a terminal: a plain progress line every tenth of the way, ending at the total.
    const progress = warm.stderr.split('\n').filter((line) => line.startsWith('warm: '));
    expect(progress.length).toBeGreaterThanOrEqual(10);
    expect(progress.at(-1)).toMatch(new RegExp(`^warm: ${rendered}/${rendered} \\(\\d+/s\\)$`));
    for (const path of cold) expect((await get(path)).headers['x-cache']).toBe('HIT');
  });

  it('refuses a bad --concurrency for warm, naming it', () => {
    const result = spawnSync(process.execPath, [MANAGE, 'warm', '--concurrency', '0'], { env: stack.env, encoding: 'utf8' });
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain('--concurrency: expected a whole number >= 1, got "0"');
  });

  it('writes the generated nginx config, which nginx accepts', () => {
    const file = join(data.path, 'nginx-out', 'nginx.conf');
    mkdirSync(join(data.path, 'nginx-out', 'logs'), { recursive: true });
    manage('nginx', '--standalone', '--prefix', join(data.path, 'nginx-out'), '--output', file);
    const text = readFileSync(file, 'utf8');
    expect(text).toContain('server_name www.pixelpress.test pixelpress.test');
    // With the example's grace, misses go to the app location that serves stale copies when the
    // app fails; bypasses and POSTs to the one that leaves the app's answer alone.
    expect(text).toContain('error_page 404 502 504 = @app;');
    expect(text).toContain('error_page 405 418 = @app_bypass;');
    expect(text).toContain('location @stale_502 {');
    const check = spawnSync(requireBinary('nginx'), ['-t', '-p', `${join(data.path, 'nginx-out')}/`, '-c', file, '-e', join(data.path, 'nginx-out', 'error.log')], { encoding: 'utf8' });
    expect(check.stderr).toContain('test is successful');
  });
});

describe('the import', () => {
  it('gives the same articles when a cluster runs again, and the clusters cover every published post once', async () => {
    const data = await makeTempDir('pixelpress-import');
    try {
      const env = { ...process.env, SITE_DATA_DIR: data.path };
      const manage = (...args: string[]): string => execFileSync(process.execPath, [MANAGE, ...args], { env, encoding: 'utf8' });
      manage('legacy', '--rows', '600');
      manage('migrate');
      for (let i = 1; i <= 7; i++) manage('import', `--cluster=${i}/7`);
      manage('import', '--cluster=3/7');
      const site = openDatabase(join(data.path, 'site.db'));
      const legacy = openDatabase(join(data.path, 'legacy.db'), { readonly: true });
      const articles = site.prepare('SELECT count(*) AS n, count(DISTINCT legacy_id) AS ids FROM articles').get() as { n: number; ids: number };
      const published = legacy.prepare("SELECT count(*) AS n FROM wp_posts WHERE post_status = 'publish' AND post_type = 'post'").get() as { n: number };
      const rows = site.prepare('SELECT id, legacy_id AS legacyId, html, excerpt, slug FROM articles ORDER BY id').all() as { id: number; legacyId: number; html: string; excerpt: string; slug: string }[];
      const tagNames = (site.prepare('SELECT name FROM tags').all() as { name: string }[]).map((row) => row.name);
      const tagged = site.prepare('SELECT count(DISTINCT article_id) AS n FROM article_tags').get() as { n: number };
      const related = site.prepare('SELECT article_id AS articleId, related_legacy_id AS other, rank FROM related_articles ORDER BY article_id, rank').all() as { articleId: number; other: number; rank: number }[];
      const rawCaptions = legacy.prepare("SELECT count(*) AS n FROM wp_posts WHERE post_content LIKE '%[caption%'").get() as { n: number };
      site.close();
      legacy.close();
      expect(articles).toEqual({ n: published.n, ids: published.n });
      for (const row of rows) {
        // Markdown became HTML; WordPress [caption] shortcodes became images.
        expect(row.html).toMatch(/<p>|<h2>/);
        expect(row.html).not.toContain('[caption');
        expect(row.slug).toMatch(new RegExp(`^[a-z0-9]+(-[a-z0-9]+)*-${row.legacyId}$`));
        // The excerpt is the text of the first 40 words, without markup.
        expect(row.excerpt).not.toMatch(/[<>]/);
        expect(row.excerpt.replace(/…$/, '').split(' ').length).toBeLessThanOrEqual(40);
      }
      if (rawCaptions.n > 0) expect(rows.some((row) => row.html.includes('<img src='))).toBe(true);
      // Shouting legacy tag names ("PATCH NOTES") are normalized; every article is tagged.
      expect(tagNames.every((name) => name !== name.toUpperCase() || name.length <= 3)).toBe(true);
      expect(tagged.n).toBe(published.n);
      // Up to three related articles each, ranked 0..2, never the article itself.
      const perArticle = new Map<number, number[]>();
      for (const row of related) perArticle.set(row.articleId, [...(perArticle.get(row.articleId) ?? []), row.rank]);
      expect(perArticle.size).toBeGreaterThan(published.n / 2);
      for (const ranks of perArticle.values()) expect(ranks).toEqual([0, 1, 2].slice(0, ranks.length));
      const legacyOf = new Map(rows.map((row) => [row.id, row.legacyId]));
      expect(related.some((row) => legacyOf.get(row.articleId) === row.other)).toBe(false);
    } finally {
      await data.remove();
    }
  });

  it('names a bad cluster spec', async () => {
    const data = await makeTempDir('pixelpress-spec');
    try {
      const env = { ...process.env, SITE_DATA_DIR: data.path };
      execFileSync(process.execPath, [MANAGE, 'legacy', '--rows', '50'], { env });
      execFileSync(process.execPath, [MANAGE, 'migrate'], { env });
      const result = spawnSync(process.execPath, [MANAGE, 'import', '--cluster=0/5'], { env, encoding: 'utf8' });
      expect(result.status).not.toBe(0);
      expect(result.stderr).toContain('Invalid cluster "0/5": expected "i/N" with whole numbers 1 <= i <= N');
    } finally {
      await data.remove();
    }
  });

  it('generates the same legacy export from the same seed', async () => {
    const dirs = [await makeTempDir('pixelpress-legacy'), await makeTempDir('pixelpress-legacy')];
    try {
      const dumps = dirs.map((dir) => {
        execFileSync(process.execPath, [MANAGE, 'legacy', '--rows', '400'], { env: { ...process.env, SITE_DATA_DIR: dir.path } });
        const db = openDatabase(join(dir.path, 'legacy.db'), { readonly: true });
        const posts = db.prepare('SELECT * FROM wp_posts ORDER BY ID').all();
        const terms = db.prepare('SELECT * FROM wp_term_relationships ORDER BY object_id, term_id').all();
        db.close();
        return createHash('sha256').update(JSON.stringify([posts, terms])).digest('hex');
      });
      expect(dumps[0]).toBe(dumps[1]);
    } finally {
      for (const dir of dirs) await dir.remove();
    }
  });
});

describe('pnpm migrate:demo', () => {
  it('kills the runner part-way with SIGKILL, resumes it with the same command, and ends with every post imported once', async () => {
    const data = await makeTempDir('pixelpress-migrate');
    try {
      const result = spawnSync(process.execPath, [join(MANAGE, '..', 'migrate-demo.js'), '--clusters', '60', '--jobs', '3', '--rows', '1200'], {
        env: { ...process.env, MIGRATE_DEMO_DIR: data.path },
        encoding: 'utf8',
      });
      expect(result.status).toBe(0);
      const [, doneAtKill] = /== killed the runner with SIGKILL: (\d+) of 60 clusters done by its log/.exec(result.stdout) ?? [];
      expect(Number(doneAtKill)).toBeGreaterThanOrEqual(20);
      expect(Number(doneAtKill)).toBeLessThan(60);
      // The resumed run skipped what the killed one finished.
      expect(result.stderr).toMatch(new RegExp(`cluster-run: 60 of 60 clusters done, ${doneAtKill} by earlier runs`));
      expect(result.stdout).toMatch(/OK: (\d+) articles for \1 published legacy posts, \1 distinct/);
    } finally {
      await data.remove();
    }
  });
});

describe('pnpm demo --smoke', () => {
  it('holds every promise the demo checks', async () => {
    const data = await makeTempDir('pixelpress-demo');
    try {
      const run = spawnSync(process.execPath, [join(MANAGE, '..', 'demo.js'), '--smoke', '--rows', '900'], { env: { ...process.env, SITE_DATA_DIR: data.path }, encoding: 'utf8' });
      // The check lines alone, so a failure names the promise that broke rather than the migration's log.
      const checks = run.stdout.split('\n').filter((line) => /^(PASS|FAIL) /.test(line));
      expect({ checks, status: run.status }).toEqual({ checks: checks.map((line) => line.replace(/^FAIL/, 'PASS')), status: 0 });
      expect(checks).toHaveLength(5);
      expect(run.stdout).toContain('5 of 5 checks held');
    } finally {
      await data.remove();
    }
  });
});
