import { nginxUri } from './request.js';

/** The Content-Type of every hit outside the locations of `contentTypes`. */
export const HTML_TYPE = 'text/html; charset=utf-8';

/** A location the generated config looks pages up in, and the type its hits are served with. */
export interface CachedLocation {
  /** As nginx's `location` directive writes it: `/`, `/prefix/` or `= /exact/path`. */
  readonly location: string;
  readonly contentType: string;
}

/**
 * Every location the generated config serves hits from: `/` for HTML, then one per entry of
 * `contentTypes` (nginx location to Content-Type). The renderer writes these blocks and
 * `servedContentType` matches against them, so both sides route a URI the same way.
 */
export function cachedLocations(contentTypes: Readonly<Record<string, string>>): CachedLocation[] {
  return [
    { location: '/', contentType: HTML_TYPE },
    ...Object.entries(contentTypes).map(([location, contentType]) => ({ location, contentType })),
  ];
}

/**
 * Whether `text` is a location `cachedLocations` accepts: an exact (`= /path`) or prefix
 * (`/path/`) location other than `/`, normalized (no `//`, `.` or `..` segments), in characters
 * nginx holds unquoted.
 */
export function isCachedLocation(text: string): boolean {
  return LOCATION.test(text) && text !== '/' && !text.includes('//') && !/\/\.\.?(\/|$)/.test(text);
}

/**
 * The locations of `cachedLocations` in the order nginx tries them on a URI: exact locations first,
 * then prefixes, longest first, `/` last. The first that matches serves the URI: an exact location
 * when equal to it, a prefix when the URI starts with it (byte for byte, case included).
 */
export function locationsInMatchOrder(contentTypes: Readonly<Record<string, string>>): CachedLocation[] {
  const exact = ({ location }: CachedLocation): number => Number(location.startsWith('= '));
  return cachedLocations(contentTypes).sort((a, b) => exact(b) - exact(a) || b.location.length - a.location.length);
}

// The order of a config's locations, worked out once: servedContentType runs on every request. A
// config's contentTypes is frozen; an object that could still change is ordered at each call.
const matchOrders = new WeakMap<Readonly<Record<string, string>>, readonly CachedLocation[]>();

function matchOrderOf(contentTypes: Readonly<Record<string, string>>): readonly CachedLocation[] {
  if (!Object.isFrozen(contentTypes)) return locationsInMatchOrder(contentTypes);
  let order = matchOrders.get(contentTypes);
  if (order === undefined) {
    order = locationsInMatchOrder(contentTypes);
    matchOrders.set(contentTypes, order);
  }
  return order;
}

/**
 * The Content-Type nginx serves a hit for this raw request target with, as the generated config
 * routes it: the first of `locationsInMatchOrder` that matches `$uri` (`/` for HTML). Undefined
 * when there are typed locations and nginx would refuse the target.
 */
export function servedContentType(contentTypes: Readonly<Record<string, string>>, target: string): string | undefined {
  // The usual config has no typed locations: every page is HTML, and the miss path skips decoding.
  if (Object.keys(contentTypes).length === 0) return HTML_TYPE;
  const uri = nginxUri(target);
  if (uri === undefined) return undefined;
  const served = matchOrderOf(contentTypes).find(({ location }) =>
    location.startsWith('= ') ? uri === location.slice(2) : uri.startsWith(location),
  );
  return served?.contentType ?? HTML_TYPE;
}

// An exact (`= /path`) or prefix (`/path`) location: a path nginx can hold unquoted.
const LOCATION = /^(= )?\/[A-Za-z0-9._~!&'()*+,:@/-]*$/;
