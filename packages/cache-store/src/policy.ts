import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { SitecacheConfig } from '@sitecache/config';
import { bypassCookiePattern, HTML_TYPE, nginxRequest, uncachedParam } from '@sitecache/nginx-model';

/**
 * Why a page was not stored. The policy's reasons come first (a private or unservable page),
 * then the writer's (memcached could not take it right now).
 */
export type SkipReason =
  /** The request was not a GET. HEAD is answered by nginx from the cache, but never stored. */
  | 'method'
  /** The request carried an Authorization header: its page may be personal. */
  | 'authorization'
  /** The request carried a cookie named in `bypassCookies`. */
  | 'bypass-cookie'
  /** The Host is not one of `config.hosts`: nginx refuses it, so nothing would ever read the page. */
  | 'unknown-host'
  /** The request target or Host is one nginx would refuse, so there is no key. */
  | 'invalid-request'
  /**
   * The query has a parameter outside `config.cacheParams` and `ignoreParams`: the page is rendered
   * but never stored, so random parameters (`?r=1`, `?r=2` ...) cannot fill memcached.
   */
  | 'query'
  /** The route opted out. */
  | 'route'
  /** The status was not 200. */
  | 'status'
  /** The response set a cookie: storing it would hand one visitor's cookie to everyone. */
  | 'set-cookie'
  /** Cache-Control: private (also the qualified private="..."). */
  | 'private'
  /** Cache-Control: no-store. */
  | 'no-store'
  /** Cache-Control: no-cache (also the qualified no-cache="..."). */
  | 'no-cache'
  /** s-maxage (or, without it, max-age) is 0 or not a number. */
  | 'zero-max-age'
  /** No max-age, and an Expires that is unreadable or not after the response's Date (or now, without one). */
  | 'expired'
  /** Vary on anything but Accept-Encoding: nginx's key cannot tell those variants apart. */
  | 'vary'
  /** Not the type nginx serves hits of that URL with: HTML in UTF-8, or the location's type in `contentTypes`. */
  | 'content-type'
  /** Already encoded (Content-Encoding): nginx would serve the bytes without saying so. */
  | 'content-encoding'
  /**
   * A header a hit would not carry: the response sends a header (other than `PER_RESPONSE_HEADERS`)
   * that `config.hitHeaders` does not name with the same value.
   */
  | 'headers'
  /**
   * The page's tags (`Surrogate-Key`, `tagPage`) cannot be indexed: a tag that is not printable
   * ASCII without spaces, longer than 128 characters, or more than 64 tags. Never stored untagged.
   */
  | 'tags'
  /** Larger than the size guard (memcached's item limit). */
  | 'too-large'
  /**
   * The adapter never saw the body (a hijacked Fastify reply, a payload Fastify's onSend cannot
   * copy such as a web stream): not stored, rather than stored empty.
   */
  | 'body-unseen'
  /** The response never finished (the client went away or the app failed mid-body). */
  | 'aborted'
  /** The server nginx reads this key from failed recently; the writer leaves it alone for a while. */
  | 'server-down'
  /** Too many writes to that server are already in flight. */
  | 'busy'
  /** memcached refused the page or did not answer in time. */
  | 'memcached-error'
  /** The store was closed, or memcached did not answer before `closeTimeoutMs` ran out. */
  | 'closed'
  /**
   * The page was purged while it rendered (its purge marker changed since the render was
   * admitted), or the render outlived the marker, so a purge could have gone unseen.
   */
  | 'purged'
  /**
   * sitecache itself failed on this request (a lookup, the policy, the route option or the store
   * threw): the app answered, nothing was stored, and the error was logged.
   */
  | 'internal-error';

/** Every reason, in the order the policy checks them. */
export const SKIP_REASONS: readonly SkipReason[] = [
  'method',
  'authorization',
  'bypass-cookie',
  'unknown-host',
  'invalid-request',
  'query',
  'route',
  'status',
  'set-cookie',
  'private',
  'no-store',
  'no-cache',
  'zero-max-age',
  'expired',
  'vary',
  'content-type',
  'content-encoding',
  'headers',
  'tags',
  'too-large',
  'body-unseen',
  'aborted',
  'server-down',
  'busy',
  'memcached-error',
  'closed',
  'purged',
  'internal-error',
];

