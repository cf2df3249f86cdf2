import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createPageStore, type PageStore } from '@sitecache/cache-store';
import type { TempDir } from '@sitecache/test-services';
import type { Page, Response } from 'playwright-core';
import { openDatabase } from '../site/db.js';
import { Articles, type Article } from '../site/models.js';
import { startStack, type Stack } from '../site/services.js';
import { launchChromium, type Chromium } from './chromium.js';
import { importedSite } from './fixtures/site-data.js';

const NEW_TITLE = 'Confirmed: a release date, and a second act';
const NEW_BODY = '<p>The studio confirmed the date on stream tonight, with a trailer for the second act.</p>';

// An editor at work, in headless Chromium, through nginx, memcached and the app: the pages that
// show a headline are served from memcached before the edit and after it, and are never stale.
// The browser opens the stack's 127.0.0.1 host (startStack adds it to the hosts nginx serves).
describe('an editor changes a headline in the browser', () => {
  let data: TempDir;
  let stack: Stack;
  let browser: Chromium;
  let page: Page;
  let origin: string;
  // Reads memcached as nginx would, so the test knows a page is stored without rendering it.
  let store: PageStore;
  // The article the editor changes: among the latest three (so on the home page and in the
  // "Latest" box above page 2), with another article's "Related" box listing it.
  let edited: Article;
  let relatedSlug: string;
  // Screenshots go to PIXELPRESS_SCREENSHOTS (the README's are examples/site/docs), else the run's own folder.
  let shots: string;

  beforeAll(async () => {
    data = await importedSite('pixelpress-editing', 1500, { editor: true });
    const db = openDatabase(join(data.path, 'site.db'));
    const articles = new Articles(db);
    const latest = articles.latest(3);
    const choice = latest.find((article) => articles.relatedFrom(article.id).length > 0);
    if (!choice) throw new Error('none of the latest three articles is in another article\'s "Related" box');
    edited = articles.byId(choice.id) as Article;
    relatedSlug = (articles.relatedFrom(choice.id)[0] as Article).slug;
    db.close();
    shots = process.env.PIXELPRESS_SCREENSHOTS ?? join(data.path, 'screenshots');
    mkdirSync(shots, { recursive: true });
    stack = await startStack(data.path);
    origin = `http://127.0.0.1:${stack.nginx.port}`;
    store = createPageStore(stack.config, { logger: { warn: () => undefined } });
    browser = await launchChromium();
    page = await browser.context.newPage();
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await store?.close();
    await stack?.stop();
    await data?.remove();
  });

  const cacheOf = (response: Response | null): string | undefined => response?.headers()['x-cache'];
  /**
   * Resolves once the page is in memcached under the key nginx looks it up by for the browser
   * (host 127.0.0.1): the app stores a page just after answering. A read of memcached, so nothing
   * renders meanwhile.
   */
  const stored = async (path: string): Promise<void> => {
    const address = `${stack.config.scheme}://127.0.0.1${path}`;
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if ((await store.get(address)) !== undefined) return;
      await page.waitForTimeout(20);
    }
    throw new Error(`${path} was not stored within 10 s`);
  };
  /** Opens a page the app renders (a MISS), waits until it is stored, and reloads it once: nginx must serve it from memcached. */
  const missThenHit = async (path: string): Promise<{ miss: Response | null; hit: Response | null }> => {
    const miss = await page.goto(origin + path);
    await stored(path);
    return { miss, hit: await page.reload() };
  };
  /** The feed is not a page Chromium shows: the page's own fetch() asks for it, through the browser's network stack. */
  const fetchFeed = (): Promise<{ cache: string | null; body: string }> =>
    page.evaluate(async () => {
      const response = await fetch('/feed.xml');
      return { cache: response.headers.get('x-cache'), body: await response.text() };
    });
  /** Each page that shows the headline, and where on it. */
  const headlineOn = (): [path: string, where: string][] => [
    [`/article/${edited.slug}/`, 'article h1'],
    ['/', 'main'],
    ['/page/2/', 'aside.latest'],
    [`/tag/${edited.tags[0]?.slug}/`, 'main'],
    [`/article/${relatedSlug}/`, 'aside.related'],
  ];
  const textOf = async (where: string): Promise<string> => (await page.locator(where).textContent()) ?? '';

  it('serves the home page, page 2 and the other pages that show the headline from memcached', async () => {
    for (const [path, where] of headlineOn()) {
      const { miss, hit } = await missThenHit(path);
      expect({ path, miss: cacheOf(miss), hit: cacheOf(hit), shows: (await textOf(where)).includes(edited.title) }).toEqual({ path, miss: 'MISS', hit: 'HIT', shows: true });
    }
    expect((await fetchFeed()).cache).toBe('MISS');
    await stored('/feed.xml');
    expect((await fetchFeed()).cache).toBe('HIT');
    expect(cacheOf(await page.goto(`${origin}/`))).toBe('HIT');
    await page.screenshot({ path: join(shots, 'editing-1-before.png') });
  });

  it('lets the logged-in editor change the headline and the body on the editor page, then log out', async () => {
    await page.goto(`${origin}/login`);
    await page.getByLabel('User').fill('ed');
    await page.getByLabel('Password').fill('pw');
    await Promise.all([page.waitForURL(`${origin}/`), page.getByRole('button', { name: 'Log in' }).click()]);
    expect(await page.getByText('Hello, Ed Itor').count()).toBe(1);
    const mine = await page.goto(`${origin}/article/${edited.slug}/`);
    // The editor's pages come from the app, never from the cache.
    expect(cacheOf(mine)).toBe('MISS');
    await page.getByRole('link', { name: 'Edit' }).click();
    await page.getByLabel('Headline').fill(NEW_TITLE);
    await page.getByLabel('Body (HTML)').fill(NEW_BODY);
    await Promise.all([page.waitForURL(/\?purged=\d+$/), page.getByRole('button', { name: 'Save' }).click()]);
    // Exactly the pages opened above, each recorded under the article's tag when it was stored.
    expect(await page.getByRole('status').textContent()).toBe(`Saved. ${headlineOn().length + 1} cached pages showing it were purged.`);
    await page.screenshot({ path: join(shots, 'editing-2-editor.png') });
    const home = page.waitForResponse(`${origin}/`);
    await page.getByRole('button', { name: 'Log out' }).click();
    // The first anonymous look at the home page after the edit: rendered again, with the new headline.
    const landed = await home;
    expect(cacheOf(landed)).toBe('MISS');
    expect(await landed.text()).toContain(NEW_TITLE);
    expect(await page.getByRole('link', { name: 'Log in' }).count()).toBe(1);
  });

  it('shows the new headline on the article, the home page, page 2, its tag page, the feed and a related article: one MISS each, then, reloaded once, a HIT', async () => {
    // The home page's MISS was the page the browser landed on after logging out.
    await stored('/');
    const home = await page.goto(`${origin}/`);
    expect({ cache: cacheOf(home), shows: (await textOf('main')).includes(NEW_TITLE) }).toEqual({ cache: 'HIT', shows: true });
    for (const [path, where] of headlineOn().filter(([path]) => path !== '/')) {
      const fresh = await page.goto(origin + path);
      expect({ path, cache: cacheOf(fresh), shows: (await textOf(where)).includes(NEW_TITLE) }).toEqual({ path, cache: 'MISS', shows: true });
      // The page's tags are for the cache: the browser never sees them.
      expect(fresh?.headers()['surrogate-key']).toBeUndefined();
      await stored(path);
      const cached = await page.reload();
      expect({ path, cache: cacheOf(cached), shows: (await textOf(where)).includes(NEW_TITLE) }).toEqual({ path, cache: 'HIT', shows: true });
      expect(cached?.headers()['surrogate-key']).toBeUndefined();
    }
    const feed = await fetchFeed();
    expect({ cache: feed.cache, shows: feed.body.includes(NEW_TITLE) }).toEqual({ cache: 'MISS', shows: true });
    await stored('/feed.xml');
    const feedAgain = await fetchFeed();
    expect({ cache: feedAgain.cache, shows: feedAgain.body.includes(NEW_TITLE) }).toEqual({ cache: 'HIT', shows: true });
    expect(cacheOf(await page.goto(`${origin}/article/${edited.slug}/`))).toBe('HIT');
    expect(await page.locator('article').textContent()).toContain('with a trailer for the second act');
    expect(cacheOf(await page.goto(`${origin}/`))).toBe('HIT');
    await page.screenshot({ path: join(shots, 'editing-3-after.png') });
    expect(cacheOf(await page.goto(`${origin}/article/${relatedSlug}/`))).toBe('HIT');
    await page.locator('aside.related').scrollIntoViewIfNeeded();
    await page.screenshot({ path: join(shots, 'editing-4-related-after.png') });
  });
});
