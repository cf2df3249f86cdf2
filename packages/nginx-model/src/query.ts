import { escapeRegex } from './syntax.js';

/**
 * Query parameters a page never depends on (analytics scripts read them in the browser): left out
 * of the key by default, so a visitor arriving from a newsletter or a social network gets the page
 * everyone else gets. A name ending in `*` is a prefix.
 */
export const DEFAULT_IGNORE_PARAMS: readonly string[] = Object.freeze([
  'utm_*',
  'fbclid',
  'gclid',
  'dclid',
  'msclkid',
  'mc_cid',
  'mc_eid',
  '_ga',
  'igshid',
  'yclid',
]);

/**
 * Whether `text` may name parameters in `ignoreParams` or `cacheParams`: a parameter name as a
 * query spells it (letters, digits, `-._~`, `%XX` escapes), optionally ending in `*` for a prefix.
 */
export function isQueryParamPattern(text: string): boolean {
  return PARAM_PATTERN.test(text);
}

/** What `isQueryParamPattern` accepts, said for error messages. */
export const QUERY_PARAM_RULE = 'a parameter name (letters, digits, -._~ and %XX escapes) or a prefix ending in * such as "utm_*"';

/**
 * The request URI the page key is built from: `requestUri` (nginx's `$request_uri`) with every
 * query parameter named in `ignoreParams` removed, each with one `&` next to it, and every other
 * byte kept as it is (order, encoding, empty values, a bare `?`). Removing every parameter leaves
 * the bare path. The query starts at the first `?`; parameters are split at `&`, a name ends at
 * the first `=`, and names are compared byte for byte as written (`utm%5Fsource` is not
 * `utm_source`). A `#` is an ordinary query byte. The generated nginx config does the same.
 */
export function keyRequestUri(requestUri: string, ignoreParams: readonly string[]): string {
  const query = requestUri.indexOf('?');
  if (query < 0 || ignoreParams.length === 0) return requestUri;
  const matcher = matcherFor(ignoreParams);
  // Most queries name no ignored parameter: the regex nginx tests first says so at once.
  if (!matcher.mayName.test(requestUri)) return requestUri;
  let start = query + 1;
  for (;;) {
    const amp = requestUri.indexOf('&', start);
    const end = amp < 0 ? requestUri.length : amp;
    if (matcher(paramName(requestUri, start, end))) break;
    if (amp < 0) return requestUri;
    start = amp + 1;
  }
  const kept: string[] = [];
  let from = query + 1;
  for (;;) {
    const amp = requestUri.indexOf('&', from);
    const end = amp < 0 ? requestUri.length : amp;
    if (from < start || !matcher(paramName(requestUri, from, end))) kept.push(requestUri.slice(from, end));
    if (amp < 0) break;
    from = amp + 1;
  }
  return kept.length === 0 ? requestUri.slice(0, query) : `${requestUri.slice(0, query + 1)}${kept.join('&')}`;
}

/**
 * The first query parameter of `requestUri` that `cacheParams` does not allow and `ignoreParams`
 * does not remove from the key: a page asked for with it is rendered but not stored (reason
 * `query`), so random parameters cannot fill memcached. An empty parameter (`&&`, a trailing `&`)
 * counts, as its name `""`. Undefined when the page may be stored, and always when `cacheParams`
 * is undefined (no allowlist).
 */
export function uncachedParam(
  requestUri: string,
  params: { readonly ignoreParams: readonly string[]; readonly cacheParams?: readonly string[] | undefined },
): string | undefined {
  if (params.cacheParams === undefined) return undefined;
  const query = requestUri.indexOf('?');
  // A bare "?" has no parameter.
  if (query < 0 || query === requestUri.length - 1) return undefined;
  const ignored = matcherFor(params.ignoreParams);
  const allowed = matcherFor(params.cacheParams);
  let start = query + 1;
  for (;;) {
    const amp = requestUri.indexOf('&', start);
    const end = amp < 0 ? requestUri.length : amp;
    const name = paramName(requestUri, start, end);
    if (!ignored(name) && !allowed(name)) return name;
    if (amp < 0) return undefined;
    start = amp + 1;
  }
}

/**
 * A PCRE source that matches every request URI `keyRequestUri` would change (and a few it leaves
 * as they are, such as a `&utm_x` in the path): the generated nginx config tests `$request_uri`
 * against it so that a URI without ignored parameters costs one regex and nothing more.
 * Undefined for no names. Holds no `$`, quote, space or brace, so nginx takes it literally.
 */
export function ignoredParamsPattern(ignoreParams: readonly string[]): string | undefined {
  if (ignoreParams.length === 0) return undefined;
  const prefixes = ignoreParams.filter((p) => p.endsWith('*')).map((p) => escapeRegex(p.slice(0, -1)));
  const names = ignoreParams.filter((p) => !p.endsWith('*')).map(escapeRegex);
  // An exact name ends where the parameter does: at "=", "&" or the end.
  const alternatives = [...prefixes, ...(names.length > 0 ? [`(?:${names.join('|')})(?![^&=])`] : [])];
  return `[?&](?:${alternatives.join('|')})`;
}

interface Matcher {
  (name: string): boolean;
  /** `ignoredParamsPattern` of the list: false for a URI that names none of its parameters. */
  readonly mayName: RegExp;
}

const matchers = new WeakMap<readonly string[], Matcher>();

/** A test of a name against `patterns`, built once per list (configs are frozen, so lists are kept). */
function matcherFor(patterns: readonly string[]): Matcher {
  let matcher = matchers.get(patterns);
  if (matcher === undefined) {
    const exact = new Set(patterns.filter((p) => !p.endsWith('*')));
    const prefixes = patterns.filter((p) => p.endsWith('*')).map((p) => p.slice(0, -1));
    const test = (name: string): boolean => exact.has(name) || prefixes.some((prefix) => name.startsWith(prefix));
    matcher = Object.assign(test, { mayName: new RegExp(ignoredParamsPattern(patterns) ?? '(?!)') });
    matchers.set(patterns, matcher);
  }
  return matcher;
}

/** The name of the parameter between `start` and `end`: up to its first `=`. */
function paramName(uri: string, start: number, end: number): string {
  const param = uri.slice(start, end);
  const eq = param.indexOf('=');
  return eq < 0 ? param : param.slice(0, eq);
}

const PARAM_PATTERN = /^(?:[A-Za-z0-9._~-]|%[0-9A-Fa-f]{2})+\*?$/;
