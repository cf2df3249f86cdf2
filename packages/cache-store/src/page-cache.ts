import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { requestKey, type RequestLike } from '@sitecache/cache-key';
import { resolveConfig, type SitecacheConfig, type SitecacheConfigInput } from '@sitecache/config';
import { servedContentType } from '@sitecache/nginx-model';
import { cachedResponse, type CachedResponse } from './cached-response.js';
import { CacheStoreOptionError } from './errors.js';
import type { MetricsRecorder, PageCacheMetrics } from './metrics.js';
import { createPageStore, internalsOf, type Claim, type PageStore, type PageStoreInternals, type PageStoreOptions } from './page-store.js';
import { bodyRefusal, type BodyFacts, headerDifferences, pageTtl, requestPolicy, responseRefusal, type RequestPolicy, type SkipReason } from './policy.js';
import { SingleFlight, type Flight, type FlightAnswer, type SharedResponse } from './single-flight.js';
import { pageTags, type PageTags, type TagCapture } from './tags.js';
import { describeError, type WarningLog } from './warnings.js';

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
  /**
   * Let concurrent misses for one page render once: in this process, and across processes through
   * a render lock in memcached, while the others answer with the stale copy. Default true.
   */
  singleFlight?: boolean;
  /**
   * How long a request waits for a concurrent render of its page (in this process, or in another
   * when there is no stale copy to answer with) before rendering itself, in ms. Default 1000.
   */
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

/** A miss this request renders: the in-process flight it leads, and its claim on the page in memcached. */
export interface Render {
  readonly flight: Flight | undefined;
  readonly claim: Claim | undefined;
}

/** What becomes of a miss: another render's answer to send, or a render of its own. */
export type MissOutcome = { readonly send: SharedResponse } | { readonly render: Render };

/**
 * How an adapter copies the body of a response it follows: the write/end wrappers of node:http,
 * Fastify's onSend.
 */
export interface BodyCopy {
  /** The body copied so far, or undefined when it outgrew the size guard. */
  body(): Buffer | undefined;
  /**
   * Whether the body went out where the adapter copies it: false for a Fastify reply hijacked or
   * sent as a payload onSend cannot copy, whose body would otherwise be stored empty.
   */
  seen(): boolean;
  /** Stops copying and lets go of what was copied: the page was refused, or the response is over. */
  stop(): void;
}

/** The head of a response the policy let through: the page is stored if its body passes too. */
interface AcceptedHead {
  readonly status: number;
  readonly headers: OutgoingHttpHeaders;
  /** Seconds the page lives, from the headers as they went out. */
  readonly ttl: number;
}

// Framing and connection headers belong to one response, never to a copy handed to another request;
// the page's tags are sitecache's, never a visitor's.
const UNSHARED_HEADERS = new Set(['connection', 'keep-alive', 'transfer-encoding', 'date', 'upgrade', 'trailer', 'surrogate-key']);

/** What `lookup` says when it failed: counted and logged already, the app answers. */
export const LOOKUP_FAILED = 'failed';

/** The middleware's workings, shared by the Connect-style and the Fastify adapters. */
export class PageCache {
  readonly config: SitecacheConfig;
  readonly store: PageStore;
  readonly metrics: PageCacheMetrics;
  readonly maxBodyBytes: number;
  private readonly recorder: MetricsRecorder;
  private readonly internals: PageStoreInternals;
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
    this.internals = internals;
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

