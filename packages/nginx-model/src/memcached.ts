/**
 * The memcached flag bit that marks a stored page as gzip: nginx's `memcached_gzip_flag` and the
 * writer both use this one constant. Above 8 because memcache-client claims bits 1-8 for its own
 * value types.
 */
export const GZIP_FLAG = 16;

/** memcached reads an exptime above 30 days as a Unix time, so a relative TTL stays at or below it. */
export const MAX_RELATIVE_TTL = 60 * 60 * 24 * 30;

/** The exptime to send memcached for a TTL in seconds: relative up to 30 days, else a Unix time. */
export function memcachedExptime(ttl: number, nowMs = Date.now()): number {
  return ttl > MAX_RELATIVE_TTL ? Math.floor(nowMs / 1000) + ttl : ttl;
}
