/**
 * Whether nginx holds `text` literally inside a double-quoted string such as the key expression
 * of `set_md5 $memcached_key "..."`: printable ASCII without space, `$` (a variable), quotes,
 * backslash (an escape) or braces (`${name}`).
 */
export function isNginxLiteral(text: string): boolean {
  return NGINX_LITERAL.test(text);
}

/** What `isNginxLiteral` accepts, said for error messages. */
export const NGINX_LITERAL_RULE = 'printable ASCII without space, $, quotes, backslash or braces (nginx reads those specially)';

const NGINX_LITERAL = /^[\x21\x23\x25-\x26\x28-\x5b\x5d-\x7a\x7c\x7e]*$/;

/**
 * `text` with every regular expression metacharacter escaped, so that it matches itself alone in a
 * JavaScript RegExp and in nginx's PCRE alike: the app and the generated config share such sources.
 */
export function escapeRegex(text: string): string {
  return text.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&');
}
