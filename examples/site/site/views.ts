// The views, one function a page, as in Django's views.py. They render; caching is the middleware's job.
import type { Request, Response } from 'express';
import type { PageStore } from '@sitecache/cache-store';
import { checkPassword, SESSION_COOKIE, signSession } from './auth.js';
import type { Articles, Comments, Users } from './models.js';
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
      res.render('home.njk', context(req, { articles: articles.latest() }));
    },

    article(req: Request, res: Response): void {
      const article = articles.bySlug(String(req.params.slug));
      if (!article) return notFound(req, res);
      res.render('article.njk', context(req, { article }));
    },

    tag(req: Request, res: Response): void {
      const found = articles.tagged(String(req.params.slug));
      if (!found) return notFound(req, res);
      res.render('tag.njk', context(req, found));
    },

    feed(req: Request, res: Response): void {
      // Its real type, which the config's contentTypes gives /feed.xml in nginx too, so it is cached.
      res.type('application/rss+xml');
      res.render('feed.xml.njk', { siteUrl, articles: articles.latest(30) });
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

    /** An editor retitles an article: the pages that show the title are purged so nginx stops serving them. */
    async retitle(req: Request, res: Response): Promise<void> {
      res.set('Cache-Control', 'private, no-store');
      if (!req.user) {
        res.status(403).json({ error: 'log in first' });
        return;
      }
      const id = Number(req.params.id);
      const before = articles.byId(id);
      const title = String((req.body as { title?: string } | undefined)?.title ?? '').trim();
      if (!before || !title) {
        res.status(before ? 400 : 404).json({ error: before ? 'a title is required' : 'no such article' });
        return;
      }
      articles.retitle(id, title);
      const purged = await pages.purge(pagesShowing(before.slug, before.tags.map((tag) => tag.slug)));
      res.json({ article: id, title, purged: purged.map((p) => ({ url: p.url, result: p.result })) });
    },
  };
}

/** The pages that list an article's title: the article, the home page, its tag pages and the feed. */
export function pagesShowing(slug: string, tagSlugs: readonly string[]): string[] {
  return [`/article/${slug}/`, '/', '/feed.xml', ...tagSlugs.map((tag) => `/tag/${tag}/`)];
}

function notFound(req: Request, res: Response): void {
  res.status(404).type('text/plain').send(`No page at ${req.originalUrl}\n`);
}
