import { InvalidHostError } from './errors.js';

/**
 * The host as nginx's `$host` holds it: lowercased, the port removed, one trailing dot removed,
 * the brackets of an IPv6 literal kept. Mirrors ngx_http_validate_host, so a host nginx refuses
 * (empty, `..`, a slash, a NUL) is refused here too.
 * @throws InvalidHostError
 */
export function normalizeHost(raw: string): string {
  // Fast path for the common case, a host that is already how nginx keeps it.
  if (PLAIN_HOST.test(raw)) return raw;

  let hostEnd = raw.length;
  let lastDot = -2;
  let state: 'usual' | 'literal' | 'rest' = 'usual';
  for (let i = 0; i < raw.length; i++) {
    const ch = raw.charCodeAt(i);
    switch (ch) {
      case DOT:
        if (lastDot === i - 1) throw new InvalidHostError(raw, 'two dots in a row');
        lastDot = i;
        break;
      case COLON:
        if (state === 'usual') {
          hostEnd = i;
          state = 'rest';
        }
        break;
      case OPEN_BRACKET:
        if (i === 0) state = 'literal';
        break;
      case CLOSE_BRACKET:
        if (state === 'literal') {
          hostEnd = i + 1;
          state = 'rest';
        }
        break;
      case NUL:
        throw new InvalidHostError(raw, 'a NUL byte');
      case SLASH:
        throw new InvalidHostError(raw, 'a slash');
      default:
        if (ch <= 0x20 || ch === 0x7f) throw new InvalidHostError(raw, 'a space or control character');
    }
  }
  if (lastDot === hostEnd - 1) hostEnd--;
  if (hostEnd === 0) throw new InvalidHostError(raw, 'no host name');
  // nginx lowercases ASCII only (ngx_strlow); toLowerCase would also fold latin1 letters.
  return raw.slice(0, hostEnd).replace(ASCII_UPPER, (letters) => letters.toLowerCase());
}

// Lowercase, no port, no trailing dot, no IPv6 brackets: nothing to change.
const PLAIN_HOST = /^[a-z0-9-]+(\.[a-z0-9-]+)*$/;
const ASCII_UPPER = /[A-Z]+/g;
const DOT = 0x2e;
const COLON = 0x3a;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const NUL = 0x00;
const SLASH = 0x2f;
