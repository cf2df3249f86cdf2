import type { OutgoingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { cacheKey, requestKey, type RequestLike } from '@sitecache/cache-key';
import { resolveConfig, type SitecacheConfig, type SitecacheConfigInput } from '@sitecache/config';
import { createHashRing, GZIP_FLAG, memcachedExptime, staleKeyConfig, type HashRing } from '@sitecache/nginx-model';
import { MemcacheClient } from 'memcache-client';
import { CacheStoreOptionError, PageAddressError, PurgeCountError, UnsupportedServerError } from './errors.js';
import { MetricsRecorder, type PageCacheMetrics } from './metrics.js';
import { PageGzip } from './page-gzip.js';
import { pageTtl, type SkipReason } from './policy.js';
import { appendCommands, entryKey, entryKeysToRead, entryText, generationKey, readEntry, tagHash, tagMarkKey } from './tag-index.js';
import { checkTags, MAX_TAGS_PER_PAGE, tagProblem } from './tags.js';
import { WarningLog, type PageStoreLogger } from './warnings.js';

export type { PageStoreLogger } from './warnings.js';

/** A page: its absolute URL (`https://www.example.com/a?b`) or the request that asked for it. */
export type PageAddress = string | RequestLike;

export interface PageStoreOptions {
  /** How long to wait for a TCP connection to a memcached server, in ms. Default 100. */
  connectTimeoutMs?: number;
  /** How long one memcached command may take before it counts as failed, in ms. Default 250. */
  commandTimeoutMs?: number;
  /** How long a server that failed is left alone before one command probes it again, in ms. Default 1000. */
  retryIntervalMs?: number;
  /** memcached's item size limit (its `-I`): larger pages are skipped as "too-large". Default 1048576. */
  maxItemBytes?: number;
  /**
   * Bytes of pages being written to one server at once, as stored (after gzip; a stale copy counts
   * on its own server); past this a put is skipped as "busy", never queued. A page larger than this
   * goes only when nothing else is being written there. Default 8388608 (8 MiB).
   */
  maxQueuedBytesPerServer?: number;
  /**
   * Commands in flight per server, a bound besides the bytes for pages too small to reach it;
   * past this a write is skipped as "busy", never queued. Default 1024.
   */
  maxPendingPerServer?: number;
  /** TCP connections kept per server for writing pages (one more carries the render lock and purge markers). Default 2. */
  connectionsPerServer?: number;
  /** zlib level for pages stored gzip (config.gzip): 1 is nginx's own gzip_comp_level default, a third of level 6's CPU. Default 1. */
  gzipLevel?: number;
  /** Receives the rate-limited warnings. Default `console`. */
  logger?: PageStoreLogger;
  /** The shortest time between two warnings about one server, or about one error of the middleware, in ms. Default 10000. */
  logIntervalMs?: number;
  /** How long `close()` waits for writes in flight before it shuts the connections, in ms. Default 2000. */
  closeTimeoutMs?: number;
}

export interface PutOptions {
  /** Seconds the page lives, over anything the response's headers say. */
  ttl?: number;
  /**
   * The response's headers (as `res.getHeaders()` returns them): its Cache-Control s-maxage, else
   * max-age, else what its Expires leaves after its Date (or now), else `config.ttl` is the TTL.
   */
  headers?: OutgoingHttpHeaders;
  /**
   * What the page shows (`article:42`, `home`): a purge by any of them (`purgeTags`) removes it.
   * Printable ASCII without spaces, at most 128 characters each, at most 64: otherwise the page is
   * not stored (reason "tags").
   */
  tags?: readonly string[];
}

/** What became of one `put`. */
export type PutResult =
  | {
      readonly stored: true;
      readonly key: string;
      readonly server: string;
      readonly bytes: number;
      readonly ttl: number;
      /** With `config.grace`: whether the stale copy (`ttl + grace` seconds) was stored too. */
      readonly stale?: boolean;
    }
  | { readonly stored: false; readonly key: string; readonly server: string; readonly reason: SkipReason };

/** A page as memcached holds it. */
export interface StoredPage {
  readonly key: string;
  readonly server: string;
  /** The stored bytes: gzip when `gzip` is true. */
  readonly body: Buffer;
  /** The value carries the gzip flag bit nginx's memcached_gzip_flag names. */
  readonly gzip: boolean;
}

/** How `purge` removes a page. */
export interface PurgeOptions {
  /**
   * Remove the fresh copy only and keep the stale one (`config.grace`): the next visitor's request
   * renders the page once while the others are answered with the stale copy. Default false: both go.
   */
  soft?: boolean;
}

/** What became of one page in a purge. */
export interface PurgedPage {
  readonly url: string;
  readonly key: string;
  readonly server: string;
  /** `purged` when a copy was deleted, `not-cached` when there was none, `failed` when a command failed. */
  readonly result: 'purged' | 'not-cached' | 'failed';
  /** Why it failed, when it did. */
  readonly error?: string;
}

/** What became of one page a purge by tag found in the index. */
export interface PurgedKey {
  /** The page's key (the index holds keys, not URLs). */
  readonly key: string;
  /** The server that held it, where nginx reads the key. */
  readonly server: string;
  readonly result: 'purged' | 'not-cached' | 'failed';
  readonly error?: string;
}

/** One server's part of a purge by tag. */
export interface TagPurgeServer {
  readonly server: string;
  /** Pages deleted from this server (a fresh or stale copy was there). */
  readonly purged: number;
  /** Pages the index named that were already gone (expired, evicted or purged). */
  readonly notCached: number;
  /** Pages whose purge failed, plus 1 when the server's marker or index could not be written or read. */
  readonly failed: number;
  /** Why the server's part failed, when it did. */
  readonly error?: string;
}

/** What a purge by tag did. */
export interface TagPurge {
  readonly tags: readonly string[];
  /** Pages deleted, over every server. */
  readonly purged: number;
  /** Each server of `config.memcached`, in its order. */
  readonly servers: readonly TagPurgeServer[];
  /** Each page the index named. */
  readonly pages: readonly PurgedKey[];
}

/** The outcome of a command sent to every server. */
export interface ServerResult {
  readonly server: string;
  readonly ok: boolean;
  readonly error?: string;
}

/** One server's own counters, from its `stats` command. */
export interface ServerStats {
  readonly server: string;
  /** False when the server did not answer; the counters are then 0. */
  readonly up: boolean;
  readonly hits: number;
  readonly misses: number;
  readonly items: number;
  readonly evictions: number;
  readonly bytes: number;
  readonly error?: string;
}

/** Writes pages where nginx reads them, and removes them. */
export interface PageStore {
  /** The config it writes for, validated, defaults filled in. */
  readonly config: SitecacheConfig;
  /** Counters of stored and skipped pages and memcached errors. */
  readonly metrics: PageCacheMetrics;
  /** The memcached key nginx looks the page up under. @throws PageAddressError, InvalidHostError */
  keyFor(page: PageAddress): string;
  /** The server nginx reads `key` from. */
  serverFor(key: string): string;
  /**
   * Stores the page body for nginx to serve. Never rejects because of memcached: a page that
   * cannot be stored now resolves with `stored: false` and a reason.
   * @throws (rejects) PageAddressError, InvalidHostError, CacheStoreOptionError for bad input.
   */
  put(page: PageAddress, body: string | Uint8Array, options?: PutOptions): Promise<PutResult>;
  /**
   * The page as stored (with `stale`, its stale copy), or undefined on a miss or when memcached
   * cannot answer in time.
   */
  get(page: PageAddress, options?: { stale?: boolean }): Promise<StoredPage | undefined>;
  /**
   * Deletes pages, and their stale copies unless `soft`. First it writes each page's purge marker,
   * so that a render that began before the purge is never stored after it. A path ("/a?b") names
   * that page under every host in `config.hosts`; an absolute URL names one page.
   * @throws (rejects) PageAddressError, InvalidHostError for a bad address, CacheStoreOptionError
   * for a `soft` that is neither true nor false.
   */
  purge(pages: PageAddress | Iterable<PageAddress>, options?: PurgeOptions): Promise<PurgedPage[]>;
  /**
   * Deletes every page stored with any of `tags` (and its stale copy unless `soft`), on every
   * server, and a render that began before the purge is never stored after it, tagged as it may be.
   * @throws (rejects) PageTagError for a tag that cannot be one, or no tag; CacheStoreOptionError
   * for a `soft` that is neither true nor false.
   */
  purgeTags(tags: string | Iterable<string>, options?: PurgeOptions): Promise<TagPurge>;
  /** Empties every server of `config.memcached` (memcached's flush_all): every site sharing them too. */
  purgeAll(): Promise<ServerResult[]>;
  /** Each server's hits, misses, items, evictions and bytes. */
  stats(): Promise<ServerStats[]>;
  /**
   * Stops taking puts (later ones resolve with reason "closed"), waits up to `closeTimeoutMs` for
   * the puts in flight, then closes the connections; a put memcached has not answered by then
   * resolves with reason "closed".
   */
  close(): Promise<void>;
}

/**
 * A page's purge marker as a render saw it when it was admitted: a put compares it with the marker
 * after writing, and takes back what it wrote when they differ (see `MemcachedPageStore.write`).
 */
export interface PurgeMark {
  /** The marker's value then; null when the page had none. */
  readonly value: string | null;
  /** When it was read (ms): a mark older than the marker's life proves nothing. */
  readonly readAt: number;
  /**
   * The server's count of purges by tag then (null: none yet, or unread): a tag marker of the
   * page written with a higher count was written by a purge after the render began.
   */
  readonly generation?: number | null;
  /** The server's flush token then (null: never flushed by purgeAll, or evicted). */
  readonly flushed?: string | null;
}

/**
 * A claim that could not read the purge marker, and why (`memcached-error`, `server-down`,
 * `closed`): its render is not stored, with that reason. A put that read the marker only at its
 * own start would find a purge made during the render already there, before and after its set
 * alike, and store the page that purge removed.
 */
export interface UnreadMark {
  readonly unread: SkipReason;
}

/** What `claim` found on the page's server. */
export interface Claim {
  /** `taken`: this process renders; `held`: another does; `unknown`: memcached could not say (render). */
  readonly lock: 'taken' | 'held' | 'unknown';
  /** The purge marker then, or why it could not be read (the render then renders, but is not stored). */
  readonly mark: PurgeMark | UnreadMark;
}

/** What the middleware needs of its store besides PageStore: only a store made by createPageStore has it. */
export interface PageStoreInternals {
  readonly metrics: MetricsRecorder;
  /** The store's logger, rate-limited by its logIntervalMs. */
  readonly warnings: WarningLog;
  /**
   * Takes the page's render lock (an `add`, when `lock`) and reads its purge marker, both on the
   * page's server and in parallel: one round trip before a render. Never rejects.
   */
  claim(key: string, lock: boolean): Promise<Claim>;
  /**
   * Polls the page's server until the page is stored (resolves it), its render lock is gone
   * without a page (`released`: the renderer did not store it), or `waitMs` passed (undefined).
   */
  awaitPage(page: PageAddress, waitMs: number): Promise<StoredPage | 'released' | undefined>;
  /** Deletes the page's render lock. Never rejects. */
  release(key: string): Promise<void>;
  /**
   * `put`, checked against the purge marker as the render's claim saw it (undefined: no claim, a
   * plain put); a claim that could not read the marker is not stored (see UnreadMark).
   */
  putClaimed(page: PageAddress, body: string | Uint8Array, options: PutOptions, mark: PurgeMark | UnreadMark | undefined): Promise<PutResult>;
}

/** The internals of a store made by createPageStore (or of an object made from one), else undefined. */
export function internalsOf(store: PageStore): PageStoreInternals | undefined {
  const internals = store as unknown as Partial<PageStoreInternals>;
  return typeof internals.metrics?.recordSkipped === 'function' && typeof internals.warnings?.warn === 'function' && typeof internals.claim === 'function'
    ? (internals as PageStoreInternals)
    : undefined;
}

/** Warnings of one kind are logged at most once per this many ms, unless `logIntervalMs` says otherwise. */
export const DEFAULT_LOG_INTERVAL_MS = 10_000;

const DEFAULTS = {
  connectTimeoutMs: 100,
  commandTimeoutMs: 250,
  retryIntervalMs: 1000,
  maxItemBytes: 1024 * 1024,
  maxQueuedBytesPerServer: 8 * 1024 * 1024,
  maxPendingPerServer: 1024,
  connectionsPerServer: 2,
  gzipLevel: 1,
  logIntervalMs: DEFAULT_LOG_INTERVAL_MS,
  closeTimeoutMs: 2_000,
};

// memcache-client reads flag 8 as "Buffer", so its own get returns the bytes untouched; nginx
// ignores every bit but the gzip flag.
const BINARY_FLAG = 8;
// memcached stores a header, the key and the value's CRLF in the same item: measured on 1.6.
const ITEM_OVERHEAD = 64;
const PURGE_CONCURRENCY = 16;
/** Pages a purge by tag removes at once: one tag may name thousands. */
const TAG_PURGE_CONCURRENCY = 64;
/** Index entries read in one get: a purge reads 592 per tag per server, most of them missing. */
const INDEX_READ_BATCH = 100;
/** Tags whose md5 the store keeps, so a tag on every page (home) is hashed once. */
const TAG_HASH_CACHE = 10_000;
/**
 * The render lock and the purge marker sit beside the page: its key with a suffix (page keys are
 * bare md5 hex, so nginx never looks either up), on the page's own server, found by the page's
 * key rather than their own, so one server answers for the page, its lock and its marker.
 */
const LOCK_SUFFIX = '.lock';
const MARK_SUFFIX = '.purged';
/**
 * Each server's flush token: purgeAll writes a new one right after its flush_all, which empties the
 * purge markers along with the pages. A render reads it when it claims its page and a put before
 * and after its set, as it reads its page's marker: a token that changed, or vanished, since the
 * claim means a flush came in meanwhile and the page is not stored. Server-wide, not per keyPrefix:
 * a flush empties every site on the server.
 */
const FLUSH_KEY = 'sitecache:flushed';
/**
 * Seconds a purge marker outlives its purge, past `config.appTimeout`: a render is checked
 * against it when it is stored, so it must outlive any render that could still be stored; a put
 * whose claim is older than the marker lives, less this margin, is refused as "purged".
 */
const MARK_MARGIN = 60;
/** How often a request waiting for another process's render asks memcached for the page. */
const POLL_MS = 25;

/**
 * The writer: one memcache-client per server of `config.memcached` (the client does not shard),
 * each page sent to the server nginx's hash ring picks for its key.
 * @param config sitecache.config.json's object as written, or what `loadConfig`/`parseConfig` returned.
 * @throws ConfigError naming a bad config field, CacheStoreOptionError for a bad option,
 * UnsupportedServerError for a unix socket or IPv6 server, which memcache-client 1.0.5 cannot connect to.
 */
export function createPageStore(config: SitecacheConfigInput, options: PageStoreOptions = {}): PageStore {
  return new MemcachedPageStore(resolveConfig(config), resolveOptions(options));
}

type ResolvedOptions = typeof DEFAULTS & { logger: PageStoreLogger };

function resolveOptions(options: PageStoreOptions): ResolvedOptions {
  const resolved = { ...DEFAULTS, logger: console as PageStoreLogger };
  for (const [name, value] of Object.entries(options)) {
    if (value === undefined) continue;
    if (!(name in DEFAULTS) && name !== 'logger') {
      throw new CacheStoreOptionError(name, `one of ${[...Object.keys(DEFAULTS), 'logger'].join(', ')}`, name);
    }
    (resolved as Record<string, unknown>)[name] = value;
  }
  const positive = (name: keyof typeof DEFAULTS, min = 1): void => {
    const value = resolved[name];
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
      throw new CacheStoreOptionError(name, `a whole number, at least ${min}`, value);
    }
  };
  positive('connectTimeoutMs');
  positive('commandTimeoutMs');
  positive('retryIntervalMs');
  positive('maxItemBytes', 1024);
  positive('maxQueuedBytesPerServer');
  positive('maxPendingPerServer');
  positive('connectionsPerServer');
  positive('logIntervalMs');
  positive('closeTimeoutMs', 0);
  if (!Number.isInteger(resolved.gzipLevel) || resolved.gzipLevel < 1 || resolved.gzipLevel > 9) {
    throw new CacheStoreOptionError('gzipLevel', 'a zlib level from 1 to 9', resolved.gzipLevel);
  }
  if (typeof resolved.logger?.warn !== 'function') throw new CacheStoreOptionError('logger', 'an object with a warn(message) method', resolved.logger);
  return resolved;
}

