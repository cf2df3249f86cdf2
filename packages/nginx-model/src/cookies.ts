import { escapeRegex } from './syntax.js';

/**
 * The regular expression, over the raw Cookie header, that tells a visitor carrying one of
 * `names`: the same source text is nginx's `map $http_cookie` pattern (PCRE) and the app's
 * RegExp, so both sides bypass the cache for the same visitors. Undefined for no names.
 */
export function bypassCookiePattern(names: readonly string[]): string | undefined {
  if (names.length === 0) return undefined;
  return `(?:^|;)\\s*(?:${names.map(escapeRegex).join('|')})=`;
}
