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
  type ServerResult,
  type ServerStats,
} from './page-store.js';
export { pageCache, type PageCacheMiddleware, type NextFunction } from './middleware.js';
export type { PageCacheOptions, RouteRule } from './page-cache.js';
export { responseRefusal, type SkipReason, type ResponseFacts } from './policy.js';
export type { PageCacheMetrics, MetricsSnapshot } from './metrics.js';
export { CacheStoreOptionError, PageAddressError, UnsupportedServerError } from './errors.js';