type Outcome<T> = { ok: true; value: T } | { ok: false; reason: SkipReason; error?: Error };

/** One memcached server: its client, its in-flight count and its circuit breaker. */
class ServerSlot {
  /** Carries the pages: sets of up to maxItemBytes. */
  readonly client: MemcacheClient;
  /**
   * One more connection for the small commands a request waits on (the render lock, the purge
   * marker, polling for a page), so they never queue behind a page being written.
   */
  readonly control: MemcacheClient;
  pending = 0;
  /** Bytes of the pages being written: what the runs in flight were given as `bytes`. */
  queuedBytes = 0;
  private downUntil = 0;
  private probing = false;
  private shut = false;
  /** How to end each command being waited for, which shutDown() does. */
  private readonly waits = new Set<(outcome: Outcome<never>) => void>();

  constructor(
    readonly address: string,
    private readonly options: ResolvedOptions,
    private readonly metrics: MetricsRecorder,
    private readonly warnings: WarningLog,
  ) {
    const client = (connections: number): MemcacheClient =>
      new MemcacheClient({
        server: { server: address, maxConnections: connections },
        connectTimeout: options.connectTimeoutMs,
        cmdTimeout: options.commandTimeoutMs,
        noDelay: true,
        logger: SILENT,
      });
    this.client = client(options.connectionsPerServer);
    this.control = client(1);
  }

