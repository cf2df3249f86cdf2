export {
  createPageStore,
  type PageStore,
  type PageStoreOptions,
  type PageStoreLogger,
  type PageAddress,
  type PutOptions,
  type PutResult,
  type StoredPage,
  type PurgeOptions,
  type PurgedPage,
  type PurgedKey,
  type TagPurge,
  type TagPurgeServer,
  type ServerResult,
  type ServerStats,
} from './page-store.js';
export { pageCache, type PageCacheMiddleware, type NextFunction } from './middleware.js';
export type { PageCacheOptions, RouteRule } from './page-cache.js';
export { responseRefusal, type SkipReason, type ResponseFacts } from './policy.js';
export type { PageCacheMetrics, MetricsSnapshot } from './metrics.js';
export { tagPage, MAX_TAG_LENGTH, MAX_TAGS_PER_PAGE, type TaggableResponse } from './tags.js';
export { purgeHandler, PURGE_SECRET_ENV, type PurgeHandler, type PurgeHandlerOptions } from './purge-endpoint.js';
export { CacheStoreOptionError, PageAddressError, PageTagError, PurgeCountError, UnsupportedServerError } from './errors.js';