/**
 * Response headers a hit need not repeat, lowercase: framing and connection headers, values that
 * belong to one response (Date, Expires, ETag, Last-Modified, Age, X-Request-Id, Server-Timing),
 * headers nginx sets on a hit itself (Content-Length, Accept-Ranges, Server, `Vary:
 * Accept-Encoding`, the cache header), informational ones (X-Powered-By), and those another check
 * of the policy decides (Content-Type, Content-Encoding, Vary, Set-Cookie, Surrogate-Key). Every other header of a
 * response must be in `config.hitHeaders` with the same value for the page to be stored.
 */
export const PER_RESPONSE_HEADERS: ReadonlySet<string> = new Set([
  'date',
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'etag',
  'last-modified',
  'age',
  // An absolute moment: no fixed hit header could repeat it. It still sets the TTL.
  'expires',
  'server',
  'x-powered-by',
  'x-request-id',
  'server-timing',
  'accept-ranges',
  'content-type',
  'content-encoding',
  'vary',
  'set-cookie',
  // The page's tags: the middleware takes them off before the response goes out, and checks them itself.
  'surrogate-key',
]);

/** The hit side of the header check: what nginx adds to every hit, and the header it marks hits with. */
export interface HitHeaderRule {
  /** `config.hitHeaders`: header name to value. */
  readonly hitHeaders: Readonly<Record<string, string>>;
  /** `config.cacheHeader`, which differs between a miss and a hit by design. */
  readonly cacheHeader: string;
}

/** No hit headers, nginx's default cache header: what `responseRefusal` assumes without a config. */
const NO_HIT_HEADERS: HitHeaderRule = { hitHeaders: {}, cacheHeader: 'X-Cache' };

/** One header a hit would send otherwise than the miss did. */
export interface HeaderDifference {
  /** Lowercase name. */
  readonly name: string;
  /** The miss's value, undefined when only the hit carries the header. */
  readonly miss: string | undefined;
  /** The hit's value (from hitHeaders), undefined when only the miss carries it. */
  readonly hit: string | undefined;
}

/**
 * The headers of a response that a hit would not carry with the same value, in the response's
 * order, ignoring `PER_RESPONSE_HEADERS` and the cache header. With `both`, the hit headers the
 * response lacks too (they appear on hits only).
 */
export function headerDifferences(headers: OutgoingHttpHeaders, rule: HitHeaderRule, both = false): HeaderDifference[] {
  const hit = new Map(Object.entries(rule.hitHeaders).map(([name, value]) => [name.toLowerCase(), value.trim()]));
  const cacheHeader = rule.cacheHeader.toLowerCase();
  const differences: HeaderDifference[] = [];
  const seen = new Set<string>();
  for (const [rawName, value] of Object.entries(headers)) {
    const name = rawName.toLowerCase();
    if (value === undefined || name === cacheHeader || PER_RESPONSE_HEADERS.has(name)) continue;
    seen.add(name);
    const miss = headerText(value).trim();
    if (hit.get(name) !== miss) differences.push({ name, miss, hit: hit.get(name) });
  }
  if (both) {
    for (const [name, value] of hit) if (!seen.has(name)) differences.push({ name, miss: undefined, hit: value });
  }
  return differences;
}

/** What the request-side checks read. Node's IncomingMessage fits. */
export interface RequestFacts {
  readonly method?: string | undefined;
  readonly url?: string | undefined;
  readonly headers: IncomingHttpHeaders;
}

/** What the response-side checks read. */
export interface ResponseFacts {
  readonly status: number;
  readonly headers: OutgoingHttpHeaders;
}

/** Compiled once per config: the checks that depend on it. */
export interface RequestPolicy {
  /** Why nothing for this request may come from or go into the cache, or undefined. */
  refusal(req: RequestFacts): SkipReason | undefined;
  /** Whether the request may be answered from the cache (GET or HEAD, no credentials, a known host). */
  mayRead(req: RequestFacts): boolean;
}

