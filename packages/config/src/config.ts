import { readFileSync } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import { resolve } from 'node:path';
import { DEFAULT_IGNORE_PARAMS, isCachedLocation, isNginxLiteral, isQueryParamPattern, MAX_RELATIVE_TTL, NGINX_LITERAL_RULE, QUERY_PARAM_RULE } from '@sitecache/nginx-model';
import { ConfigError, ConfigFileError } from './errors.js';

/**
 * The one source of truth that the app side (cache-key, cache-store) and the nginx side
 * (nginx-conf) both read, so that the key the app writes under is the key nginx looks up.
 */
export interface SitecacheConfig {
  /** Literal text put before every key. Lets several sites share one memcached pool. */
  readonly keyPrefix: string;
  /** The scheme visitors use. Fixed by config: TLS usually ends before nginx sees the request. */
  readonly scheme: 'http' | 'https';
  /** Host names the site answers for, lowercase. nginx refuses any other Host. */
  readonly hosts: readonly string[];
  /** Where nginx listens, `host:port`. */
  readonly listen: string;
  /** memcached servers exactly as nginx's upstream names them (`host:port` or `unix:/path`). */
  readonly memcached: readonly string[];
  /** App servers that render misses (`host:port` or `unix:/path`). */
  readonly app: readonly string[];
  /** Seconds a page stays cached when the response names no max-age. */
  readonly ttl: number;
  /** Store pages gzip-compressed; nginx serves them with Content-Encoding: gzip. */
  readonly gzip: boolean;
  /** Cookie names that mark a visitor whose pages must never come from or go into the cache. */
  readonly bypassCookies: readonly string[];
  /** Response header that tells a hit (`HIT`, from nginx) from a miss (`MISS`, from the app). */
  readonly cacheHeader: string;
  /**
   * Pages of other types than HTML that may be cached: an nginx location (`"= /feed.xml"` for that
   * path alone, `"/api/v1/"` for every path under it) and the Content-Type its hits are served
   * with. Everywhere else nginx serves hits as `text/html; charset=utf-8`, so only HTML is stored.
   */
  readonly contentTypes: Readonly<Record<string, string>>;
  /**
   * Addresses or CIDRs (IPv4 or IPv6) of the proxies in front of nginx, such as a load balancer.
   * Only from these does nginx take the client's address from X-Forwarded-For; with none, the app
   * is sent the address the request came from, never what a client claims. The key and the cache
   * policy never depend on it.
   */
  readonly trustedProxies: readonly string[];
  /**
   * Seconds a stale copy of each page outlives it (0 = off). With grace on, every stored page is
   * also kept under its stale key for `ttl + grace`, and nginx serves that copy (`STALE`) when the
   * app fails, times out or cannot be reached, and while another process re-renders the page.
   */
  readonly grace: number;
  /** Seconds nginx waits for the app's response (`proxy_read_timeout`) before it counts as failed. */
  readonly appTimeout: number;
  /**
   * Headers every hit and stale copy carries (nginx `add_header ... always`), header name to value:
   * the headers a page needs beyond its body (Cache-Control for browsers, CSP, HSTS...). A page whose
   * response carries other headers is not stored, so a hit never differs from the miss.
   */
  readonly hitHeaders: Readonly<Record<string, string>>;
  /**
   * An HTML file nginx sends, with the app's status, when the app fails and no stale copy exists;
   * undefined for nginx's own short page.
   */
  readonly errorPage: string | undefined;
  /**
   * Query parameters left out of the key, by name or by a prefix ending in `*` (default utm_*,
   * fbclid, gclid and other trackers): `/a?b=1&utm_source=x` is the page `/a?b=1`. Both nginx and
   * the app remove them (`keyRequestUri` in @sitecache/nginx-model); [] keys every URI as sent.
   */
  readonly ignoreParams: readonly string[];
  /**
   * The query parameters a stored page may have (names or `*` prefixes), besides ignoreParams;
   * a page asked for with any other is rendered but not stored. Undefined: any query is stored.
   */
  readonly cacheParams: readonly string[] | undefined;
  /**
   * Misses (requests that reach the app to be rendered) each client address may make per second,
   * past which nginx answers 429, or the stale copy where one exists; 0 = no limit.
   */
  readonly missRate: number;
  /**
   * The shared secret callers of the app's purge endpoint (cache-store's `purgeHandler`) send as
   * `Authorization: Bearer <secret>`; undefined: the environment's SITECACHE_PURGE_SECRET, else
   * no endpoint. 16 to 1024 printable ASCII characters without spaces.
   */
  readonly purgeSecret: string | undefined;
  /**
   * Seconds nginx keeps a hit in its own cache (`proxy_cache` on tmpfs) in front of the memcached
   * lookup, 0 = off. The hottest pages then cost nginx no memcached round trip; a purged page may be
   * served from there for up to this long.
   */
  readonly microcache: number;
}

