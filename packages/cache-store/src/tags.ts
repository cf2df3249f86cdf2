import type { OutgoingHttpHeader, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { PageTagError } from './errors.js';

/** The response header a page names its tags in, space-separated (as Fastly's). Never sent to visitors. */
export const SURROGATE_KEY = 'surrogate-key';
/** The longest tag, in characters. */
export const MAX_TAG_LENGTH = 128;
/** The most tags one page may carry; a page with more is not stored (reason "tags"). */
export const MAX_TAGS_PER_PAGE = 64;

// Printable ASCII without space: what a header value can carry unescaped, split on spaces.
const TAG = /^[\x21-\x7e]+$/;
// Set on a response whose tagPage call was given a tag that cannot be written into the header.
const UNTAGGABLE = Symbol.for('sitecache.untaggable');

/** A response tagPage can tag: Node's ServerResponse, Express's, or Fastify's reply. */
export type TaggableResponse =
  | Pick<ServerResponse, 'getHeader' | 'setHeader'>
  | { getHeader(name: string): unknown; header(name: string, value: string): unknown; raw: object };

/** Why `tag` is not a tag, or undefined when it is one. */
export function tagProblem(tag: unknown): string | undefined {
  if (typeof tag !== 'string') return 'a tag is a string';
  if (tag.length === 0) return 'a tag is not empty';
  if (tag.length > MAX_TAG_LENGTH) return `a tag has at most ${MAX_TAG_LENGTH} characters`;
  if (!TAG.test(tag)) return 'a tag is printable ASCII without spaces';
  return undefined;
}

/**
 * The distinct tags a purge names, each checked.
 * @throws PageTagError naming the first tag at fault.
 */
export function checkTags(tags: string | Iterable<string>): string[] {
  // From JavaScript anything can come: a number or null would otherwise fail as "not iterable".
  if (typeof tags !== 'string' && (typeof tags !== 'object' || tags === null || !(Symbol.iterator in tags))) {
    throw new PageTagError(tags, 'expected a tag or a list of tags');
  }
  const list = [...new Set(typeof tags === 'string' ? [tags] : tags)];
  if (list.length === 0) throw PageTagError.none();
  for (const tag of list) {
    const problem = tagProblem(tag);
    if (problem) throw new PageTagError(tag, problem);
  }
  return list;
}

/**
 * Adds tags to the page's `Surrogate-Key` header, keeping those already there: one purge by any
 * of them (`store.purgeTags`) removes the page. The middleware takes the header off before the
 * response goes out. A tag that is not printable ASCII without spaces, or longer than
 * MAX_TAG_LENGTH, is not written, and the page is then not stored (reason "tags"): never stored
 * without a tag it showed; so too when the head of the response has gone out already. Never
 * throws, so a tag made from data cannot fail the page.
 * @returns the response, for chaining.
 */
export function tagPage<R extends TaggableResponse>(res: R, ...tags: string[]): R {
  const target = ('raw' in res ? res.raw : res) as Record<symbol, unknown> & { headersSent?: boolean };
  const valid = tags.filter((tag) => tagProblem(tag) === undefined);
  // Tags that come too late for the header would leave the page stored without them.
  if (valid.length < tags.length || target.headersSent === true) target[UNTAGGABLE] = true;
  if (valid.length === 0 || target.headersSent === true) return res;
  try {
    const current = headerText(res.getHeader(SURROGATE_KEY) as OutgoingHttpHeader | undefined);
    const value = current === '' ? valid.join(' ') : `${current} ${valid.join(' ')}`;
    if ('setHeader' in res && typeof res.setHeader === 'function') res.setHeader(SURROGATE_KEY, value);
    else (res as { header(name: string, value: string): unknown }).header(SURROGATE_KEY, value);
  } catch {
    target[UNTAGGABLE] = true;
  }
  return res;
}

/** The page's tags, or why they cannot be stored with it. */
export type PageTags = { readonly tags: readonly string[] } | { readonly problem: string };

/** Reads a Surrogate-Key value (as captured from the response): its distinct tags, checked. */
export function pageTags(value: string | undefined, untaggable: boolean): PageTags {
  if (untaggable) return { problem: 'tagPage was given a tag that is not printable ASCII without spaces, or too long' };
  if (value === undefined) return { tags: [] };
  const tags = [...new Set(value.split(/[ \t]+/).filter((tag) => tag !== ''))];
  for (const tag of tags) {
    const problem = tagProblem(tag);
    if (problem) return { problem: `${problem}: ${JSON.stringify(tag.slice(0, 40))}` };
  }
  if (tags.length > MAX_TAGS_PER_PAGE) return { problem: `${tags.length} tags, over ${MAX_TAGS_PER_PAGE}` };
  return { tags };
}

/** What the middleware captured of a response's tags as its head went out. */
export interface TagCapture {
  /** The Surrogate-Key value the app set, or undefined. */
  value(): string | undefined;
  /** tagPage was handed a tag it could not write. */
  untaggable(): boolean;
}

/**
 * Takes `Surrogate-Key` off the response as its head is written (writeHead, explicit or implicit,
 * which Fastify calls too with its headers), keeping the value for the store: visitors never see
 * the tags.
 */
export function captureSurrogateKey(res: ServerResponse): TagCapture {
  let captured: string | undefined;
  const writeHead = res.writeHead as (...args: unknown[]) => ServerResponse;
  const take = (value: OutgoingHttpHeader | undefined): void => {
    if (value === undefined) return;
    const text = headerText(value);
    captured = captured === undefined ? text : `${captured} ${text}`;
  };
  res.writeHead = function (this: ServerResponse, ...args: unknown[]) {
    take(res.getHeader(SURROGATE_KEY) as OutgoingHttpHeader | undefined);
    res.removeHeader(SURROGATE_KEY);
    const at = typeof args[1] === 'string' ? 2 : 1;
    const headers = args[at];
    if (headers && typeof headers === 'object' && !Array.isArray(headers)) {
      const kept: OutgoingHttpHeaders = {};
      for (const [name, value] of Object.entries(headers as OutgoingHttpHeaders)) {
        if (name.toLowerCase() === SURROGATE_KEY) take(value);
        else kept[name] = value;
      }
      args[at] = kept;
    } else if (Array.isArray(headers)) {
      // The raw form: [name, value, name, value, ...] or [[name, value], ...].
      const pairs: [string, OutgoingHttpHeader][] = Array.isArray(headers[0])
        ? (headers as [string, OutgoingHttpHeader][])
        : Array.from({ length: headers.length / 2 }, (_, i) => [String(headers[i * 2]), headers[i * 2 + 1] as OutgoingHttpHeader]);
      const kept = pairs.filter(([name, value]) => (name.toLowerCase() === SURROGATE_KEY ? (take(value), false) : true));
      args[at] = kept.flat();
    }
    res.writeHead = writeHead;
    return Reflect.apply(writeHead, this, args);
  } as ServerResponse['writeHead'];
  return {
    value: () => captured ?? optionalText(res.getHeader(SURROGATE_KEY) as OutgoingHttpHeader | undefined),
    untaggable: () => (res as unknown as Record<symbol, unknown>)[UNTAGGABLE] === true,
  };
}

function headerText(value: OutgoingHttpHeader | undefined): string {
  if (value === undefined) return '';
  return Array.isArray(value) ? value.join(' ') : String(value);
}

function optionalText(value: OutgoingHttpHeader | undefined): string | undefined {
  return value === undefined ? undefined : headerText(value);
}