  /**
   * Who renders this miss. In this process the first request for a page leads and the others
   * wait for its answer. The leader claims the page in memcached (an `add` of its render lock, and
   * a read of its purge marker, in one round trip): with the lock, or when memcached cannot say,
   * it renders. Without it, another process renders now, and the leader answers with the stale
   * copy (`STALE`) when there is one, else waits up to singleFlightWaitMs for the page (a `HIT`),
   * else renders too. Never throws: a lookup that fails makes this request render.
   */
  async miss(admission: Admission, req: { headers: IncomingHttpHeaders; httpVersion?: string }): Promise<MissOutcome> {
    const key = admission.key;
    if (key === undefined || admission.refusal !== undefined) return { render: { flight: undefined, claim: undefined } };
    if (!this.singleFlight) return { render: { flight: undefined, claim: await this.internals.claim(key, false) } };
    const waiting = this.flights.join(key, this.waitMs);
    if (waiting) {
      const answer = await waiting;
      const send = answer && (await this.answerFor(answer, admission, req));
      if (send) {
        this.recorder.recordJoin();
        return { send };
      }
    }
    const flight = this.flights.lead(key);
    // A follower whose leader gave up renders too: it reads the purge marker, but takes no lock.
    if (!flight) return { render: { flight, claim: await this.internals.claim(key, false) } };
    const [claim, stale] = await Promise.all([
      this.internals.claim(key, true),
      this.config.grace > 0 ? this.store.get(admission.page, { stale: true }) : undefined,
    ]);
    const staleAnswer: FlightAnswer | undefined = stale && { stored: stale, label: 'STALE' };
    if (claim.lock !== 'held') {
      // This process renders; the requests for the page that come meanwhile take the stale copy.
      if (staleAnswer) flight.meanwhile(staleAnswer);
      return { render: { flight, claim } };
    }
    const send = staleAnswer && (await this.answerFor(staleAnswer, admission, req));
    if (staleAnswer && send) {
      flight.meanwhile(staleAnswer);
      // The flight lasts while the other process renders, so later requests here take the stale
      // copy without another add.
      void this.internals.awaitPage(admission.page, this.waitMs).then(
        (page) => flight.settle(typeof page === 'object' ? { stored: page, label: 'HIT' } : undefined),
        () => flight.settle(undefined),
      );
      return { send };
    }
    const page = await this.internals.awaitPage(admission.page, this.waitMs);
    if (typeof page === 'object') {
      const answer: FlightAnswer = { stored: page, label: 'HIT' };
      const send = await this.answerFor(answer, admission, req);
      if (send) {
        flight.settle(answer);
        return { send };
      }
    }
    // The other render was refused, is slower than we wait, or its page cannot be read: render.
    return { render: { flight, claim } };
  }

  /** A follower's response: the leader's own, or a copy from memcached as nginx would send it. */
  private async answerFor(
    answer: FlightAnswer,
    admission: Admission,
    req: { headers: IncomingHttpHeaders; httpVersion?: string },
  ): Promise<SharedResponse | undefined> {
    if (!('stored' in answer)) return answer;
    try {
      const type = servedContentType(this.config.contentTypes, admission.page.url ?? '/');
      const { headers, body } = await cachedResponse(req, answer.stored, this.config, type, answer.label);
      return { status: 200, headers, body };
    } catch (error) {
      this.warn('reading a copy from memcached', error);
      return undefined;
    }
  }

  /**
   * Follows the response of a render this request leads, from its head to its end. As the head
   * goes out, applies what the status and headers decide: a page refused then is counted, its
   * copy stops, the requests waiting for it render at once and its render lock is let go, however
   * long the response goes on after (a stream of events, a long poll, a slow body). Once the
   * response is over, applies what only its end decides (aborted, too large, a tag given too
   * late), hands the page to the requests waiting for it and stores it off the response path.
   * Never throws.
   * @param headers the response's headers as a whole, read only for a head that went out without
   * writeHead (nothing in Node does that; the end of the response then decides it)
   */
  follow(admission: Admission, render: Render, res: ServerResponse, tags: TagCapture, copy: BodyCopy, headers = (): OutgoingHttpHeaders => res.getHeaders()): void {
    let decided = false;
    let over = false;
    let head: AcceptedHead | undefined;
    const decide = (status: number, sent: () => OutgoingHttpHeaders): void => {
      // A head sent after the client left (Node still calls writeHead then) was decided already as
      // "aborted": deciding again would count the page twice and delete the lock of whichever
      // request renders the page by then.
      if (decided || over) return;
      decided = true;
      head = this.acceptHead(admission, render, status, sent, tags);
      if (head) return;
      over = true;
      copy.stop();
    };
    onHead(res, decide);
    const end = (finished: boolean): void => {
      if (finished) decide(res.statusCode, headers);
      if (over) return;
      over = true;
      const body = copy.body();
      const seen = copy.seen();
      copy.stop();
      this.acceptBody(admission, render, head, { finished, body, seen }, tags);
    };
    // 'finish' comes before 'close' for a response that went out whole; 'close' alone means it did not.
    res.once('finish', () => end(true));
    res.once('close', () => end(false));
    // A client that left while the lookup or the render lock was awaited: 'close' has been and gone,
    // and the flight and the lock would otherwise wait for their timeouts.
    if (res.destroyed) end(false);
  }