/**
 * The config as written in sitecache.config.json: `hosts`, `memcached` and `app` are required,
 * every other field has a default. Every entry point that takes a config accepts this and
 * validates it (see `resolveConfig`).
 */
export type SitecacheConfigInput = Partial<Omit<SitecacheConfig, 'hosts' | 'memcached' | 'app'>> &
  Pick<SitecacheConfig, 'hosts' | 'memcached' | 'app'>;

/** The file name `loadConfig` reads when given no path and no SITECACHE_CONFIG. */
export const CONFIG_FILE_NAME = 'sitecache.config.json';

const DEFAULTS = {
  keyPrefix: '',
  scheme: 'https',
  listen: '127.0.0.1:8080',
  ttl: 600,
  gzip: true,
  bypassCookies: [] as string[],
  cacheHeader: 'X-Cache',
  grace: 0,
  appTimeout: 10,
  ignoreParams: DEFAULT_IGNORE_PARAMS,
  missRate: 0,
  microcache: 0,
} as const;

const FIELDS = new Set([
  'keyPrefix',
  'scheme',
  'hosts',
  'listen',
  'memcached',
  'app',
  'ttl',
  'gzip',
  'bypassCookies',
  'cacheHeader',
  'contentTypes',
  'trustedProxies',
  'grace',
  'appTimeout',
  'hitHeaders',
  'errorPage',
  'ignoreParams',
  'cacheParams',
  'missRate',
  'purgeSecret',
  'microcache',
]);