  /**
   * Runs `command` (`commands` memcached commands one after the other) unless the server failed
   * recently or has too much in flight. Resolves by connect + `commands` x command timeout at the
   * latest, whatever the client does. On the `control` connection it is never refused as busy:
   * those commands are small, and as many as the requests waiting on them. `bytes` are those of
   * the page it writes, held until the client lets go of the command.
   */
  async run<T>(command: (client: MemcacheClient) => Promise<T>, guard = true, commands = 1, lane: 'pages' | 'control' = 'pages', bytes = 0): Promise<Outcome<T>> {
    if (this.shut) return { ok: false, reason: 'closed' };
    const now = Date.now();
    let probe = false;
    if (guard) {
      if (now < this.downUntil) return { ok: false, reason: 'server-down' };
      if (this.downUntil > 0) {
        // Half open: one command finds out whether the server is back; the rest stay away.
        if (this.probing) return { ok: false, reason: 'server-down' };
        this.probing = probe = true;
      }
      const full = this.pending >= this.options.maxPendingPerServer || (this.queuedBytes > 0 && this.queuedBytes + bytes > this.options.maxQueuedBytesPerServer);
      if (lane === 'pages' && full) {
        if (probe) this.probing = false;
        return { ok: false, reason: 'busy' };
      }
    }
    const counted = lane === 'pages';
    if (counted) this.pending++;
    this.queuedBytes += bytes;
    const attempt = (async () => command(lane === 'pages' ? this.client : this.control))().then(
      (value): Outcome<T> => ({ ok: true, value }),
      (error: Error): Outcome<T> => ({ ok: false, reason: 'memcached-error', error }),
    );
    // The in-flight count drops only when the client really lets go, not when we stop waiting.
    void attempt.finally(() => {
      if (counted) this.pending--;
      this.queuedBytes -= bytes;
    });
    let timer: NodeJS.Timeout | undefined;
    let end: (outcome: Outcome<T>) => void = () => undefined;
    const bound = this.options.connectTimeoutMs + commands * this.options.commandTimeoutMs + 50;
    const timeout = new Promise<Outcome<T>>((resolve) => {
      end = resolve;
      timer = setTimeout(
        () => resolve({ ok: false, reason: 'memcached-error', error: new Error(`no answer within ${bound} ms`) }),
        bound,
      );
    });
    this.waits.add(end);
    const outcome = await Promise.race([attempt, timeout]);
    this.waits.delete(end);
    clearTimeout(timer);
    if (probe) this.probing = false;
    // Commands the shutdown cut short are the store's doing, not the server's: no failure.
    if (!outcome.ok && this.shut) return { ok: false, reason: 'closed' };
    if (outcome.ok) {
      if (this.downUntil > 0) {
        this.downUntil = 0;
        this.warnings.say(`sitecache: memcached ${this.address} answers again; pages are stored there again`);
      }
    } else if (outcome.error && !isReply(outcome.error)) {
      this.fail(outcome.error);
    }
    return outcome;
  }