  /**
   * What the status and headers decide, as the head goes out: the head to store the page with,
   * or undefined for a page refused (counted, its flight and render lock let go). Never throws.
   */
  private acceptHead(admission: Admission, render: Render, status: number, sent: () => OutgoingHttpHeaders, tags: TagCapture): AcceptedHead | undefined {
    try {
      const now = Date.now();
      const headers = sent();
      const servedType = servedContentType(this.config.contentTypes, admission.page.url ?? '/');
      const page = pageTags(tags.value(), tags.untaggable());
      let refusal = servedType === undefined ? 'invalid-request' : responseRefusal({ status, headers }, now, servedType, this.config);
      if (refusal === undefined && 'problem' in page) refusal = 'tags';
      if (refusal === undefined) return { status, headers, ttl: pageTtl(headers, this.config.ttl, admission.ttl, now) };
      this.refuseRender(admission, render, refusal, headers, page);
    } catch (error) {
      this.fail('reading the response', error);
      this.letGo(admission, render);
    }
    return undefined;
  }

  /**
   * What the end of the response decides, for a head that passed (none: it never went out, the
   * response was aborted); then the page goes to its followers and to memcached. Never throws.
   */
  private acceptBody(admission: Admission, render: Render, head: AcceptedHead | undefined, end: BodyFacts & { readonly body: Buffer | undefined }, tags: TagCapture): void {
    try {
      const page = pageTags(tags.value(), tags.untaggable());
      if (head === undefined) {
        this.refuseRender(admission, render, 'aborted', {}, page);
        return;
      }
      // A tag given after the head went out keeps the page out: it is never stored without it.
      const refusal = bodyRefusal(end) ?? ('problem' in page ? 'tags' : undefined);
      const body = end.body;
      if (refusal !== undefined || body === undefined) {
        this.refuseRender(admission, render, refusal ?? 'too-large', head.headers, page);
        return;
      }
      render.flight?.settle({ status: head.status, headers: shareable(head.headers), body });
      const tagList = 'tags' in page ? page.tags : [];
      // Arguments, not a closure: a closure made here would share this scope's variables with the
      // callback waiting for memcached, and keep the body alive until memcached answered.
      setImmediate(PageCache.storeAndRelease, this, admission, render, body, head.ttl, tagList);
    } catch (error) {
      this.fail('reading the response', error);
      this.letGo(admission, render);
    }
  }

  /** Counts a refused page and names what kept it out; the requests waiting for it render themselves. */
  private refuseRender(admission: Admission, render: Render, refusal: SkipReason, headers: OutgoingHttpHeaders, tags: PageTags): void {
    this.recorder.recordSkipped(refusal);
    if (refusal === 'headers') this.warnHeaders(headers);
    if (refusal === 'tags' && 'problem' in tags) {
      this.warnings.warn('tags', `sitecache: a page with tags sitecache cannot index is not stored (reason "tags"): ${tags.problem}`);
    }
    this.letGo(admission, render);
  }

