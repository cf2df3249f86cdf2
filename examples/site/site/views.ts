// The views, one function a page, as in Django's views.py. They render; caching is the middleware's
// job. Each page tags the articles it shows (`article:<id>`), so an edit purges exactly the pages
// that show the article, wherever they are.
import type { Request, Response } from 'express';
import { tagPage, type PageStore } from '@sitecache/cache-store';
import { checkPassword, SESSION_COOKIE, signSession } from './auth.js';
import type { Articles, ArticleSummary, Comments, Users } from './models.js';
import type { Settings } from './settings.js';

export interface Services {
  readonly settings: Settings;
  readonly articles: Articles;
  readonly comments: Comments;
  readonly users: Users;
  readonly pages: PageStore;
}

export function views({ settings, articles, comments, users, pages }: Services) {
  const context = (req: Request, extra: object): object => ({ user: req.user, renderedAt: new Date().toISOString(), ...extra });
  const siteUrl = `${settings.cache.scheme}://${settings.cache.hosts[0]}`;

  return {
    home(req: Request, res: Response): void {
      const page = req.params.page === undefined ? 1 : Number(req.params.page);
      const pages = homePages(articles);
      // /page/1/ is the home page, and no page past the last exists: one URL per list, for the cache too.
      if (!Number.isInteger(page) || (page < 2 && req.params.page !== undefined) || page > pages) return notFound(req, res);
      const list = articles.latest(PER_PAGE, (page - 1) * PER_PAGE);
      // Older pages open with the latest headlines, so a reader who lands there sees what is new.
      const latest = page > 1 ? articles.latest(LATEST_BOX) : [];
      tagPage(res, 'home', ...showing(list), ...showing(latest));
      res.render('home.njk', context(req, { articles: list, latest, page, pages }));
    },

    article(req: Request, res: Response): void {
      const article = articles.bySlug(String(req.params.slug));
      if (!article) return notFound(req, res);
      tagPage(res, `article:${article.id}`, ...showing(article.related));
      res.render('article.njk', context(req, { article }));
    },

    tag(req: Request, res: Response): void {
      const found = articles.tagged(String(req.params.slug));
      if (!found) return notFound(req, res);
      tagPage(res, `tag:${found.tag.slug}`, ...showing(found.articles));
      res.render('tag.njk', context(req, found));
    },

    feed(req: Request, res: Response): void {
      // Its real type, which the config's contentTypes gives /feed.xml in nginx too, so it is cached.
      res.type('application/rss+xml');
      const latest = articles.latest(FEED_ITEMS);
      tagPage(res, 'feed', ...showing(latest));
      res.render('feed.xml.njk', { siteUrl, articles: latest });
    },

    commentCount(req: Request, res: Response): void {
      res.set('Cache-Control', 'no-store');
      res.json({ article: Number(req.params.id), count: comments.countFor(Number(req.params.id)) });
    },

    addComment(req: Request, res: Response): void {
      res.set('Cache-Control', 'no-store');
      res.json({ article: Number(req.params.id), count: comments.add(Number(req.params.id)) });
    },

    loginForm(req: Request, res: Response): void {
      res.set('Cache-Control', 'private, no-store');
      res.render('login.njk', context(req, {}));
    },

    login(req: Request, res: Response): void {
      const { username = '', password = '' } = (req.body ?? {}) as { username?: string; password?: string };
      const user = users.find(username);
      res.set('Cache-Control', 'private, no-store');
      if (!user || !checkPassword(password, user.passwordHash)) {
        res.status(403).render('login.njk', context(req, { error: 'Unknown user or wrong password.' }));
        return;
      }
      res.cookie(SESSION_COOKIE, signSession(user.username, settings.secretKey), { httpOnly: true, sameSite: 'lax', path: '/' });
      res.redirect(303, '/');
    },

    logout(req: Request, res: Response): void {
      res.set('Cache-Control', 'private, no-store');
      res.clearCookie(SESSION_COOKIE, { httpOnly: true, sameSite: 'lax', path: '/' });
      res.redirect(303, '/');
    },

    /** The editor's page: a form for an article's headline and body. */
    editor(req: Request, res: Response): void {
      res.set('Cache-Control', 'private, no-store');
      if (!req.user) return res.redirect(303, '/login');
      const article = articles.byId(Number(req.params.id));
      if (!article) return notFound(req, res);
      res.render('editor.njk', context(req, { article, purged: req.query.purged }));
    },

    /** The editor's form, posted: saves the headline and body, purges the pages that show them, and goes back to the form. */
    async edit(req: Request, res: Response): Promise<void> {
      res.set('Cache-Control', 'private, no-store');
      if (!req.user) return res.redirect(303, '/login');
      const { title, body } = (req.body ?? {}) as { title?: string; body?: string };
      const result = await saveEdit(Number(req.params.id), { title: String(title ?? ''), html: body === undefined ? undefined : String(body) });
      if ('error' in result) {
        res.status(result.status).type('text/plain').send(`${result.error}\n`);
        return;
      }
      res.redirect(303, `/admin/article/${result.article}/?purged=${result.purged}`);
    },

    /** An editor retitles an article (JSON or a form): the pages tagged with it are purged, so nginx stops serving them. */
    async retitle(req: Request, res: Response): Promise<void> {
      res.set('Cache-Control', 'private, no-store');
      if (!req.user) {
        res.status(403).json({ error: 'log in first' });
        return;
      }
      const title = String((req.body as { title?: string } | undefined)?.title ?? '');
      const result = await saveEdit(Number(req.params.id), { title });
      if ('error' in result) {
        res.status(result.status).json({ error: result.error });
        return;
      }
      res.json({ article: result.article, title: title.trim(), purged: result.purged });
    },
  };

  /** Saves an editor's change, then purges every cached page that shows the article: those tagged `article:<id>`. */
  async function saveEdit(id: number, change: { title: string; html?: string | undefined }): Promise<EditResult> {
    const title = change.title.trim();
    if (!articles.byId(id)) return { status: 404, error: 'no such article' };
    if (!title) return { status: 400, error: 'a title is required' };
    articles.update(id, { title, ...(change.html === undefined ? {} : { html: change.html }) });
    const { purged } = await pages.purgeTags(`article:${id}`);
    return { article: id, purged };
  }
}

/** How many pages the home list has: /, then /page/2/ on. */
function homePages(articles: Articles): number {
  return Math.max(1, Math.ceil(articles.count() / PER_PAGE));
}

/** Every URL the site's pages are cached under: the home list and its older pages, each article, each tag and the feed. */
export function cachedPaths(articles: Articles): string[] {
  const older = Array.from({ length: homePages(articles) - 1 }, (_, i) => `/page/${i + 2}/`);
  return [
    '/',
    ...older,
    ...articles.allSlugs().map((slug) => `/article/${slug}/`),
    ...articles.allTagSlugs().map((slug) => `/tag/${slug}/`),
    '/feed.xml',
  ];
}

/** The article saved and how many cached pages were purged, or why not saved. */
type EditResult = { article: number; purged: number } | { status: number; error: string };

/** Articles a page of the home list shows; the older pages add the latest few headlines above theirs. */
const PER_PAGE = 20;
const LATEST_BOX = 3;

const FEED_ITEMS = 30;

/** The tags of the articles a page shows. */
function showing(list: readonly ArticleSummary[]): string[] {
  return list.map((article) => `article:${article.id}`);
}

function notFound(req: Request, res: Response): void {
  res.status(404).type('text/plain').send(`No page at ${req.originalUrl}\n`);
}
