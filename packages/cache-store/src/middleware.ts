import type { IncomingMessage, ServerResponse } from 'node:http';
import type { SitecacheConfigInput } from '@sitecache/config';
import { BodyCapture } from './body-capture.js';
import type { CachedResponse } from './cached-response.js';
import type { PageCacheMetrics } from './metrics.js';
import { LOOKUP_FAILED, PageCache, type Admission, type AdmittedRequest, type PageCacheOptions, type Render } from './page-cache.js';
import type { PageStore } from './page-store.js';
import type { SharedResponse } from './single-flight.js';
import { captureSurrogateKey, type TagCapture } from './tags.js';

/** Connect's `next`: called with no argument to hand the request on. */
export type NextFunction = (error?: unknown) => void;

/** A Connect/Express middleware, also callable from a plain node:http handler. */
export interface PageCacheMiddleware {
  (req: IncomingMessage, res: ServerResponse, next: NextFunction): void;
  /** The store pages are written through. */
  readonly store: PageStore;
  /** Stored, skipped by reason, errors, bytes, single-flight joins, serveFromCache hits. */
  readonly metrics: PageCacheMetrics;
  /** Closes the store: the pages of responses that finished are still written (see `PageStore.close`). */
  close(): Promise<void>;
}

/**
 * The page-cache middleware: the response goes out untouched (plus `X-Cache: MISS`); a page its
 * status and headers refuse is let go as its head is sent, and once the response has finished a
 * page that nginx may serve to anyone is stored where nginx reads it.
 * @param config sitecache.config.json's object as written, or what `loadConfig`/`parseConfig` returned.
 * @throws ConfigError naming a bad config field, CacheStoreOptionError for a bad option,
 * UnsupportedServerError for a server memcache-client cannot reach.
 */
export function pageCache(config: SitecacheConfigInput, options: PageCacheOptions = {}): PageCacheMiddleware {
  const cache = new PageCache(config, options);
  const middleware = (req: IncomingMessage, res: ServerResponse, next: NextFunction): void => {
    let passed = false;
    const pass = (): void => {
      if (passed) return;
      passed = true;
      next();
    };
    // Whatever goes wrong in here, the app still answers: the cache is never the reason a page fails.
    handle(cache, req as AdmittedRequest, res, pass).catch((error: unknown) => {
      cache.fail('the middleware', error);
      pass();
    });
  };
  return Object.assign(middleware, {
    store: cache.store,
    metrics: cache.metrics,
    close: (): Promise<void> => cache.close(),
  });
}

async function handle(cache: PageCache, req: AdmittedRequest, res: ServerResponse, pass: () => void): Promise<void> {
  res.setHeader(cache.config.cacheHeader, 'MISS');
  // Whatever becomes of the request, the page's tags never reach the visitor.
  const tags = captureSurrogateKey(res);
  const admission = cache.admit(req);
  const hit = await cache.lookup(admission, req);
  if (hit === LOOKUP_FAILED) return pass();
  if (hit) return sendCached(req, res, hit);
  if (admission.refusal !== undefined) {
    cache.refuse(admission.refusal);
    return pass();
  }
  const outcome = await cache.miss(admission, req);
  if ('send' in outcome) return sendShared(res, outcome.send);
  capture(cache, admission, outcome.render, res, tags);
  pass();
}

function sendCached(req: IncomingMessage, res: ServerResponse, hit: CachedResponse): void {
  res.writeHead(200, hit.headers);
  res.end(req.method === 'HEAD' ? undefined : hit.body);
}

function sendShared(res: ServerResponse, shared: SharedResponse): void {
  for (const [name, value] of Object.entries(shared.headers)) if (value !== undefined) res.setHeader(name, value);
  res.statusCode = shared.status;
  res.end(shared.body);
}

type Writer = (...args: unknown[]) => unknown;

/**
 * Copies the body as the app writes it, through wrappers of write and end, for as long as the
 * cache follows the response: a page refused as its head goes out is not copied at all.
 */
function capture(cache: PageCache, admission: Admission, render: Render, res: ServerResponse, tags: TagCapture): void {
  let body: BodyCapture | undefined = new BodyCapture(cache.maxBodyBytes);
  const target = res as unknown as { write: Writer; end: Writer };
  const write = target.write;
  const end = target.end;
  const copyingWrite = function (this: unknown, ...args: unknown[]) {
    const bytes = body?.write(args[0], typeof args[1] === 'string' ? args[1] : undefined);
    if (bytes !== undefined) args[0] = bytes; // the same bytes, encoded once
    return Reflect.apply(write, this, args);
  };
  const copyingEnd = function (this: unknown, ...args: unknown[]) {
    if (typeof args[0] !== 'function') {
      const bytes = body?.end(args[0], typeof args[1] === 'string' ? args[1] : undefined);
      if (bytes !== undefined) args[0] = bytes;
    }
    return Reflect.apply(end, this, args);
  };
  target.write = copyingWrite;
  target.end = copyingEnd;
  cache.follow(admission, render, res, tags, {
    body: () => (body && !body.overflowed ? body.body() : undefined),
    // Every way node:http sends a body passes through write and end.
    seen: () => true,
    stop: () => {
      body = undefined;
      // Node's own again, unless something wrapped them since: then ours pass the chunks through.
      if (target.write === copyingWrite) target.write = write;
      if (target.end === copyingEnd) target.end = end;
    },
  });
}
