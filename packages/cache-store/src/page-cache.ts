import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import { requestKey, type RequestLike } from '@sitecache/cache-key';
import { resolveConfig, type SitecacheConfig, type SitecacheConfigInput } from '@sitecache/config';
import { servedContentType } from '@sitecache/nginx-model';
import { cachedResponse, type CachedResponse } from './cached-response.js';
import { CacheStoreOptionError } from './errors.js';
import type { MetricsRecorder, PageCacheMetrics } from './metrics.js';
import { createPageStore, internalsOf, type PageStore, type PageStoreOptions } from './page-store.js';
import { pageTtl, requestPolicy, responseRefusal, type RequestPolicy, type SkipReason } from './policy.js';
import { SingleFlight, type Flight, type SharedResponse } from './single-flight.js';
import type { WarningLog } from './warnings.js';

/** A route's own rule: `false` opts it out of the cache, `{ ttl }` stores its pages for that many seconds. */
export type RouteRule = false | { readonly ttl: number };

export interface PageCacheOptions extends PageStoreOptions {
  /**
   * The store to write through, shared with other code; its own logger and logIntervalMs are used.
   * Default: a new `createPageStore(config, options)`.
   */
  store?: PageStore;
  /** Answer hits from memcached in the app, as nginx would (for development or without nginx). Default false. */
  serveFromCache?: boolean;
  /** Let concurrent misses for one page render once. Default true. */
  singleFlight?: boolean;
  /** How long a request waits for a concurrent render of its page before rendering itself, in ms. Default 1000. */
  singleFlightWaitMs?: number;
  /**
   * The rule for a request's route, or undefined for the defaults. Called once per request; a rule
   * that throws leaves the request to the app, counted as "internal-error".
   */
  route?: (req: IncomingMessage) => RouteRule | undefined;
}

/** What is known of a request before the app runs. */
export interface Admission {
  /** The request as the key sees it, frozen before any router rewrites req.url. */
  readonly page: RequestLike;
  readonly key: string | undefined;
  /** Why its page will not be stored, decided from the request alone. */
  readonly refusal: SkipReason | undefined;
  /** May a hit be answered from memcached (serveFromCache)? */
  readonly read: boolean;
  /** The route's TTL, when it set one. */
  readonly ttl: number | undefined;
}

/** The request as an adapter hands it over: Node's IncomingMessage, with Express's originalUrl if any. */
export type AdmittedRequest = IncomingMessage & { originalUrl?: string };

/** What a finished (or abandoned) response looked like. */
export interface FinishedResponse {
  readonly finished: boolean;
  readonly status: number;
  readonly headers: OutgoingHttpHeaders;
  /** The captured body, or undefined when it outgrew the size guard or could not be captured. */
  readonly body: Buffer | undefined;
}

// Framing and connection headers belong to one response, never to a copy handed to another request.
const UNSHARED_HEADERS = new Set(['connection', 'keep-alive', 'transfer-encoding', 'date', 'upgrade', 'trailer']);

/** What `lookup` says when it failed: counted and logged already, the app answers. */
export const LOOKUP_FAILED = 'failed';

/** The middleware's workings, shared by the Connect-style and the Fastify adapters. */
export class PageCache {
  readonly config: SitecacheConfig;
  readonly store: PageStore;
  readonly metrics: PageCacheMetrics;
  readonly maxBodyBytes: number;
  private readonly recorder: MetricsRecorder;
  private readonly policy: RequestPolicy;
  private readonly flights = new SingleFlight();
  private readonly serveFromCache: boolean;
  private readonly singleFlight: boolean;
  private readonly waitMs: number;
  private readonly route: PageCacheOptions['route'];
  private readonly warnings: WarningLog;

  /** @throws ConfigError naming a bad config field, CacheStoreOptionError for a bad option. */
  constructor(input: SitecacheConfigInput, options: PageCacheOptions = {}) {
    const config = resolveConfig(input);
    this.config = config;
    const { store, serveFromCache, singleFlight, singleFlightWaitMs, route, ...storeOptions } = options;
    this.store = store ?? createPageStore(config, storeOptions);
    const internals = internalsOf(this.store);
    if (!internals) throw new CacheStoreOptionError('store', 'a store made by createPageStore', store);
    if (this.store.config !== config && JSON.stringify(this.store.config) !== JSON.stringify(config)) {
      throw new CacheStoreOptionError('store', 'a store made from the same config', 'a store of another config');
    }
    this.recorder = internals.metrics;
    this.metrics = internals.metrics;
    this.warnings = internals.warnings;
    this.policy = requestPolicy(config);
    this.serveFromCache = bool('serveFromCache', serveFromCache, false);
    this.singleFlight = bool('singleFlight', singleFlight, true);
    this.waitMs = singleFlightWaitMs ?? 1000;
    if (!Number.isInteger(this.waitMs) || this.waitMs < 0) throw new CacheStoreOptionError('singleFlightWaitMs', 'a whole number of ms, 0 or more', this.waitMs);
    if (route !== undefined && typeof route !== 'function') throw new CacheStoreOptionError('route', 'a function of the request', route);
    this.route = route;
    this.maxBodyBytes = storeOptions.maxItemBytes ?? 1024 * 1024;
  }

  /**
   * Decides from the request alone what the cache may do for it. Never throws: when that fails
   * (the route option threw), the error is logged and the refusal is "internal-error", which the
   * adapter counts through `refuse` as it counts any other.
   */
  admit(req: AdmittedRequest, override?: RouteRule): Admission {
    const page: RequestLike = { url: req.originalUrl ?? req.url, headers: { host: req.headers.host } };
    const failed = (where: string, error: unknown): Admission => {
      this.warn(where, error);
      return { page, key: undefined, refusal: 'internal-error', read: false, ttl: undefined };
    };
    let rule: RouteRule | undefined;
    try {
      rule = override ?? this.routeRule(req);
    } catch (error) {
      return failed('the route option', error);
    }
    try {
      return this.decide(req, page, rule);
    } catch (error) {
      return failed('admitting the request', error);
    }
  }