const HOST_NAME = /^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9_-]*[a-z0-9])?)*$/;
const IPV6_LITERAL = /^\[[0-9a-f:.]+\]$/;
const HOST_PORT = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;
const UNIX_SOCKET = /^unix:\/[^\s;{}"'$]+$/;
// A media type, lowercase, with at most a charset parameter.
const CONTENT_TYPE = /^[a-z0-9][a-z0-9!#$&^_.+-]*\/[a-z0-9][a-z0-9!#$&^_.+-]*(; charset=[a-z0-9._-]+)?$/;
// Printable ASCII and spaces: an nginx string in double quotes holds it once " and \ are escaped;
// "$" would start a variable, and nginx 1.22 has no escape for it.
const HEADER_VALUE = /^[\x20-\x23\x25-\x7e]*$/;
// Headers a hit gets from nginx itself (the memcached module, gzip, the generated config).
const NGINX_HIT_HEADERS = new Set(['content-type', 'content-length', 'content-encoding', 'accept-ranges', 'vary', 'date', 'server', 'connection', 'transfer-encoding']);
const ERROR_PAGE = /^\/[^\s;{}"'$\\]*\.html?$/;
// A shared secret sent in an Authorization header: long enough not to be guessed.
const PURGE_SECRET = /^[\x21-\x7e]{16,1024}$/;
// RFC 7230 token: what a cookie or header name may be.
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * Validates a parsed config object and fills defaults.
 * @param source named in error messages, usually the file path.
 * @throws ConfigError naming the first field at fault.
 */
export function parseConfig(input: unknown, source?: string): SitecacheConfig {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new ConfigError('(root)', 'a JSON object', input, source);
  }
  const raw = input as Record<string, unknown>;
  for (const field of Object.keys(raw)) {
    if (!FIELDS.has(field)) {
      throw new ConfigError(field, `one of the known fields (${[...FIELDS].join(', ')})`, field, source);
    }
  }
  const fail = (field: string, expected: string, value: unknown): never => {
    throw new ConfigError(field, expected, value, source);
  };

  const keyPrefix = raw.keyPrefix ?? DEFAULTS.keyPrefix;
  // The prefix is written literally into nginx's key expression.
  if (typeof keyPrefix !== 'string' || !isNginxLiteral(keyPrefix)) fail('keyPrefix', NGINX_LITERAL_RULE, keyPrefix);

  const scheme = raw.scheme ?? DEFAULTS.scheme;
  if (scheme !== 'http' && scheme !== 'https') fail('scheme', '"http" or "https"', scheme);

  const hosts = stringList(raw.hosts, 'hosts', fail, { nonEmpty: true });
  hosts.forEach((host, i) => {
    if (host !== host.toLowerCase()) fail(`hosts[${i}]`, 'a lowercase host name (nginx lowercases $host)', host);
    if (!HOST_NAME.test(host) && !IPV6_LITERAL.test(host)) {
      fail(`hosts[${i}]`, 'a host name such as "www.example.com" (no scheme, port or path)', host);
    }
  });

  const listen = raw.listen ?? DEFAULTS.listen;
  if (typeof listen !== 'string' || !isHostPort(listen)) fail('listen', '"host:port"', listen);

  const memcached = stringList(raw.memcached, 'memcached', fail, { nonEmpty: true });
  memcached.forEach((server, i) => {
    if (!isHostPort(server) && !UNIX_SOCKET.test(server)) {
      fail(`memcached[${i}]`, '"host:port" or "unix:/path"', server);
    }
  });
  checkUnique(memcached, 'memcached', fail);

  const app = stringList(raw.app, 'app', fail, { nonEmpty: true });
  app.forEach((server, i) => {
    if (!isHostPort(server) && !UNIX_SOCKET.test(server)) fail(`app[${i}]`, '"host:port" or "unix:/path"', server);
  });
  checkUnique(app, 'app', fail);

  const ttl = raw.ttl ?? DEFAULTS.ttl;
  if (typeof ttl !== 'number' || !Number.isInteger(ttl) || ttl < 1 || ttl > MAX_RELATIVE_TTL) {
    fail('ttl', `whole seconds from 1 to ${MAX_RELATIVE_TTL} (memcached's 30-day limit for relative expiry)`, ttl);
  }

  const gzip = raw.gzip ?? DEFAULTS.gzip;
  if (typeof gzip !== 'boolean') fail('gzip', 'true or false', gzip);

  const bypassCookies = stringList(raw.bypassCookies ?? DEFAULTS.bypassCookies, 'bypassCookies', fail, {
    nonEmpty: false,
  });
  bypassCookies.forEach((name, i) => {
    if (!TOKEN.test(name)) fail(`bypassCookies[${i}]`, 'a cookie name (letters, digits and !#$%&\'*+.^_`|~-)', name);
  });

  const cacheHeader = raw.cacheHeader ?? DEFAULTS.cacheHeader;
  if (typeof cacheHeader !== 'string' || !TOKEN.test(cacheHeader)) fail('cacheHeader', 'a header name', cacheHeader);

  const contentTypes = raw.contentTypes ?? {};
  if (typeof contentTypes !== 'object' || contentTypes === null || Array.isArray(contentTypes)) {
    fail('contentTypes', 'an object of nginx locations to content types, such as {"= /feed.xml": "application/rss+xml; charset=utf-8"}', contentTypes);
  }
  for (const [location, type] of Object.entries(contentTypes as Record<string, unknown>)) {
    if (!isCachedLocation(location)) {
      fail(`contentTypes["${location}"]`, 'an nginx location: "= /exact/path" or a "/prefix/" other than "/", normalized', location);
    }
    if (typeof type !== 'string' || !CONTENT_TYPE.test(type)) {
      fail(`contentTypes["${location}"]`, 'a lowercase content type such as "application/json" or "application/rss+xml; charset=utf-8"', type);
    }
  }

  const trustedProxies = stringList(raw.trustedProxies ?? [], 'trustedProxies', fail, { nonEmpty: false });
  trustedProxies.forEach((proxy, i) => {
    if (!isAddressOrCidr(proxy)) {
      fail(`trustedProxies[${i}]`, 'an IPv4 or IPv6 address or CIDR, such as "10.0.0.0/8", "192.0.2.1" or "2001:db8::/32"', proxy);
    }
  });

  const grace = raw.grace ?? DEFAULTS.grace;
  if (typeof grace !== 'number' || !Number.isInteger(grace) || grace < 0 || grace > MAX_RELATIVE_TTL) {
    fail('grace', `whole seconds from 0 (off) to ${MAX_RELATIVE_TTL}`, grace);
  }

  const appTimeout = raw.appTimeout ?? DEFAULTS.appTimeout;
  if (typeof appTimeout !== 'number' || !Number.isInteger(appTimeout) || appTimeout < 1 || appTimeout > 3600) {
    fail('appTimeout', 'whole seconds from 1 to 3600', appTimeout);
  }

  const hitHeaders = raw.hitHeaders ?? {};
  if (typeof hitHeaders !== 'object' || hitHeaders === null || Array.isArray(hitHeaders)) {
    fail('hitHeaders', 'an object of header names to values, such as {"Cache-Control": "public, max-age=60"}', hitHeaders);
  }
  const seenHeaders = new Set<string>();
  for (const [name, value] of Object.entries(hitHeaders as Record<string, unknown>)) {
    const lower = name.toLowerCase();
    if (!TOKEN.test(name)) fail(`hitHeaders["${name}"]`, 'a header name', name);
    if (NGINX_HIT_HEADERS.has(lower) || lower === (cacheHeader as string).toLowerCase()) {
      fail(`hitHeaders["${name}"]`, `a header nginx does not set on hits itself (not ${[...NGINX_HIT_HEADERS].join(', ')} or the cacheHeader)`, name);
    }
    if (seenHeaders.has(lower)) fail(`hitHeaders["${name}"]`, 'each header once, whatever its case', name);
    seenHeaders.add(lower);
    if (typeof value !== 'string' || !HEADER_VALUE.test(value)) {
      fail(`hitHeaders["${name}"]`, 'a header value of printable ASCII, without "$" (nginx would read a variable)', value);
    }
    // add_header sends nothing for "", while a miss may send the header empty: a hit would differ.
    if (value === '') fail(`hitHeaders["${name}"]`, 'a header value that is not empty (nginx\'s add_header sends no header for "")', value);
  }

  const errorPage = raw.errorPage;
  if (errorPage !== undefined && (typeof errorPage !== 'string' || !ERROR_PAGE.test(errorPage))) {
    fail('errorPage', 'an absolute path to an .html file, without spaces, quotes, $, ; or braces', errorPage);
  }

  // The default list is the frozen constant itself, so its compiled matcher is shared.
  const ignoreParams = raw.ignoreParams === undefined ? DEFAULTS.ignoreParams : Object.freeze(paramList(raw.ignoreParams, 'ignoreParams', fail));
  const cacheParams = raw.cacheParams === undefined ? undefined : Object.freeze(paramList(raw.cacheParams, 'cacheParams', fail));

  const missRate = raw.missRate ?? DEFAULTS.missRate;
  if (typeof missRate !== 'number' || !Number.isInteger(missRate) || missRate < 0 || missRate > 100_000) {
    fail('missRate', 'whole requests per second per client address from 0 (no limit) to 100000', missRate);
  }

  const microcache = raw.microcache ?? DEFAULTS.microcache;
  if (typeof microcache !== 'number' || !Number.isInteger(microcache) || microcache < 0 || microcache > 60) {
    fail('microcache', 'whole seconds from 0 (off) to 60', microcache);
  }
  const purgeSecret = raw.purgeSecret;
  if (purgeSecret !== undefined && (typeof purgeSecret !== 'string' || !PURGE_SECRET.test(purgeSecret))) {
    // The value stays out of the message: it is a secret, even when a bad one.
    fail('purgeSecret', '16 to 1024 printable ASCII characters without spaces', typeof purgeSecret === 'string' ? `(${purgeSecret.length} characters)` : purgeSecret);
  }

  const config: SitecacheConfig = Object.freeze({
    keyPrefix: keyPrefix as string,
    scheme: scheme as 'http' | 'https',
    hosts: Object.freeze(hosts),
    listen: listen as string,
    memcached: Object.freeze(memcached),
    app: Object.freeze(app),
    ttl: ttl as number,
    gzip: gzip as boolean,
    bypassCookies: Object.freeze(bypassCookies),
    cacheHeader: cacheHeader as string,
    contentTypes: Object.freeze({ ...(contentTypes as Record<string, string>) }),
    trustedProxies: Object.freeze(trustedProxies),
    grace: grace as number,
    appTimeout: appTimeout as number,
    hitHeaders: Object.freeze({ ...(hitHeaders as Record<string, string>) }),
    errorPage: errorPage as string | undefined,
    ignoreParams,
    cacheParams,
    missRate: missRate as number,
    purgeSecret: purgeSecret as string | undefined,
    microcache: microcache as number,
  });
  validated.add(config);
  return config;
}

// Configs parseConfig returned: frozen, so they stay valid, and taken as they are.
const validated = new WeakSet<object>();

/**
 * The config an entry point works with: one `parseConfig` returned (or `loadConfig`) as it is,
 * anything else (an object written by hand, as in sitecache.config.json) validated first.
 * @throws ConfigError naming the first field at fault.
 */
export function resolveConfig(input: SitecacheConfigInput | SitecacheConfig): SitecacheConfig {
  if (typeof input === 'object' && input !== null && validated.has(input)) return input as SitecacheConfig;
  return parseConfig(input);
}

/**
 * Reads and validates sitecache.config.json.
 * @param path the file; by default $SITECACHE_CONFIG, else ./sitecache.config.json.
 * @throws ConfigFileError when the file is missing or not JSON, ConfigError when a field is bad.
 */
export function loadConfig(path?: string): SitecacheConfig {
  const file = resolve(path ?? process.env.SITECACHE_CONFIG ?? CONFIG_FILE_NAME);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new ConfigFileError(file, code === 'ENOENT' ? 'no such file' : String(error), { cause: error });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new ConfigFileError(file, `not valid JSON (${(error as Error).message})`, { cause: error });
  }
  return parseConfig(parsed, file);
}

function isHostPort(text: string): boolean {
  const match = HOST_PORT.exec(text);
  if (!match) return false;
  const port = Number(match[2]);
  return port >= 1 && port <= 65535;
}

// What nginx's set_real_ip_from takes, less host names (resolved once, at startup) and unix:.
function isAddressOrCidr(text: string): boolean {
  const [address = '', prefix, ...rest] = text.split('/');
  if (rest.length > 0) return false;
  const bits = isIPv4(address) ? 32 : isIPv6(address) && !address.includes('%') ? 128 : 0;
  if (bits === 0) return false;
  return prefix === undefined || (/^(0|[1-9]\d{0,2})$/.test(prefix) && Number(prefix) <= bits);
}

function stringList(
  value: unknown,
  field: string,
  fail: (field: string, expected: string, value: unknown) => never,
  { nonEmpty }: { nonEmpty: boolean },
): string[] {
  if (!Array.isArray(value) || (nonEmpty && value.length === 0)) {
    fail(field, nonEmpty ? 'a non-empty list of strings' : 'a list of strings', value);
  }
  const list = value as unknown[];
  list.forEach((item, i) => {
    if (typeof item !== 'string') fail(`${field}[${i}]`, 'a string', item);
  });
  return [...(list as string[])];
}

function paramList(value: unknown, field: string, fail: (field: string, expected: string, value: unknown) => never): string[] {
  const list = stringList(value, field, fail, { nonEmpty: false });
  list.forEach((param, i) => {
    if (!isQueryParamPattern(param)) fail(`${field}[${i}]`, QUERY_PARAM_RULE, param);
  });
  return list;
}

function checkUnique(
  list: readonly string[],
  field: string,
  fail: (field: string, expected: string, value: unknown) => never,
): void {
  const seen = new Set<string>();
  list.forEach((item, i) => {
    if (seen.has(item)) fail(`${field}[${i}]`, 'each server once', item);
    seen.add(item);
  });
}
