import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { join } from 'node:path';
import { memcachedCommand, type TempDir } from '@sitecache/test-services';
import { fetchPage } from '../site/client.js';
import { openDatabase } from '../site/db.js';
import { startStack, type Stack } from '../site/services.js';
import { importedSite, untilHit as untilHitOf } from './fixtures/site-data.js';

const HOST = 'www.pixelpress.test';

// Visitors from social media and newsletters arrive with tracking parameters: they get the stored
// page. Anyone else's random query strings are rendered but never stored (cacheParams is [] in the
// example's config: its pages take no parameters), so they cannot push real pages out.
describe('query strings on the example site', () => {
  let data: TempDir;
  let stack: Stack;
  let articles: string[];

  beforeAll(async () => {
    data = await importedSite('pixelpress-query', 300);
    stack = await startStack(data.path, { memcachedServers: 2 });
    const db = openDatabase(join(data.path, 'site.db'));
    articles = (db.prepare('SELECT slug FROM articles ORDER BY id LIMIT 40').all() as { slug: string }[]).map((a) => `/article/${a.slug}/`);
    db.close();
  }, 60_000);

  afterAll(async () => {
    await stack?.stop();
    await data?.remove();
  });

  const get = (path: string) => fetchPage(stack.nginx.port, path, { host: HOST });
  const untilHit = (path: string) => untilHitOf(stack, path);

  it('serves an article visited with ?utm_source=x&fbclid=y as a HIT after a plain visit', async () => {
    const article = articles[0] as string;
    expect((await untilHit(article)).headers['x-cache']).toBe('HIT');
    const tracked = await get(`${article}?utm_source=x&fbclid=y`);
    expect(tracked.status).toBe(200);
    expect(tracked.headers['x-cache']).toBe('HIT');
  });

  it('renders a random ?r=N every time and never stores it', async () => {
    const article = articles[1] as string;
    for (let i = 0; i < 3; i++) {
      const response = await get(`${article}?r=42`);
      expect(response.status).toBe(200);
      expect(response.headers['x-cache']).toBe('MISS');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  });

  /** Items stored across the memcached servers, from their own counters. */
  const itemsStored = async (): Promise<number> => {
    let total = 0;
    for (const server of stack.memcachedServers) {
      const stats = await memcachedCommand(server.address, 'stats\r\n');
      total += Number(/STAT total_items (\d+)/.exec(stats)?.[1]);
    }
    return total;
  };

  it('leaves every stored page a HIT after 1,000 requests with random query strings, which store nothing', async () => {
    for (const article of articles) expect((await untilHit(article)).headers['x-cache']).toBe('HIT');
    const before = await itemsStored();
    for (let i = 0; i < 1_000; i += 20) {
      const batch = await Promise.all(
        Array.from({ length: 20 }, (_, j) => get(`${articles[(i + j) % articles.length]}?r=${i + j}-${Math.random().toString(36).slice(2)}`)),
      );
      for (const response of batch) expect(response.status).toBe(200);
    }
    const after = await Promise.all(articles.map((article) => get(article)));
    expect(after.map((response) => response.headers['x-cache'])).toEqual(articles.map(() => 'HIT'));
    expect(await itemsStored()).toBe(before);
  });
});