  private decide(req: AdmittedRequest, page: RequestLike, rule: RouteRule | undefined): Admission {
    const facts = { method: req.method, url: page.url, headers: req.headers };
    let refusal = this.policy.refusal(facts);
    let read = this.serveFromCache && rule !== false && req.headers.range === undefined && this.policy.mayRead(facts);
    if (refusal === undefined && rule === false) refusal = 'route';
    let key: string | undefined;
    if (refusal === undefined || read) {
      try {
        key = requestKey(page, this.config);
      } catch {
        refusal ??= 'invalid-request';
        read = false;
      }
    }
    const ttl = rule === false || rule === undefined ? undefined : rule.ttl;
    return { page, key, refusal, read, ttl };
  }

  /**
   * The stored page as nginx would send it, or undefined (then the app answers), or LOOKUP_FAILED
   * when the lookup threw: counted as "internal-error" and logged, and the app answers a request
   * whose page is then not stored.
   */
  async lookup(
    admission: Admission,
    req: { headers: IncomingHttpHeaders; httpVersion?: string },
  ): Promise<CachedResponse | undefined | typeof LOOKUP_FAILED> {
    if (!admission.read) return undefined;
    try {
      const page = await this.store.get(admission.page);
      const response = page && (await cachedResponse(req, page, this.config, servedContentType(this.config.contentTypes, admission.page.url ?? '/')));
      this.recorder.recordLookup(response !== undefined);
      return response;
    } catch (error) {
      this.fail('the lookup', error);
      return LOOKUP_FAILED;
    }
  }

  /**
   * Counts a request sitecache failed on as "internal-error" and logs the error, each distinct
   * message at most once per the store's logIntervalMs. The app still answers. Never throws.
   */
  fail(where: string, error: unknown): void {
    this.recorder.recordSkipped('internal-error');
    this.warn(where, error);
  }

  /** Closes the store once the pages of responses that just finished have been handed to it. */
  async close(): Promise<void> {
    await new Promise((resolve) => setImmediate(resolve));
    await this.store.close();
  }

  /** Counts a refusal decided before the app ran. */
  refuse(reason: SkipReason): void {
    this.recorder.recordSkipped(reason);
  }

  /** The leader's response when a render of the same page is under way and shareable. */
  async join(admission: Admission): Promise<SharedResponse | undefined> {
    if (!this.singleFlight || admission.key === undefined || admission.refusal !== undefined) return undefined;
    const waiting = this.flights.join(admission.key, this.waitMs);
    const shared = waiting && (await waiting);
    if (shared) this.recorder.recordJoin();
    return shared;
  }

  /** Makes this request the leader for its page, unless another one leads already. */
  lead(admission: Admission): Flight | undefined {
    if (!this.singleFlight || admission.key === undefined || admission.refusal !== undefined) return undefined;
    return this.flights.lead(admission.key);
  }

  /**
   * After the response went out: applies the response policy, hands a shareable page to the
   * followers, and stores it off the response path. Never throws.
   */
  finish(admission: Admission, flight: Flight | undefined, response: FinishedResponse): void {
    let ttl: number;
    try {
      const now = Date.now();
      const servedType = servedContentType(this.config.contentTypes, admission.page.url ?? '/');
      let refusal: SkipReason | undefined;
      if (!response.finished) refusal = 'aborted';
      else if (servedType === undefined) refusal = 'invalid-request';
      else refusal = responseRefusal(response, now, servedType) ?? (response.body ? undefined : 'too-large');
      if (refusal !== undefined) {
        this.recorder.recordSkipped(refusal);
        flight?.settle(undefined);
        return;
      }
      ttl = pageTtl(response.headers, this.config.ttl, admission.ttl, now);
    } catch (error) {
      this.fail('reading the response', error);
      flight?.settle(undefined);
      return;
    }
    const body = response.body as Buffer;
    flight?.settle({ status: response.status, headers: shareable(response.headers), body });
    setImmediate(() => void this.put(admission.page, body, ttl));
  }

  /** Stores off the response path. put rejects for bad input only: anything else is sitecache's fault. */
  private async put(page: RequestLike, body: Buffer, ttl: number): Promise<void> {
    try {
      await this.store.put(page, body, { ttl });
    } catch (error) {
      this.fail('storing the page', error);
    }
  }

  private routeRule(req: IncomingMessage): RouteRule | undefined {
    if (!this.route) return undefined;
    const rule = this.route(req);
    if (rule === undefined || rule === false) return rule;
    if (typeof rule === 'object' && Number.isInteger(rule.ttl) && rule.ttl >= 1) return rule;
    throw new CacheStoreOptionError('route', 'a function returning false, { ttl } in whole seconds, or undefined', rule);
  }

  /** Logs a failure of sitecache itself, once per distinct message per interval. Never throws. */
  private warn(where: string, error: unknown): void {
    const message = describeError(error);
    this.warnings.warn(`error: ${message}`, `sitecache: ${where} failed (${message}); the app answered, the page is not stored`);
  }
}

function describeError(error: unknown): string {
  try {
    return error instanceof Error ? error.message : String(error);
  } catch {
    return 'an error that cannot be described';
  }
}

function shareable(headers: OutgoingHttpHeaders): OutgoingHttpHeaders {
  const copy: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined && !UNSHARED_HEADERS.has(name)) copy[name] = value;
  }
  return copy;
}

function bool(option: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw new CacheStoreOptionError(option, 'true or false', value);
  return value;
}