export function requestPolicy(config: SitecacheConfig): RequestPolicy {
  // The same test as the generated nginx map on $http_cookie, so both sides bypass the same visitors.
  const cookies = bypassCookiePattern(config.bypassCookies);
  const bypass = cookies === undefined ? undefined : new RegExp(cookies);
  const exact = new Set(config.hosts.filter((h) => !h.startsWith('*.')));
  const suffixes = config.hosts.filter((h) => h.startsWith('*.')).map((h) => h.slice(1));
  const knownHost = (host: string): boolean => exact.has(host) || suffixes.some((s) => host.endsWith(s) && host.length > s.length);

  const credentials = (req: RequestFacts): SkipReason | undefined => {
    if (req.headers.authorization !== undefined) return 'authorization';
    const cookie = req.headers.cookie;
    if (bypass && cookie !== undefined && bypass.test(cookie)) return 'bypass-cookie';
    return undefined;
  };
  const hostCheck = (req: RequestFacts): SkipReason | undefined => {
    const host = requestHost(req);
    if (host === undefined) return 'invalid-request';
    return knownHost(host) ? undefined : 'unknown-host';
  };
  return {
    refusal(req) {
      if (req.method !== 'GET') return 'method';
      const refused = credentials(req) ?? hostCheck(req);
      if (refused !== undefined || config.cacheParams === undefined) return refused;
      return uncachedParam(nginxRequest(req).requestUri, config) === undefined ? undefined : 'query';
    },
    mayRead(req) {
      if (req.method !== 'GET' && req.method !== 'HEAD') return false;
      return credentials(req) === undefined && hostCheck(req) === undefined;
    },
  };
}

/**
 * Why this response must not be stored, or undefined when nginx may serve its body to anyone:
 * everything its status and headers decide, so the middleware applies it as the head goes out
 * (`bodyRefusal` decides the rest once the response is over).
 * Cache-Control is read as tokens, case-insensitively, qualified forms included; s-maxage
 * governs a shared cache, so it decides before max-age does. Last, every header outside
 * `PER_RESPONSE_HEADERS` must be one of `hits.hitHeaders` with the same value ("headers"):
 * Cache-Control included, since a hit carries hitHeaders' Cache-Control, not the app's.
 * @param hits the config's hitHeaders and cacheHeader; default none and "X-Cache".
 */
export function responseRefusal(
  res: ResponseFacts,
  now = Date.now(),
  servedType: string = HTML_TYPE,
  hits: HitHeaderRule = NO_HIT_HEADERS,
): SkipReason | undefined {
  if (res.status !== 200) return 'status';
  const headers = res.headers;
  if (headers['set-cookie'] !== undefined) return 'set-cookie';
  const directives = parseCacheControl(headers['cache-control']);
  if (directives.has('private')) return 'private';
  if (directives.has('no-store')) return 'no-store';
  if (directives.has('no-cache')) return 'no-cache';
  const lifetime = directives.has('s-maxage') ? directives.get('s-maxage') : directives.get('max-age');
  if (lifetime !== undefined) {
    if (!(seconds(lifetime) > 0)) return 'zero-max-age';
  } else if (headers.expires !== undefined) {
    if (!((expiresLeft(headers, now) ?? 0) > 0)) return 'expired';
  }
  if (!varyAllowed(headers.vary)) return 'vary';
  if (!servedAs(servedType, headers['content-type'])) return 'content-type';
  const encoding = headerText(headers['content-encoding']).trim().toLowerCase();
  if (encoding !== '' && encoding !== 'identity') return 'content-encoding';
  if (headerDifferences(headers, hits).length > 0) return 'headers';
  return undefined;
}

/** What only the end of a response tells: whether it went out whole, and the body it sent. */
export interface BodyFacts {
  /** False when the response never finished (the client went away, or the app failed mid-body). */
  readonly finished: boolean;
  /** The body as copied, or undefined when it outgrew the size guard. */
  readonly body: Uint8Array | undefined;
  /** False when the body went out by a way the adapter does not copy (the body is then empty). */
  readonly seen: boolean;
}

/**
 * Why a page whose head `responseRefusal` let through is still not stored, or undefined: the
 * half of the policy that waits for the end of the response.
 */
export function bodyRefusal(end: BodyFacts): 'aborted' | 'too-large' | 'body-unseen' | undefined {
  if (!end.finished) return 'aborted';
  if (!end.seen) return 'body-unseen';
  return end.body === undefined ? 'too-large' : undefined;
}

/**
 * Seconds a stored page lives, the one rule for the middleware and `PageStore.put`: `ttl` (a
 * route's own) when given; else the response's s-maxage; else its max-age; else what its Expires
 * leaves, counted from its Date header when that is readable, else from `now` (rounded down, at
 * least 1); else `fallback` (config.ttl). A max-age that is not a positive whole number, or an
 * unreadable Expires, is passed over: the policy refuses those pages before they get here.
 * @param headers the response's headers, lowercase names as `res.getHeaders()` returns them.
 */