  /** A failure of the server itself (not a refusal it answered with): count, log, back off. */
  fail(error: Error): void {
    this.metrics.recordError(this.address);
    this.downUntil = Date.now() + this.options.retryIntervalMs;
    this.warnings.warn(
      `memcached ${this.address}`,
      `sitecache: memcached ${this.address} failed: ${error.message}; pages for it are not stored for now, users are not affected`,
    );
  }

  /** A command the server answered with an error (NOT_STORED, SERVER_ERROR ...): counted, no back-off. */
  refused(): void {
    this.metrics.recordError(this.address);
  }

  /** Closes the connections; commands still waiting resolve with reason "closed". */
  shutDown(): void {
    this.shut = true;
    for (const end of this.waits) end({ ok: false, reason: 'closed' });
    this.client.shutdown();
    this.control.shutdown();
  }
}

/** memcache-client marks errors that are the server's own reply with the reply's tokens. */
function isReply(error: Error): boolean {
  return Array.isArray((error as { cmdTokens?: unknown }).cmdTokens);
}

const SILENT = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

class MemcachedPageStore implements PageStore, PageStoreInternals {
  readonly metrics: MetricsRecorder;
  readonly warnings: WarningLog;
  private readonly ring: HashRing;
  private readonly slots = new Map<string, ServerSlot>();
  /** Puts not yet resolved: what close() waits for. */
  private readonly writing = new Set<Promise<PutResult>>();
  private closed = false;
  private closing: Promise<void> | undefined;
  /** Each server's count of purges by tag. */
  private readonly generationKey: string;
  private readonly tagHashes = new Map<string, string>();
  private readonly gzipper: PageGzip;

  constructor(
    readonly config: SitecacheConfig,
    private readonly options: ResolvedOptions,
  ) {
    for (const server of config.memcached) {
      if (server.startsWith('unix:')) throw new UnsupportedServerError(server, 'memcache-client 1.0.5 connects over TCP only; use "host:port"');
      if (server.startsWith('[')) throw new UnsupportedServerError(server, 'memcache-client 1.0.5 cannot parse an IPv6 address; use an IPv4 address or a host name');
    }
    this.ring = createHashRing(config.memcached);
    this.generationKey = generationKey(config.keyPrefix);
    this.metrics = new MetricsRecorder(config.memcached);
    this.warnings = new WarningLog(options.logger, options.logIntervalMs);
    for (const server of config.memcached) this.slots.set(server, new ServerSlot(server, options, this.metrics, this.warnings));
    this.gzipper = new PageGzip(options.gzipLevel, options.maxItemBytes);
  }

  keyFor(page: PageAddress): string {
    if (typeof page !== 'string') return requestKey(page, this.config);
    const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(page)?.[1]?.toLowerCase();
    if (scheme === undefined) throw new PageAddressError(page, `expected an absolute URL such as "${this.config.scheme}://${this.config.hosts[0]}/path"`);
    // nginx writes the configured scheme into every key, whatever the visitor used.
    if (scheme !== this.config.scheme) {
      throw new PageAddressError(page, `nginx keys every page with the configured scheme "${this.config.scheme}", so no ${scheme} URL is ever looked up`);
    }
    return cacheKey(page, this.config);
  }

  serverFor(key: string): string {
    return this.ring.serverFor(key);
  }

  /** The key of the page's stale copy: the page's template with the stale marker before the prefix. */
  private staleKeyFor(page: PageAddress): string {
    const config = staleKeyConfig(this.config);
    return typeof page === 'string' ? cacheKey(page, config) : requestKey(page, config);
  }

  /** The md5 part of a tag's keys, remembered for the tags stored most. */
  private hashOf(tag: string): string {
    let hash = this.tagHashes.get(tag);
    if (hash === undefined) {
      hash = tagHash(this.config.keyPrefix, tag);
      // Bounded: a site's tags may be many (one per article); forget them all rather than grow.
      if (this.tagHashes.size >= TAG_HASH_CACHE) this.tagHashes.clear();
      this.tagHashes.set(tag, hash);
    }
    return hash;
  }

  /** Seconds a purge marker lives. */
  private get markTtl(): number {
    return this.config.appTimeout + MARK_MARGIN;
  }

  put(page: PageAddress, body: string | Uint8Array, options: PutOptions = {}): Promise<PutResult> {
    return this.putClaimed(page, body, options, undefined);
  }

  putClaimed(page: PageAddress, body: string | Uint8Array, options: PutOptions, mark: PurgeMark | UnreadMark | undefined): Promise<PutResult> {
    let writing: Promise<PutResult>;
    try {
      // Everything the page's bytes are needed for happens now, before the first round trip; the
      // put holds on to neither `body` nor them after its sets went out (see PageBytes).
      const put = this.prepare(page, body, options, mark);
      writing = 'stored' in put ? Promise.resolve(put) : this.write(put);
    } catch (error) {
      writing = Promise.reject(error);
    }
    this.writing.add(writing);
    const done = (): void => void this.writing.delete(writing);
    writing.then(done, done);
    return writing;
  }

