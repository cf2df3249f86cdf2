export { normalizeHost } from './host.js';
export { nginxRequest, nginxUri, type NginxRequest, type RequestLike } from './request.js';
export { HTML_TYPE, cachedLocations, isCachedLocation, servedContentType, type CachedLocation } from './locations.js';
export { bypassCookiePattern } from './cookies.js';
export { isNginxLiteral, NGINX_LITERAL_RULE } from './syntax.js';
export { GZIP_FLAG, MAX_RELATIVE_TTL, memcachedExptime } from './memcached.js';
export { createHashRing, type HashRing } from './ring.js';
export { InvalidHostError, InvalidUrlError, InvalidServerListError } from './errors.js';
export { STALE_KEY_MARKER, staleKeyConfig } from './stale.js';
