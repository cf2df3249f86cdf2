import { createHmac, randomBytes, scryptSync, timingSafeEqual } from 'node:crypto';

/** The session cookie's name: also in sitecache.config.json's bypassCookies, so nginx and the cache skip its carriers. */
export const SESSION_COOKIE = 'sessionid';

export function hashPassword(password: string): string {
  const salt = randomBytes(16).toString('hex');
  return `${salt}:${scryptSync(password, salt, 32).toString('hex')}`;
}

export function checkPassword(password: string, stored: string): boolean {
  const [salt = '', hash = ''] = stored.split(':');
  const expected = Buffer.from(hash, 'hex');
  const actual = scryptSync(password, salt, 32);
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}

/** A signed session value: the user name and an HMAC, so a visitor cannot claim another name. */
export function signSession(username: string, secret: string): string {
  return `${encodeURIComponent(username)}.${createHmac('sha256', secret).update(username).digest('base64url')}`;
}

export function readSession(value: string | undefined, secret: string): string | undefined {
  const dot = value?.lastIndexOf('.') ?? -1;
  if (!value || dot < 0) return undefined;
  let username: string;
  try {
    username = decodeURIComponent(value.slice(0, dot));
  } catch {
    return undefined;
  }
  const expected = Buffer.from(signSession(username, secret));
  const actual = Buffer.from(value);
  return expected.length === actual.length && timingSafeEqual(expected, actual) ? username : undefined;
}

export function parseCookies(header: string | undefined): Map<string, string> {
  const cookies = new Map<string, string>();
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0) cookies.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  return cookies;
}