  /**
   * Checks a put and makes its bytes (gzipped when `config.gzip`), or the reason it is skipped.
   * @throws PageAddressError, InvalidHostError, CacheStoreOptionError for bad input.
   */
  private prepare(page: PageAddress, body: string | Uint8Array, options: PutOptions, mark: PurgeMark | UnreadMark | undefined): PreparedPut | PutResult {
    const key = this.keyFor(page);
    const server = this.ring.serverFor(key);
    const ttl = pageTtl(options.headers ? lowercaseNames(options.headers) : {}, this.config.ttl, options.ttl);
    if (!Number.isInteger(ttl) || ttl < 1) throw new CacheStoreOptionError('ttl', 'whole seconds, at least 1', ttl);
    const skip = (reason: SkipReason): PutResult => {
      this.metrics.recordSkipped(reason);
      return { stored: false, key, server, reason };
    };
    if (this.closed) return skip('closed');
    const tags = options.tags === undefined ? [] : [...new Set(options.tags)];
    if (tags.length > MAX_TAGS_PER_PAGE || tags.some((tag) => tagProblem(tag) !== undefined)) return skip('tags');
    // A string stays a string until it meets a socket or zlib: encoding it into a Buffer here would
    // cost a copy and a large allocation per page for nothing.
    const raw = typeof body === 'string' ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
    const rawLength = typeof raw === 'string' ? Buffer.byteLength(raw, 'utf8') : raw.length;
    const limit = this.options.maxItemBytes - key.length - ITEM_OVERHEAD;
    if (rawLength > (this.config.gzip ? this.options.maxItemBytes : limit)) return skip('too-large');
    // Not `purged`: no purge need have happened, and that count would send operators looking for
    // one. The page is kept out because memcached could not be asked when its render began.
    if (mark !== undefined && 'unread' in mark) return skip(mark.unread);
    const claimed = mark;
    if (claimed && Date.now() - claimed.readAt > (this.markTtl - MARK_MARGIN / 2) * 1000) {
      // The marker of a purge made early in this render may have expired by now.
      return skip('purged');
    }

    // Compressed in this thread: zlib's thread pool would compete for the same cores anyway, and
    // pages waiting for it pile up until the in-flight bound drops them (measured: a third of the
    // pages of a saturated miss path went unstored).
    let value: string | Buffer = raw;
    if (this.config.gzip) {
      const gzipped = this.gzipper.gzip(raw, limit);
      if (gzipped === undefined) return skip('too-large');
      value = gzipped;
    }
    const length = typeof value === 'string' ? rawLength : value.length;
    if (length > limit) return skip('too-large');
    const stale = this.config.grace > 0 ? this.staleKeyFor(page) : undefined;
    const slot = this.slots.get(server) as ServerSlot;
    const staleSlot = stale === undefined ? undefined : (this.slots.get(this.ring.serverFor(stale)) as ServerSlot);
    const hashes = tags.map((tag) => this.hashOf(tag));
    // The index entries go down the same connection as the set, just before it (see tag-index.ts):
    // once memcached answers the set, the page is in the index of every tag.
    let prelude = '';
    let stalePrelude = '';
    if (hashes.length > 0) {
      const now = Date.now();
      const life = ttl + this.config.grace;
      const text = entryText(key, stale);
      prelude = appendCommands(hashes.map((hash) => entryKey(hash, key, life, now)), text);
      // The stale copy's server indexes it too, so each server's index covers what it holds.
      if (stale !== undefined && staleSlot !== slot) stalePrelude = appendCommands(hashes.map((hash) => entryKey(hash, stale, life, now)), text);
    }
    return {
      key,
      server,
      slot,
      ttl,
      // The page's marker, the server's flush token and, when it is tagged, its tags' markers: one get.
      markKeys: [`${key}${MARK_SUFFIX}`, FLUSH_KEY, ...hashes.map(tagMarkKey)],
      claimed,
      bytes: new PageBytes(value, stale === undefined ? 1 : 2),
      length,
      flags: this.config.gzip ? BINARY_FLAG | GZIP_FLAG : BINARY_FLAG,
      prelude,
      stale: stale === undefined ? undefined : { key: stale, slot: staleSlot as ServerSlot, prelude: stalePrelude },
    };
  }

  /**
   * Reads the page's purge marker, writes the page and with grace its stale copy (each to the
   * server nginx reads that key from), then reads the marker again. A marker that changed since
   * the render's claim (for a plain put, since the first read) means a purge came in meanwhile:
   * before the set, nothing is written; after it, the copies just written are deleted.
   * A purge writes its marker before it deletes, so whichever order the two meet in, the page that
   * was rendered before the purge does not survive it. The marker holds a random token, not a
   * time, so no two clocks need to agree.
   */
  private async write(put: PreparedPut): Promise<PutResult> {
    const { key, server, slot, ttl, markKeys, claimed, length, flags, stale } = put;
    const skip = (reason: SkipReason): PutResult => {
      this.metrics.recordSkipped(reason);
      return { stored: false, key, server, reason };
    };
    const marksOf = (client: MemcacheClient): Promise<(string | null)[]> =>
      getBatched(client, markKeys).then((items) => markKeys.map((name) => (items[name] ? String(items[name].value) : null)));

    // One run on the page's server for the three commands (a timer and an in-flight slot per put,
    // not per command): the markers, the set, the markers again.
    const outcome = await slot.run(async (client) => {
      // Read before the set too, so that a purge made during the render (the usual case) leaves
      // nothing to take back, not even for the moment between the set and the read after it.
      const before = await marksOf(client);
      if (
        claimed &&
        (before[0] !== claimed.value ||
          (claimed.flushed !== undefined && before[1] !== claimed.flushed) ||
          before.slice(2).some((mark) => purgedSince(mark, claimed.generation)))
      ) {
        return { purged: 'before' as const };
      }
      const staleWrite = stale === undefined ? undefined : this.setRaw(stale.slot, stale.key, flags, ttl + this.config.grace, put.bytes, stale.prelude, length);
      await sendSet(client, key, flags, ttl, put.bytes, put.prelude);
      const staleStored = (await staleWrite)?.ok === true;
      const after = await marksOf(client);
      const changed = after.filter((mark, i) => mark !== before[i]);
      return changed.length === 0
        ? { purged: undefined, staleStored }
        : { purged: 'after' as const, soft: changed.every((mark) => mark?.endsWith(' soft') === true), staleStored };
    }, true, 3, 'pages', length);
    if (!outcome.ok) {
      if (outcome.error && isReply(outcome.error)) slot.refused();
      return skip(outcome.reason);
    }
    const result = outcome.value;
    if (result.purged === 'before') return skip('purged');
    if (result.purged === 'after') {
      // A purge came in during the write: take back what was written before it.
      await Promise.all([
        this.deleteKey(slot, key),
        stale !== undefined && result.staleStored && !result.soft ? this.deleteKey(stale.slot, stale.key) : undefined,
      ]);
      return skip('purged');
    }
    this.metrics.recordStored(length);
    return stale === undefined ? { stored: true, key, server, bytes: length, ttl } : { stored: true, key, server, bytes: length, ttl, stale: result.staleStored };
  }

  /** Writes one copy with a run of its own. */
  private async setRaw(slot: ServerSlot, key: string, flags: number, ttl: number, page: PageBytes, prelude: string, bytes: number): Promise<Outcome<void>> {
    let ran = false;
    const outcome = await slot.run(
      (client) => {
        ran = true;
        return sendSet(client, key, flags, ttl, page, prelude);
      },
      true,
      1,
      'pages',
      bytes,
    );
    // Refused before it ran (server down, busy): this set will not send the bytes, so it must not
    // keep them alive until the page's own put has heard back from memcached.
    if (!ran) page.sent();
    if (!outcome.ok && outcome.error && isReply(outcome.error)) slot.refused();
    return outcome;
  }