  /** No page from this render: the requests waiting for it in this process and in others render themselves now. */
  private letGo(admission: Admission, render: Render): void {
    render.flight?.settle(undefined);
    this.releaseLock(admission, render);
  }

  private releaseLock(admission: Admission, render: Render): void {
    if (render.claim?.lock === 'taken' && admission.key !== undefined) void this.internals.release(admission.key);
  }

  /** Names the first header that kept a page out, once per header name per interval. */
  private warnHeaders(headers: OutgoingHttpHeaders): void {
    const [difference] = headerDifferences(headers, this.config);
    if (!difference) return;
    const wanted = difference.hit === undefined ? 'is not in config.hitHeaders' : `is "${difference.hit}" in config.hitHeaders`;
    this.warnings.warn(
      `headers: ${difference.name}`,
      `sitecache: pages with the header ${difference.name}: ${difference.miss} are not stored (reason "headers"): it ${wanted}, and nginx's hits carry only those`,
    );
  }

  /** Stores the page, then lets go of the render lock. */
  private static storeAndRelease(cache: PageCache, admission: Admission, render: Render, body: Buffer, ttl: number, tags: readonly string[]): void {
    void cache.put(admission.page, body, ttl, tags, render.claim).finally(() => cache.releaseLock(admission, render));
  }

  /**
   * Stores off the response path. put rejects for bad input only: anything else is sitecache's fault.
   * Not async: a suspended async function keeps its arguments, the body among them, until memcached answers.
   */
  private put(page: RequestLike, body: Buffer, ttl: number, tags: readonly string[], claim: Claim | undefined): Promise<void> {
    let writing: Promise<unknown>;
    try {
      writing = this.internals.putClaimed(page, body, tags.length === 0 ? { ttl } : { ttl, tags }, claim?.mark);
    } catch (error) {
      writing = Promise.reject(error);
    }
    return writing.then(
      () => undefined,
      (error: unknown) => this.fail('storing the page', error),
    );
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

/**
 * Calls `sent` as the head of `res` goes out: in writeHead, which Node calls itself for a response
 * written without it (its first write or end, flushHeaders), and Fastify with its headers. Called
 * once writeHead has returned, so the status and the headers are those sent, and an error in the
 * call (headers sent twice, say) is the app's as before.
 */
function onHead(res: ServerResponse, sent: (status: number, headers: () => OutgoingHttpHeaders) => void): void {
  const writeHead = res.writeHead as (...args: unknown[]) => ServerResponse;
  res.writeHead = function (this: ServerResponse, ...args: unknown[]) {
    const result = Reflect.apply(writeHead, this, args);
    sent(res.statusCode, () => sentHeaders(res, args));
    return result;
  } as ServerResponse['writeHead'];
}

/**
 * The headers writeHead sent: those set on the response, with those passed to it over them, as
 * Node merges them. Node shows the passed ones through getHeaders only when some were set before
 * (Fastify sets none on the raw response), so they are read from the call either way.
 */
function sentHeaders(res: ServerResponse, args: readonly unknown[]): OutgoingHttpHeaders {
  const headers: OutgoingHttpHeaders = { ...res.getHeaders() };
  const given = args[typeof args[1] === 'string' ? 2 : 1];
  if (Array.isArray(given)) {
    // The raw form, [name, value, name, value, ...]: a name passed replaces the response's own, and repeats add up.
    const passed: Record<string, string[]> = {};
    for (let i = 0; i + 1 < given.length; i += 2) {
      const name = String(given[i]).toLowerCase();
      const value: unknown = given[i + 1];
      (passed[name] ??= []).push(...(Array.isArray(value) ? value.map(String) : [String(value)]));
    }
    for (const [name, values] of Object.entries(passed)) headers[name] = values.length === 1 ? values[0] : values;
  } else if (given !== null && typeof given === 'object') {
    for (const [name, value] of Object.entries(given as OutgoingHttpHeaders)) headers[name.toLowerCase()] = value;
  }
  return headers;
}
