import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { CacheStoreOptionError, PageTagError } from './errors.js';
import type { PageStore, TagPurge } from './page-store.js';

/** The environment variable `purgeHandler` reads the shared secret from when config.purgeSecret is unset. */
export const PURGE_SECRET_ENV = 'SITECACHE_PURGE_SECRET';

// What config.purgeSecret must be too: long enough not to be guessed, and sendable in a header.
const SECRET = /^[\x21-\x7e]{16,1024}$/;
const MAX_BODY_BYTES = 64 * 1024;

export interface PurgeHandlerOptions {
  /** The shared secret callers send as `Authorization: Bearer <secret>`. Default: `config.purgeSecret`, else $SITECACHE_PURGE_SECRET. */
  secret?: string;
}

/**
 * An HTTP handler (node:http, Express, or Fastify after `reply.hijack()`) that purges by tag. It reads
 * the JSON body `{ "tags": [...], "soft"?: boolean }` (or Express's parsed `req.body`).
 */
export type PurgeHandler = (req: IncomingMessage & { body?: unknown }, res: ServerResponse) => Promise<void>;

/**
 * The purge endpoint for an app: `POST` with `Authorization: Bearer <secret>` and
 * `{"tags": ["article:42"], "soft": false}` answers 200 with `{ tags, purged, servers }` (how many pages
 * each server lost), or 502 with the same body when a server failed; 401 without the right
 * secret (compared in constant time), 405 for another method, 400 for a body or tag it cannot
 * use, 413 over 64 KiB. Never rejects.
 * @throws CacheStoreOptionError when there is no secret (none given, none in config.purgeSecret
 * or $SITECACHE_PURGE_SECRET), or it is shorter than 16 characters: an open purge endpoint is
 * refused at start, not discovered later.
 */
export function purgeHandler(store: PageStore, options: PurgeHandlerOptions = {}): PurgeHandler {
  const secret = options.secret ?? store.config.purgeSecret ?? process.env[PURGE_SECRET_ENV];
  if (typeof secret !== 'string' || !SECRET.test(secret)) {
    throw new CacheStoreOptionError(
      'secret',
      `a shared secret of 16 to 1024 printable characters without spaces, from the secret option, config.purgeSecret or $${PURGE_SECRET_ENV}`,
      secret === undefined ? undefined : '(a secret that does not qualify)',
    );
  }
  const expected = digest(secret);
  return async (req, res) => {
    const answer = (status: number, body: unknown, headers: Record<string, string> = {}): void => {
      if (res.headersSent) return void res.end();
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', ...headers });
      res.end(`${JSON.stringify(body)}\n`);
    };
    try {
      if (req.method !== 'POST') return answer(405, { error: 'use POST' }, { allow: 'POST' });
      const authorization = req.headers.authorization ?? '';
      const given = /^Bearer ([\x21-\x7e]+)$/i.exec(authorization)?.[1] ?? '';
      // Digests of equal length, compared in constant time: the answer says nothing of how close a guess was.
      if (!timingSafeEqual(digest(given), expected)) return answer(401, { error: 'a valid Authorization: Bearer <secret> is required' }, { 'www-authenticate': 'Bearer' });
      const body = req.body !== undefined ? req.body : await readJson(req);
      if (body === TOO_LARGE) return answer(413, { error: `the body is over ${MAX_BODY_BYTES} bytes` });
      const request = body as { tags?: unknown; soft?: unknown } | undefined;
      const tags = request?.tags;
      if (!Array.isArray(tags) || tags.length === 0 || (request?.soft !== undefined && typeof request.soft !== 'boolean')) {
        return answer(400, { error: 'expected a JSON body {"tags": ["tag", ...], "soft"?: true|false}' });
      }
      const result: TagPurge = await store.purgeTags(tags as string[], { soft: request?.soft === true });
      const failed = result.servers.some((server) => server.failed > 0);
      return answer(failed ? 502 : 200, { tags: result.tags, purged: result.purged, servers: result.servers });
    } catch (error) {
      if (error instanceof PageTagError) return answer(400, { error: error.message });
      return answer(500, { error: 'the purge failed' });
    }
  };
}

const TOO_LARGE = Symbol('too large');

function readJson(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_BODY_BYTES) chunks.push(chunk);
    });
    req.on('error', () => resolve(undefined));
    req.on('end', () => {
      if (size > MAX_BODY_BYTES) return resolve(TOO_LARGE);
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch {
        resolve(undefined);
      }
    });
  });
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}