  /** Deletes `key`: true when it was there. */
  private deleteKey(slot: ServerSlot, key: string, guard = true): Promise<Outcome<boolean>> {
    return slot.run(
      (client) =>
        client.delete(key).then(
          () => true,
          (error: Error) => {
            if (error.message === 'NOT_FOUND') return false;
            throw error;
          },
        ),
      guard,
    );
  }

  async claim(key: string, lock: boolean): Promise<Claim> {
    const slot = this.slots.get(this.ring.serverFor(key)) as ServerSlot;
    if (this.closed) return { lock: 'unknown', mark: { unread: 'closed' } };
    const readAt = Date.now();
    // The add and the read go out together, on the control connection: one round trip.
    const outcome = await slot.run(
      (client) =>
        Promise.allSettled([
          lock
            ? // The lock lasts as long as nginx waits for a render (appTimeout), so one left by a
              // killed process expires by itself. memcached's clock ticks in whole seconds: a TTL
              // of n lives between n - 1 and n seconds, hence the + 1.
              sendBatched(client, `add ${key}${LOCK_SUFFIX} 0 ${memcachedExptime(this.config.appTimeout + 1)} 1\r\n1\r\n`).then(
                () => 'taken' as const,
                (error: Error) => {
                  if (error.message === 'NOT_STORED') return 'held' as const;
                  throw error;
                },
              )
            : Promise.resolve('unknown' as const),
          // The count of purges by tag comes with it, for the page's tags, known only once rendered.
          getBatched(client, [`${key}${MARK_SUFFIX}`, this.generationKey, FLUSH_KEY]).then((items): PurgeMark => {
            const mark = items[`${key}${MARK_SUFFIX}`];
            const generation = items[this.generationKey];
            const flushed = items[FLUSH_KEY];
            return {
              value: mark ? String(mark.value) : null,
              readAt,
              generation: generation ? Number.parseInt(String(generation.value), 10) : null,
              flushed: flushed ? String(flushed.value) : null,
            };
          }),
        ]),
      true,
      1,
      'control',
    );
    if (!outcome.ok) return { lock: 'unknown', mark: { unread: outcome.reason } };
    const [locked, mark] = outcome.value;
    // The run itself never fails (allSettled): a command that did is the server's failure all the
    // same, counted and backed off from as any other, or a dead server would go unseen.
    const failure = [locked, mark].find((result): result is PromiseRejectedResult => result.status === 'rejected');
    if (failure !== undefined && !this.closed) {
      const error = failure.reason instanceof Error ? failure.reason : new Error(String(failure.reason));
      if (isReply(error)) slot.refused();
      else slot.fail(error);
    }
    return { lock: locked.status === 'fulfilled' ? locked.value : 'unknown', mark: mark.status === 'fulfilled' ? mark.value : { unread: 'memcached-error' } };
  }

  async release(key: string): Promise<void> {
    if (this.closed) return;
    const slot = this.slots.get(this.ring.serverFor(key)) as ServerSlot;
    // noreply: nothing waits for the answer, so the client need not parse one.
    await slot.run((client) => sendBatched(client, `delete ${key}${LOCK_SUFFIX} noreply\r\n`, true).catch(() => undefined), true, 1, 'control');
  }

  async awaitPage(page: PageAddress, waitMs: number): Promise<StoredPage | 'released' | undefined> {
    const key = this.keyFor(page);
    const server = this.ring.serverFor(key);
    const slot = this.slots.get(server) as ServerSlot;
    const deadline = Date.now() + waitMs;
    const lockKey = `${key}${LOCK_SUFFIX}`;
    while (!this.closed) {
      // The page and its lock in one round trip: they live on the same server.
      const outcome = await slot.run((client) => client.get<Record<string, { value: Buffer | string; tokens: string[] }>>([key, lockKey]), true, 1, 'control');
      if (outcome.ok) {
        const found = outcome.value as unknown as Record<string, { value: Buffer | string; tokens: string[] } | undefined>;
        const item = found[key];
        if (item) return storedPage(key, server, item);
        if (!found[lockKey]) return 'released';
      }
      const left = deadline - Date.now();
      if (left <= 0) return undefined;
      await new Promise((resolve) => setTimeout(resolve, Math.min(POLL_MS, left)));
    }
    return undefined;
  }

  async get(page: PageAddress, options: { stale?: boolean } = {}): Promise<StoredPage | undefined> {
    // keyFor checks the address for both copies.
    const key = options.stale ? (this.keyFor(page), this.staleKeyFor(page)) : this.keyFor(page);
    const server = this.ring.serverFor(key);
    if (this.closed) return undefined;
    const outcome = await (this.slots.get(server) as ServerSlot).run((client) =>
      client.get<Buffer | string>(key).then((found) => found),
    );
    if (!outcome.ok || !outcome.value) return undefined;
    return storedPage(key, server, outcome.value);
  }

