// The middleware list, in order, as Django's MIDDLEWARE setting: each entry sees the request
// before the ones below it and the response after them.
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { pageCache, type PageCacheMiddleware } from '@sitecache/cache-store';
import { parseCookies, readSession, SESSION_COOKIE } from './auth.js';
import type { Settings } from './settings.js';
import type { Users } from './models.js';

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      /** The logged-in visitor, set by the session middleware. */
      user?: { username: string; displayName: string };
    }
  }
}

/** Reads the signed session cookie into req.user. */
export function sessionMiddleware(settings: Settings, users: Users): RequestHandler {
  return (req: Request, _res: Response, next: NextFunction) => {
    const username = readSession(parseCookies(req.headers.cookie).get(SESSION_COOKIE), settings.secretKey);
    const user = username ? users.find(username) : undefined;
    if (user) req.user = { username: user.username, displayName: user.displayName };
    next();
  };
}

/**
 * The page cache: stores every anonymous GET page that may be shared, where nginx reads it.
 * Routes that must never be stored say so here, not by hoping their headers are right.
 */
export function cacheMiddleware(settings: Settings): PageCacheMiddleware {
  return pageCache(settings.cache, {
    serveFromCache: settings.serveFromCache,
    route: (req) => (/^\/(api\/|login|logout|admin\/)/.test(req.url ?? '') ? false : undefined),
  });
}

export function middlewareList(settings: Settings, users: Users, cache: PageCacheMiddleware): RequestHandler[] {
  return [sessionMiddleware(settings, users), cache as unknown as RequestHandler];
}
