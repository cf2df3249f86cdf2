import { InvalidHostError, InvalidUrlError } from './errors.js';
import { normalizeHost } from './host.js';

/** What nginx reads of a request to build `$host` and `$request_uri`. Node's IncomingMessage fits. */
export interface RequestLike {
  /** The raw request target, as Node's parser gives it (origin-form or absolute-form). */
  readonly url?: string | undefined;
  readonly headers: { readonly host?: string | undefined };
}

/** `$host` and `$request_uri` of one request, as nginx holds them. */
export interface NginxRequest {
  readonly host: string;
  readonly requestUri: string;
}

/**
 * `$host` and `$request_uri` for a request: an absolute-form target (`GET http://host/path`)
 * gives the host from the request line, as nginx does; otherwise the Host header does. The
 * request URI is the raw target, never decoded or normalized.
 * @throws InvalidHostError when the host is missing or one nginx refuses with 400,
 * InvalidUrlError for a target that is neither "/path" nor "scheme://host/path".
 */
export function nginxRequest(req: RequestLike): NginxRequest {
  const target = req.url ?? '/';
  if (target.charCodeAt(0) === SLASH) {
    const header = req.headers.host;
    if (header === undefined) throw new InvalidHostError('', 'the request has no Host header');
    return { host: normalizeHost(header), requestUri: target };
  }
  const match = ABSOLUTE_TARGET.exec(target);
  if (!match) throw new InvalidUrlError(target, 'a request target is "/path" or "scheme://host/path"');
  // nginx answers `GET http://host HTTP/1.1` as a request for "/".
  return { host: normalizeHost(match[1] ?? ''), requestUri: match[2] || '/' };
}

/**
 * The path nginx matches locations against (`$uri`) for a raw request target: the path alone,
 * percent-decoded, slashes merged, `.` and `..` resolved. Undefined for a target nginx refuses
 * (a bad escape, `..` above the root).
 */
export function nginxUri(target: string): string | undefined {
  let path: string;
  if (target.charCodeAt(0) === SLASH) {
    const query = target.indexOf('?');
    path = query < 0 ? target : target.slice(0, query);
  } else {
    const match = ABSOLUTE_TARGET.exec(target);
    if (!match) return undefined;
    const rest = match[2] ?? '';
    const query = rest.indexOf('?');
    path = (query < 0 ? rest : rest.slice(0, query)) || '/';
  }
  let decoded = '';
  for (let i = 0; i < path.length; i++) {
    const c = path[i] as string;
    if (c !== '%') {
      decoded += c;
      continue;
    }
    const hex = path.slice(i + 1, i + 3);
    if (!/^[0-9a-fA-F]{2}$/.test(hex)) return undefined;
    decoded += String.fromCharCode(parseInt(hex, 16));
    i += 2;
  }
  const segments: string[] = [];
  for (const segment of decoded.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') {
      if (segments.length === 0) return undefined;
      segments.pop();
      continue;
    }
    segments.push(segment);
  }
  const uri = `/${segments.join('/')}`;
  return uri !== '/' && /(^|\/)(\.\.?)?$/.test(decoded) ? `${uri}/` : uri;
}

const SLASH = 0x2f;
// nginx's request-line parser: letters for the scheme, then host[:port], then the URI from the
// first "/" or "?".
const ABSOLUTE_TARGET = /^[a-z]+:\/\/([^/?]*)(.*)$/is;
