import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { CacheStoreOptionError, PageTagError } from './errors.js';
import { DEFAULT_LOG_INTERVAL_MS, internalsOf, type PageStore, type TagPurge } from './page-store.js';
import { describeError, WarningLog } from './warnings.js';

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
 * secret (compared in constant time), 405 for another method, 400 saying what it cannot use (a
 * body that is not JSON, `tags` that is not a list of tags, a `soft` that is not a boolean), 413
 * over 64 KiB, and 500 when the purge itself threw, logged through the store's logger (once per
 * logIntervalMs per message). Never rejects.
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
  // A store not made by createPageStore has no logger of ours: the console, at the default interval.
  const warnings = internalsOf(store)?.warnings ?? new WarningLog(console, DEFAULT_LOG_INTERVAL_MS);
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
      if (body === NOT_JSON) return answer(400, { error: 'the body is not JSON: expected {"tags": ["tag", ...], "soft"?: true|false}' });
      const request = (typeof body === 'object' && body !== null ? body : {}) as { tags?: unknown; soft?: unknown };
      const { tags, soft } = request;
      if (!Array.isArray(tags) || tags.length === 0) return answer(400, { error: '"tags" is not a list of tags: expected {"tags": ["tag", ...]}' });
      if (soft !== undefined && typeof soft !== 'boolean') return answer(400, { error: '"soft" is not true or false' });
      // A tag that is not a string, or cannot be one, is a PageTagError naming it (400 below).
      const result: TagPurge = await store.purgeTags(tags as string[], { soft: soft === true });
      const failed = result.servers.some((server) => server.failed > 0);
      return answer(failed ? 502 : 200, { tags: result.tags, purged: result.purged, servers: result.servers });
    } catch (error) {
      if (error instanceof PageTagError) return answer(400, { error: error.message });
      const message = describeError(error).split(secret).join('(the secret)');
      warnings.warn(`purge endpoint: ${message}`, `sitecache: the purge endpoint failed (${message}); it answered 500`);
      return answer(500, { error: 'the purge failed' });
    }
  };
}

const TOO_LARGE = Symbol('too large');
const NOT_JSON = Symbol('not JSON');

/** The body parsed, TOO_LARGE, or NOT_JSON (also when the request broke off). */
function readJson(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_BODY_BYTES) chunks.push(chunk);
    });
    req.on('error', () => resolve(NOT_JSON));
    req.on('end', () => {
      if (size > MAX_BODY_BYTES) return resolve(TOO_LARGE);
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch {
        resolve(NOT_JSON);
      }
    });
  });
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}
