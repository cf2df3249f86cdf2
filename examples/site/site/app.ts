import express, { type Express } from 'express';
import nunjucks from 'nunjucks';
import { openDatabase, type Db } from './db.js';
import type { PageCacheMiddleware } from '@sitecache/cache-store';
import { cacheMiddleware, middlewareList } from './middleware.js';
import { Articles, Comments, Users } from './models.js';
import type { Settings } from './settings.js';
import { urls } from './urls.js';
import { views } from './views.js';

export interface Site {
  readonly app: Express;
  readonly db: Db;
  /** The page-cache middleware: its store and counters. */
  readonly cache: PageCacheMiddleware;
  /** Closes the database and the cache's memcached connections. */
  close(): Promise<void>;
}

/** The whole site: settings in, an Express app out. */
export function createSite(settings: Settings): Site {
  const db = openDatabase(settings.databasePath);
  const articles = new Articles(db);
  const users = new Users(db);
  const cache = cacheMiddleware(settings);

  const app = express();
  app.disable('x-powered-by');
  // ETags would make the app answer 304 where nginx, serving from memcached, sends the page.
  app.set('etag', false);
  nunjucks.configure(settings.templateDir, { autoescape: true, express: app });
  app.set('view engine', 'njk');
  for (const middleware of middlewareList(settings, users, cache)) app.use(middleware);
  app.use(urls(views({ settings, articles, comments: new Comments(db), users, pages: cache.store })));
  return {
    app,
    db,
    cache,
    async close() {
      await cache.close();
      db.close();
    },
  };
}