  async purge(pages: PageAddress | Iterable<PageAddress>, options: PurgeOptions = {}): Promise<PurgedPage[]> {
    const soft = softOf(options);
    const list = typeof pages === 'string' || !(Symbol.iterator in Object(pages)) ? [pages as PageAddress] : [...(pages as Iterable<PageAddress>)];
    const targets = list.flatMap((page) => this.expand(page)).map(({ staleKey, ...target }) => ({ target: { ...target, server: this.ring.serverFor(target.key) }, staleKey }));
    const results: PurgedPage[] = new Array(targets.length);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < targets.length) {
        const index = next++;
        const { target, staleKey } = targets[index] as (typeof targets)[number];
        results[index] = { ...target, ...(await this.purgeOne(target.key, staleKey, soft)) };
      }
    };
    await Promise.all(Array.from({ length: Math.min(PURGE_CONCURRENCY, targets.length) }, worker));
    return results;
  }

  /**
   * The marker first, then the deletes: a put that reads the marker after its write then either
   * sees the marker and takes its write back, or wrote before the marker and so before the delete.
   */
  private async purgeOne(key: string, stale: string | undefined, soft: boolean): Promise<Pick<PurgedPage, 'result' | 'error'>> {
    const slot = this.slots.get(this.ring.serverFor(key)) as ServerSlot;
    const token = `${Date.now().toString(36)}-${randomBytes(6).toString('hex')}${soft ? ' soft' : ''}`;
    const marked = await slot.run((client) => client.set(`${key}${MARK_SUFFIX}`, token, { lifetime: this.markTtl }), false);
    const [fresh, old] = await Promise.all([
      this.deleteKey(slot, key, false),
      soft || stale === undefined ? undefined : this.deleteKey(this.slots.get(this.ring.serverFor(stale)) as ServerSlot, stale, false),
    ]);
    const failed = [marked, fresh, old].find((outcome) => outcome !== undefined && !outcome.ok);
    if (failed && !failed.ok) return { result: 'failed', error: failed.error?.message ?? failed.reason };
    return { result: (fresh.ok && fresh.value) || (old?.ok && old.value) ? 'purged' : 'not-cached' };
  }

  /**
   * 1. On every server, the next count of purges by tag and each tag's marker at that count: a
   *    render whose claim read a lower count is not stored (see `write`), even one whose page is in
   *    no index yet. 2. Every server's index entries of the tags. 3. Each page found, as `purge`
   *    does it (its marker, then its copies). Markers before the index is read, so a page indexed
   *    after the read was written by a put that sees the markers.
   */
  async purgeTags(tags: string | Iterable<string>, options: PurgeOptions = {}): Promise<TagPurge> {
    const list = checkTags(tags);
    const soft = softOf(options);
    const hashes = list.map((tag) => this.hashOf(tag));
    const slots = [...this.slots.values()];
    const trouble = new Map<string, string>();
    const failure = (outcome: Outcome<unknown>): string => (outcome.ok ? '' : (outcome.error?.message ?? outcome.reason));
    await Promise.all(
      slots.map(async (slot) => {
        const marked = await slot.run(
          async (client) => {
            const generation = await this.nextGeneration(client, slot.address);
            await Promise.all(hashes.map((hash) => client.set(tagMarkKey(hash), `${generation}${soft ? ' soft' : ''}`, { lifetime: this.markTtl })));
          },
          false,
          4,
        );
        if (!marked.ok) trouble.set(slot.address, `marking the tags: ${failure(marked)}`);
      }),
    );
    const now = Date.now();
    const keys = hashes.flatMap((hash) => entryKeysToRead(hash, now));
    const found = new Map<string, string | undefined>();
    await Promise.all(
      slots.map(async (slot) => {
        const batches = Array.from({ length: Math.ceil(keys.length / INDEX_READ_BATCH) }, (_, i) => keys.slice(i * INDEX_READ_BATCH, (i + 1) * INDEX_READ_BATCH));
        const reads = await Promise.all(
          batches.map((batch) => slot.run((client) => client.get<Record<string, { value: string }>>(batch), false)),
        );
        for (const read of reads) {
          if (!read.ok) {
            trouble.set(slot.address, `reading the index: ${failure(read)}`);
            continue;
          }
          for (const item of Object.values(read.value as unknown as Record<string, { value: string }>)) readEntry(String(item.value), found);
        }
      }),
    );
    const targets = [...found];
    const pages: PurgedKey[] = new Array(targets.length);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < targets.length) {
        const index = next++;
        const [key, stale] = targets[index] as [string, string | undefined];
        pages[index] = { key, server: this.ring.serverFor(key), ...(await this.purgeOne(key, stale, soft)) };
      }
    };
    await Promise.all(Array.from({ length: Math.min(TAG_PURGE_CONCURRENCY, targets.length) }, worker));
    const servers = slots.map((slot): TagPurgeServer => {
      const mine = pages.filter((page) => page.server === slot.address);
      const count = (result: PurgedKey['result']): number => mine.filter((page) => page.result === result).length;
      const error = trouble.get(slot.address);
      return error === undefined
        ? { server: slot.address, purged: count('purged'), notCached: count('not-cached'), failed: count('failed') }
        : { server: slot.address, purged: count('purged'), notCached: count('not-cached'), failed: count('failed') + 1, error };
    });
    return { tags: list, purged: servers.reduce((sum, server) => sum + server.purged, 0), servers, pages };
  }

  /** The server's next count of purges by tag. */
  private async nextGeneration(client: MemcacheClient, server: string): Promise<number> {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        return Number(await client.incr(this.generationKey, 1));
      } catch (error) {
        if ((error as Error).message !== 'NOT_FOUND') throw error;
      }
      // None yet, or lost to a restart or an eviction: start from the clock in ms, above any count
      // the server handed out before (each purge adds 1), so no older claim reads as newer.
      await client.add(this.generationKey, String(Date.now()), { lifetime: 0 }).catch((error: Error) => {
        if (error.message !== 'NOT_STORED') throw error;
      });
    }
    throw new PurgeCountError(server);
  }

  async purgeAll(): Promise<ServerResult[]> {
    // Twice over every server, the second pass once the first is done everywhere. A put checks the
    // flush token on its page's server only, while its stale copy may go to another: that server's
    // flush can come before the stale copy is written and the page's server's after the put's last
    // read. Such a copy was written before the page's server's first flush, so every second flush
    // comes after it.
    const first = await Promise.all([...this.slots.values()].map((slot) => this.flush(slot)));
    const second = await Promise.all([...this.slots.values()].map((slot) => this.flush(slot)));
    return first.map((result, i) => (result.ok ? (second[i] as ServerResult) : result));
  }

  /** flush_all on one server, then a new flush token (see FLUSH_KEY). */
  private async flush(slot: ServerSlot): Promise<ServerResult> {
    const flushed = await slot.run((client) => client.cmd('flush_all'), false);
    if (!flushed.ok) return { server: slot.address, ok: false, error: flushed.error?.message ?? flushed.reason };
    // The flush emptied the purge markers: a new flush token is what tells a render in flight that
    // its page was purged. Until it is written, one round trip, a put whose claim found no token
    // and that both starts and ends in between can still store its page.
    const token = randomBytes(12).toString('hex');
    const marked = await slot.run((client) => sendBatched(client, `set ${FLUSH_KEY} 0 0 ${token.length}\r\n${token}\r\n`), false);
    return marked.ok
      ? { server: slot.address, ok: true }
      : {
          server: slot.address,
          ok: false,
          error: `flushed, but the flush token could not be written, so a render in flight may store its page (${marked.error?.message ?? marked.reason})`,
        };
  }

  async stats(): Promise<ServerStats[]> {
    return Promise.all(
      [...this.slots.values()].map(async (slot): Promise<ServerStats> => {
        const outcome = await slot.run((client) => client.cmd<{ STAT?: string[][] }>('stats'), false);
        if (!outcome.ok) {
          return { server: slot.address, up: false, hits: 0, misses: 0, items: 0, evictions: 0, bytes: 0, error: outcome.error?.message ?? outcome.reason };
        }
        const stat = new Map((outcome.value.STAT ?? []).map(([name = '', value = '0']) => [name, Number(value)]));
        return {
          server: slot.address,
          up: true,
          hits: stat.get('get_hits') ?? 0,
          misses: stat.get('get_misses') ?? 0,
          items: stat.get('curr_items') ?? 0,
          evictions: stat.get('evictions') ?? 0,
          bytes: stat.get('bytes') ?? 0,
        };
      }),
    );
  }

  close(): Promise<void> {
    this.closing ??= this.drain();
    return this.closing;
  }

  /** Lets the puts in flight finish, for closeTimeoutMs at most, then shuts the clients down. */
  private async drain(): Promise<void> {
    this.closed = true;
    if (this.writing.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      const bound = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, this.options.closeTimeoutMs);
      });
      await Promise.race([Promise.allSettled(this.writing), bound]);
      clearTimeout(timer);
    }
    const abandoned = this.writing.size;
    for (const slot of this.slots.values()) slot.shutDown();
    this.gzipper.close();
    if (abandoned > 0) {
      this.warnings.say(
        `sitecache: closed with ${abandoned} page${abandoned === 1 ? '' : 's'} still unanswered by memcached after ${this.options.closeTimeoutMs} ms (closeTimeoutMs); not stored`,
      );
    }
    // They resolve "closed" now that the clients are down.
    await Promise.allSettled(this.writing);
  }

  /** A path stands for that page under every host nginx serves; wildcard hosts cannot be spelled out. */
  private expand(page: PageAddress): { url: string; key: string; staleKey: string }[] {
    const target = (address: PageAddress, url: string): { url: string; key: string; staleKey: string } => ({
      url,
      key: this.keyFor(address),
      staleKey: this.staleKeyFor(address),
    });
    if (typeof page !== 'string') return [target(page, `${page.headers.host ?? ''}${page.url ?? ''}`)];
    if (!page.startsWith('/')) return [target(page, page)];
    const hosts = this.config.hosts.filter((host) => !host.startsWith('*.'));
    if (hosts.length === 0) throw new PageAddressError(page, 'config.hosts names only wildcard hosts: give absolute URLs');
    return hosts.map((host) => {
      const url = `${this.config.scheme}://${host}${page}`;
      return target(url, url);
    });
  }

}

