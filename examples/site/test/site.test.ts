import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { makeTempDir, type TempDir } from '@sitecache/test-services';
import { fetchPage } from '../site/client.js';
import { openDatabase } from '../site/db.js';
import { clusterRunBin, MANAGE, startStack, type Stack } from '../site/services.js';

const HOST = 'www.pixelpress.test';

// The site as a visitor meets it: through real nginx, memcached and the app.
describe('the example site behind nginx and memcached', () => {
  let data: TempDir;
  let stack: Stack;
  let env: NodeJS.ProcessEnv;
  const manage = (...args: string[]): string => execFileSync(process.execPath, [MANAGE, ...args], { env: stack?.env ?? env, encoding: 'utf8' });

  beforeAll(async () => {
    data = await makeTempDir('pixelpress-test');
    env = { ...process.env, SITE_DATA_DIR: data.path };
    execFileSync(process.execPath, [MANAGE, 'legacy', '--rows', '1500'], { env });
    execFileSync(process.execPath, [MANAGE, 'migrate'], { env });
    execFileSync(process.execPath, [clusterRunBin(), '--clusters', '6', '--jobs', '2', '--log', join(data.path, 'import.log'), '--', process.execPath, MANAGE, 'import', '--cluster={}'], { env });
    execFileSync(process.execPath, [MANAGE, 'createuser', 'ed', 'pw', 'Ed Itor'], { env });
    stack = await startStack(data.path);
  });

  afterAll(async () => {
    await stack?.stop();
    await data?.remove();
  });

  const get = (path: string, headers: Record<string, string> = {}) => fetchPage(stack.nginx.port, path, { host: HOST, headers });
  const untilHit = async (path: string) => {
    let response = await get(path);
    for (let i = 0; i < 50 && response.headers['x-cache'] !== 'HIT'; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      response = await get(path);
    }
    return response;
  };
  const anArticle = (): { id: number; slug: string; tag: string } => {
    const db = openDatabase(join(data.path, 'site.db'));
    const row = db.prepare('SELECT a.id, a.slug, g.slug AS tag FROM articles a JOIN article_tags t ON t.article_id = a.id JOIN tags g ON g.id = t.tag_id ORDER BY a.published_at DESC LIMIT 1').get() as { id: number; slug: string; tag: string };
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

  it('serves the RSS feed with its real type and never stores it', async () => {
    for (let i = 0; i < 3; i++) {
      const feed = await get('/feed.xml');
      expect(feed.headers['content-type']).toMatch(/^application\/rss\+xml/);
      expect(feed.headers['x-cache']).toBe('MISS');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  });

  it('never caches the JSON comment count the article page fetches', async () => {
    const { id } = anArticle();
    const before = await get(`/api/comments/${id}`);
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

  it('purges the article, the home page and its tag pages when an editor retitles it', async () => {
    const { id, slug, tag } = anArticle();
    for (const path of [`/article/${slug}/`, '/', `/tag/${tag}/`]) expect((await untilHit(path)).headers['x-cache']).toBe('HIT');
    const cookie = await login();
    const edit = await fetchPage(stack.nginx.port, `/admin/article/${id}/title`, { host: HOST, method: 'POST', headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' }, body: 'title=Retitled+by+the+editor' });
    expect(edit.status).toBe(200);
    for (const path of [`/article/${slug}/`, '/', `/tag/${tag}/`]) {
      const page = await get(path);
      expect({ path, cache: page.headers['x-cache'], retitled: page.body.includes('Retitled by the editor') }).toEqual({ path, cache: 'MISS', retitled: true });
    }
  });

  it('purges from the command line', async () => {
    await untilHit('/');
    expect(manage('purge', '/')).toContain('purged');
    expect((await get('/')).headers['x-cache']).toBe('MISS');
  });

  it('warms every page into memcached', async () => {
    const output = manage('warm', '--concurrency', '4');
    expect(output).toMatch(/rendered (\d+) of \1 pages, stored \1 in memcached/);
    const { slug } = anArticle();
    expect((await get(`/article/${slug}/`)).headers['x-cache']).toBe('HIT');
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
      const sample = site.prepare('SELECT html, excerpt, slug FROM articles ORDER BY id LIMIT 1').get() as { html: string; excerpt: string; slug: string };
      site.close();
      legacy.close();
      expect(articles).toEqual({ n: published.n, ids: published.n });
      expect(sample.html).toMatch(/<p>|<h2>/);
      expect(sample.slug).toMatch(/^[a-z0-9-]+-\d+$/);
    } finally {
      await data.remove();
    }
  });

  it('names a bad cluster spec', () => {
    expect(() => execFileSync(process.execPath, [MANAGE, 'import', '--cluster=0/5'], { encoding: 'utf8', stdio: 'pipe' })).toThrow(/0\/5/);
  });
});

describe('pnpm demo --smoke', () => {
  it('holds every promise the demo checks', async () => {
    const data = await makeTempDir('pixelpress-demo');
    try {
      const output = execFileSync(process.execPath, [join(MANAGE, '..', 'demo.js'), '--smoke', '--rows', '900'], { env: { ...process.env, SITE_DATA_DIR: data.path }, encoding: 'utf8' });
      expect(output).toContain('5 of 5 checks held');
    } finally {
      await data.remove();
    }
  });
});
