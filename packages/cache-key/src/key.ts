import { hash } from 'node:crypto';
import { DEFAULT_IGNORE_PARAMS, InvalidUrlError, isNginxLiteral, keyRequestUri, nginxRequest, normalizeHost, type RequestLike } from '@sitecache/nginx-model';
import { InvalidKeyPrefixError } from './errors.js';

/** The parts of sitecache.config.json the key depends on. A whole SitecacheConfig fits. */
export interface KeyConfig {
  /** Literal text before the scheme. Default "". */
  readonly keyPrefix?: string;
  /** The scheme nginx writes into the key: fixed by config, never taken from the request. */
  readonly scheme: string;
  /**
   * Query parameters left out of the key (names, or prefixes ending in `*`), as the config's
   * `ignoreParams`. Default `DEFAULT_IGNORE_PARAMS` (utm_*, fbclid, gclid...), the config's default.
   */
  readonly ignoreParams?: readonly string[];
}

/**
 * The key of the page at an absolute URL: lowercase hex md5 of
 * keyPrefix + scheme + "://" + host + request URI, the host as nginx's `$host` and the path and
 * query exactly as written (never decoded or normalized), less the query parameters of
 * `ignoreParams` (see `keyRequestUri`). Characters beyond ASCII are taken as UTF-8, the bytes a
 * client sends for them. A `#fragment` is not part of a request and is dropped.
 * @throws InvalidUrlError, InvalidHostError
 */
export function cacheKey(url: string, options: { keyPrefix?: string; ignoreParams?: readonly string[] } = {}): string {
  const match = ABSOLUTE_URL.exec(url);
  if (!match) throw new InvalidUrlError(url, 'expected an absolute http or https URL such as "https://example.com/path"');
  const [, scheme = '', authority = '', rest = ''] = match;
  if (authority.includes('@')) throw new InvalidUrlError(url, 'user info ("user@") is not part of a page address');
  const host = normalizeHost(authority);
  const fragment = rest.indexOf('#');
  // Without its ignored parameters `https://host?utm_source=x` is the page "/", as `GET /?utm_source=x` is.
  const requestUri = withPath(keyRequestUri(fragment < 0 ? rest : rest.slice(0, fragment), options.ignoreParams ?? DEFAULT_IGNORE_PARAMS));
  return md5Hex(`${options.keyPrefix ?? ''}${scheme.toLowerCase()}://${host}${requestUri}`, 'utf8');
}

/**
 * The key nginx looks up for this request: the same template with the configured scheme, the
 * request's host as `$host` and its raw target as `$request_uri`, less the query parameters of
 * `config.ignoreParams` (see `keyRequestUri`). An absolute-form target
 * (`GET http://host/path`) takes its host from the request line, as nginx does. Node gives the
 * target and headers as latin1 text, one character per byte, so they are hashed as those bytes.
 * @throws InvalidHostError when the host is missing or one nginx refuses.
 */
export function requestKey(req: RequestLike, config: KeyConfig): string {
  const { host, requestUri } = nginxRequest(req);
  const keyUri = keyRequestUri(requestUri, config.ignoreParams ?? DEFAULT_IGNORE_PARAMS);
  return md5Hex(`${config.keyPrefix ?? ''}${config.scheme}://${host}${keyUri}`, 'latin1');
}

/**
 * The same key template as an nginx string expression, for `set_md5 $memcached_key "..."`
 * and its lua and njs equivalents: nginx fills in `$host` and `$request_uri` itself. With
 * `ignoreParams`, the config nginx-conf renders puts the URI without them in place of `$request_uri`.
 * @throws InvalidKeyPrefixError
 */
export function nginxKeyExpression(config: KeyConfig): string {
  const prefix = config.keyPrefix ?? '';
  if (!isNginxLiteral(prefix)) throw new InvalidKeyPrefixError(prefix);
  return `${prefix}${config.scheme}://$host$request_uri`;
}

function withPath(requestUri: string): string {
  // nginx answers `GET http://host HTTP/1.1` as a request for "/".
  return requestUri === '' ? '/' : requestUri;
}

function md5Hex(source: string, encoding: 'utf8' | 'latin1'): string {
  // Pure ASCII hashes the same either way; only wider text needs its bytes spelled out.
  if (encoding === 'utf8' || Buffer.byteLength(source, 'utf8') === source.length) return hash('md5', source, 'hex');
  return hash('md5', Buffer.from(source, 'latin1'), 'hex');
}

// scheme "://" authority, then the rest from the first "/", "?" or "#".
const ABSOLUTE_URL = /^(https?):\/\/([^/?#]*)(.*)$/is;
