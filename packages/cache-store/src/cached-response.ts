import type { IncomingHttpHeaders } from 'node:http';
import { promisify } from 'node:util';
import { gunzip as gunzipCallback } from 'node:zlib';
import type { SitecacheConfig } from '@sitecache/config';
import { HTML_TYPE } from '@sitecache/nginx-model';
import type { StoredPage } from './page-store.js';

const gunzip = promisify(gunzipCallback);

/** A cached page as the generated nginx location sends it. */
export interface CachedResponse {
  readonly headers: Record<string, string>;
  readonly body: Buffer;
}

/**
 * The headers and body nginx's cached location sends for this stored page: its types{} and
 * charset lines, `config.hitHeaders`, the cache header (`HIT`, or `STALE` for the stale copy), and
 * for a gzip value either the bytes with Content-Encoding or (gunzip on) the inflated page for a
 * client that does not take gzip.
 * @throws when a gzip value does not inflate (the caller lets the app answer).
 */
export async function cachedResponse(
  req: { readonly headers: IncomingHttpHeaders; readonly httpVersion?: string },
  page: StoredPage,
  config: SitecacheConfig,
  /** The type the location of this URL serves (see servedContentType). */
  contentType = HTML_TYPE,
  label: 'HIT' | 'STALE' = 'HIT',
): Promise<CachedResponse> {
  const headers: Record<string, string> = { 'content-type': contentType };
  for (const [name, value] of Object.entries(config.hitHeaders)) headers[name.toLowerCase()] = value;
  let body = page.body;
  if (page.gzip && acceptsGzip(req)) {
    headers['content-encoding'] = 'gzip';
  } else if (page.gzip) {
    body = await gunzip(body);
  }
  // The gunzip filter takes ranges off: nginx cannot slice what it inflates on the fly.
  if (!page.gzip || headers['content-encoding'] === 'gzip') headers['accept-ranges'] = 'bytes';
  headers['content-length'] = String(body.length);
  if (config.gzip) headers.vary = 'Accept-Encoding';
  headers[config.cacheHeader.toLowerCase()] = label;
  return { headers, body };
}

/**
 * nginx's ngx_http_gzip_ok with its defaults (gzip_http_version 1.1, gzip_proxied off): HTTP/1.1
 * or later, no Via header, and gzip in Accept-Encoding with a quality above 0.
 */
export function acceptsGzip(req: { readonly headers: IncomingHttpHeaders; readonly httpVersion?: string }): boolean {
  if (req.httpVersion !== undefined && !(Number(req.httpVersion) >= 1.1)) return false;
  if (req.headers.via !== undefined) return false;
  const accept = req.headers['accept-encoding'];
  if (accept === undefined) return false;
  for (const entry of accept.split(',')) {
    const [coding = '', ...params] = entry.split(';');
    if (coding.trim().toLowerCase() !== 'gzip') continue;
    const q = params.map((p) => p.trim().toLowerCase()).find((p) => p.startsWith('q='));
    return q === undefined || Number(q.slice(2)) > 0;
  }
  return false;
}