export function pageTtl(headers: OutgoingHttpHeaders, fallback: number, ttl?: number, now = Date.now()): number {
  if (ttl !== undefined) return ttl;
  const directives = parseCacheControl(headers['cache-control']);
  for (const name of ['s-maxage', 'max-age']) {
    const value = directives.get(name);
    if (value === undefined) continue;
    const lifetime = seconds(value);
    if (lifetime > 0) return lifetime;
  }
  const left = expiresLeft(headers, now);
  if (left !== undefined && !Number.isNaN(left)) return Math.max(1, Math.floor(left / 1000));
  return fallback;
}

/**
 * Milliseconds from the response's Date (or `now`, without a readable one) to its Expires, as
 * HTTP counts a lifetime: undefined without Expires, NaN when Expires is unreadable.
 */
function expiresLeft(headers: OutgoingHttpHeaders, now: number): number | undefined {
  if (headers.expires === undefined) return undefined;
  const expires = Date.parse(headerText(headers.expires));
  const date = headers.date === undefined ? Number.NaN : Date.parse(headerText(headers.date));
  return expires - (Number.isNaN(date) ? now : date);
}

/**
 * Directive name (lowercase) to its value; a repeated directive keeps its smallest number, so a
 * contradictory header never lengthens a page's life. A bare directive maps to "".
 */
export function parseCacheControl(value: OutgoingHttpHeaders[string]): Map<string, string> {
  const directives = new Map<string, string>();
  const text = headerText(value);
  if (text === '') return directives;
  for (const part of splitOutsideQuotes(text)) {
    const eq = part.indexOf('=');
    const name = (eq < 0 ? part : part.slice(0, eq)).trim().toLowerCase();
    if (name === '') continue;
    let arg = eq < 0 ? '' : part.slice(eq + 1).trim();
    if (arg.startsWith('"') && arg.endsWith('"') && arg.length >= 2) arg = arg.slice(1, -1);
    const seen = directives.get(name);
    if (seen !== undefined && (name === 'max-age' || name === 's-maxage')) {
      // An unreadable value wins over any number: the policy then refuses the page.
      if (Number.isNaN(seconds(seen)) || seconds(arg) >= seconds(seen)) continue;
    }
    directives.set(name, arg);
  }
  return directives;
}

/** The host nginx keys this request on (`$host`), or undefined when nginx would refuse it. */
export function requestHost(req: RequestFacts): string | undefined {
  try {
    return nginxRequest(req).host;
  } catch {
    return undefined;
  }
}

function varyAllowed(vary: OutgoingHttpHeaders[string]): boolean {
  for (const name of headerText(vary).split(',')) {
    const field = name.trim().toLowerCase();
    if (field !== '' && field !== 'accept-encoding') return false;
  }
  return true;
}

/**
 * Whether a response of `contentType` is what nginx says it is when it serves the bytes as
 * `servedType`: the same media type, and no other charset. A response that names UTF-8 where the
 * location names none (JSON, which is UTF-8 by definition) is the same bytes too.
 */
function servedAs(servedType: string, contentType: OutgoingHttpHeaders[string]): boolean {
  const served = mediaType(servedType);
  const sent = mediaType(headerText(contentType));
  if (sent.type !== served.type) return false;
  if (sent.charset === undefined) return true;
  return sent.charset === (served.charset ?? 'utf-8');
}

function mediaType(text: string): { type: string; charset: string | undefined } {
  const [type = '', ...params] = text.split(';');
  let charset: string | undefined;
  for (const param of params) {
    const eq = param.indexOf('=');
    if (eq < 0 || param.slice(0, eq).trim().toLowerCase() !== 'charset') continue;
    charset = param.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1').toLowerCase();
  }
  return { type: type.trim().toLowerCase(), charset };
}

function seconds(value: string): number {
  return /^\d+$/.test(value) ? Number(value) : Number.NaN;
}

function headerText(value: OutgoingHttpHeaders[string]): string {
  if (value === undefined) return '';
  return Array.isArray(value) ? value.join(', ') : String(value);
}

function splitOutsideQuotes(text: string): string[] {
  const parts: string[] = [];
  let start = 0;
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') quoted = !quoted;
    else if (c === '\\' && quoted) i++;
    else if (c === ',' && !quoted) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(text.slice(start));
  return parts;
}