const CRLF = Buffer.from('\r\n');

/** A put that passed its checks, with its bytes: what `write` sends. */
interface PreparedPut {
  readonly key: string;
  readonly server: string;
  /** The server's slot, and below the stale key's: the servers nginx reads each from. */
  readonly slot: ServerSlot;
  readonly ttl: number;
  readonly markKeys: string[];
  readonly claimed: PurgeMark | undefined;
  readonly bytes: PageBytes;
  /** Of the bytes. */
  readonly length: number;
  readonly flags: number;
  /** The index appends that go before the set. */
  readonly prelude: string;
  readonly stale: { readonly key: string; readonly slot: ServerSlot; readonly prelude: string } | undefined;
}

/**
 * A page's bytes, held until every set that sends them has handed them to its socket, and no
 * longer: a put then waits for memcached's answers (and reads the purge marker again) holding no
 * page. Bytes held past a few turns of the event loop move to V8's old generation, and what is
 * outside its heap (a Buffer's memory) is freed only by a full collection: kept to the end of the
 * put, the pages of the miss path made the app collect in full several times a second.
 */
class PageBytes {
  constructor(
    private bytes: string | Buffer | undefined,
    /** Sets still to send them. */
    private senders: number,
  ) {}

  get value(): string | Buffer | undefined {
    return this.bytes;
  }

  /** One set sent them, or will not: the last one lets go of them. */
  sent(): void {
    if (--this.senders <= 0) this.bytes = undefined;
  }
}

/**
 * Sockets corked in this turn of the event loop, uncorked together when its immediates run: the
 * commands of every request handled in one turn (claims, marker reads, sets, lock deletes) leave
 * in one write per connection rather than one each. Under load a turn carries many requests, and
 * a write is a system call, the largest share of a stored page's cost on the miss path.
 */
const corked = new Set<Socket>();
let flushing = false;

function flushCorked(): void {
  flushing = false;
  for (const socket of corked) socket.uncork();
  corked.clear();
}

/** Holds `socket`'s writes until the end of this turn of the event loop. */
function batched(socket: Socket): Socket {
  if (!corked.has(socket)) {
    socket.cork();
    corked.add(socket);
  }
  if (!flushing) {
    flushing = true;
    setImmediate(flushCorked);
  }
  return socket;
}

/** A command line (and its data) written with this turn's others; resolves with memcache-client's parse of the reply. */
function sendBatched<T = unknown>(client: MemcacheClient, command: string, noreply = false): Promise<T> {
  return client.send<T>((socket?: Socket) => {
    if (socket) batched(socket).write(command, 'latin1');
  }, noreply ? { noreply: true } : {});
}

/** `get` of several keys, written with this turn's other commands: the items found, by key. */
function getBatched(client: MemcacheClient, keys: readonly string[]): Promise<Record<string, { value: string } | undefined>> {
  return sendBatched<Record<string, { value: string } | undefined>>(client, `get ${keys.join(' ')}\r\n`);
}

/** A raw set: memcache-client's own set would choose the flags itself. */
async function sendSet(client: MemcacheClient, key: string, flags: number, ttl: number, page: PageBytes, prelude = ''): Promise<void> {
  let done = false;
  const sent = (): void => {
    if (done) return;
    done = true;
    page.sent();
  };
  try {
    await client.send((socket?: Socket) => {
      const value = page.value;
      if (!socket || value === undefined) return;
      const length = typeof value === 'string' ? Buffer.byteLength(value, 'utf8') : value.length;
      batched(socket);
      socket.cork();
      // Commands without replies that must run before the set (the index appends).
      if (prelude !== '') socket.write(prelude, 'latin1');
      socket.write(`set ${key} ${flags} ${memcachedExptime(ttl)} ${length}\r\n`, 'latin1');
      if (typeof value === 'string') socket.write(value, 'utf8');
      else socket.write(value);
      socket.write(CRLF);
      socket.uncork();
      // The socket holds the bytes until they are out.
      sent();
    });
  } finally {
    sent();
  }
}

/** `options.soft`, checked: a value such as "yes" would otherwise purge both copies without a word. */
function softOf(options: PurgeOptions): boolean {
  if (typeof options !== 'object' || options === null) throw new CacheStoreOptionError('options', 'an object such as { soft: true }', options);
  const soft: unknown = options.soft;
  if (soft !== undefined && typeof soft !== 'boolean') throw new CacheStoreOptionError('soft', 'true or false', soft);
  return soft === true;
}

/**
 * A tag marker written by a purge after a render's claim: its generation is higher than the one
 * the claim read (a claim that read none predates every marker there now).
 */
function purgedSince(mark: string | null, generation: number | null | undefined): boolean {
  if (mark === null) return false;
  if (generation === null || generation === undefined) return true;
  return Number.parseInt(mark, 10) > generation;
}

function storedPage(key: string, server: string, item: { value: Buffer | string; tokens: string[] }): StoredPage {
  const flags = Number(item.tokens[2]);
  return {
    key,
    server,
    body: Buffer.isBuffer(item.value) ? item.value : Buffer.from(String(item.value)),
    gzip: (flags & GZIP_FLAG) !== 0,
  };
}

/** The headers with lowercase names, as Node keeps a response's: put's caller may spell them otherwise. */
function lowercaseNames(headers: OutgoingHttpHeaders): OutgoingHttpHeaders {
  if (Object.keys(headers).every((name) => name === name.toLowerCase())) return headers;
  return Object.fromEntries(Object.entries(headers).map(([name, value]) => [name.toLowerCase(), value]));
}
