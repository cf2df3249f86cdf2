/**
 * Request targets and Host headers that real clients send and that a URL library would quietly
 * normalize. Strings are latin1: one character per byte on the wire, as Node's parser hands them
 * to the app, so raw UTF-8 appears here as its bytes.
 */
export interface ParityCase {
  /** The request target exactly as written on the request line. */
  readonly target: string;
  /** The Host header exactly as written; absolute-form targets carry their own host. */
  readonly host: string;
}

export const SITE_HOSTS = ['www.example.com', 'example.com', '[::1]'];

const utf8 = (text: string): string => Buffer.from(text, 'utf8').toString('latin1');

const PATHS: readonly string[] = [
  '/',
  '/article/1',
  '/article/1/',
  '/Article/1',
  '/a%20b',
  '/caf%C3%A9',
  '/caf%c3%a9',
  utf8('/café'),
  utf8('/日本語/ページ'),
  utf8('/tag/jeux-vidéo?page=2'),
  '/a/./b',
  '/a/../b',
  '/./',
  '/a/b/..',
  '//double//slash',
  '///',
  '/a?',
  '/?',
  '/a?x=1',
  '/a?x=1&x=2',
  '/a?x=1&&y',
  '/a??',
  '/a?x=%20',
  '/a?x=%2F&y=%2f',
  utf8('/search?q=café'),
  '/a;jsessionid=1',
  '/a%2Fb',
  '/%7Euser',
  '/~user',
  '/a+b',
  '/a%2Bb',
  '/a%25',
  "/quote'and\"double",
  '/brackets[]{}',
  '/pipe|caret^',
  '/a*b(c)!$',
  '/index.html',
  '/feed.xml',
  '/style.css',
  '/a#fragment',
  `/long/${'x'.repeat(1000)}`,
  `/long?q=${'y'.repeat(4000)}`,
  `/long/${'z/'.repeat(4000)}`,
];

/** The Host header forms one configured name may arrive in. */
function hostForms(name: string): string[] {
  if (name.startsWith('[')) return [name, `${name}:8080`];
  return [name, name.toUpperCase(), `${name}:8080`, `${name}.`, `${name[0]?.toUpperCase()}${name.slice(1)}.:443`];
}

/** True for a target Node's HTTP parser refuses with 400 (any byte beyond ASCII, in any mode). */
export function nodeRefuses(target: string): boolean {
  return /[^\x00-\x7f]/.test(target);
}

/**
 * True for an absolute-form target with no path (`GET http://host?x`): nginx keys on its
 * $request_uri "?x" but forwards "/?x", so the app cannot see the form nginx keyed on.
 */
export function hasNoPath(target: string): boolean {
  return /^[a-z]+:\/\/[^/]*$/i.test(target.split('?')[0] ?? '');
}

export function parityCorpus(): ParityCase[] {
  const cases: ParityCase[] = [];
  for (const path of PATHS) {
    for (const host of hostForms('www.example.com')) cases.push({ target: path, host });
  }
  // Every path once more on the other names, as written and in absolute form.
  for (const path of PATHS) {
    cases.push({ target: path, host: 'example.com' });
    cases.push({ target: path, host: '[::1]:80' });
    cases.push({ target: `http://Example.COM${path}`, host: 'unrelated.test' });
  }
  const absolute: readonly string[] = [
    'http://www.example.com',
    'http://www.example.com?x=1',
    'http://WWW.EXAMPLE.COM:8080/a?b',
    'https://www.example.com./a',
    'HTTP://example.com/a',
    'http://[::1]/ipv6',
    'http://[::1]:8080/ipv6?x',
  ];
  for (const target of absolute) cases.push({ target, host: 'www.example.com' });
  cases.push(...queryCorpus());
  return cases;
}

/**
 * Queries naming parameters of the default ignoreParams in every position, and look-alikes that
 * must stay in the key: percent-encoded names, other case, `utm_` as a value, a whole
 * `utm_source=x` inside another value, a `#` in the query.
 */
const IGNORED_QUERIES: readonly string[] = [
  '?utm_source=x',
  '?fbclid=abc',
  '?gclid=1',
  '?dclid=1',
  '?msclkid=1',
  '?mc_cid=1&mc_eid=2',
  '?_ga=2.1.3',
  '?igshid=x',
  '?yclid=9',
  '?utm_source=newsletter&utm_medium=email&utm_campaign=dec',
  '?utm_source=x&fbclid=y',
  '?utm_=1',
  '?utm_source',
  '?utm_source=',
  '?fbclid',
  '?fbclid=',
  '?b=1&utm_source=x',
  '?utm_source=x&b=1',
  '?b=1&utm_source=x&c=2',
  '?b=1&utm_source=x&c=2&fbclid=y',
  '?utm_source=x&b=1&utm_source=y',
  '?utm_source=x&utm_source=x',
  '?fbclid=1&fbclid=2&fbclid=3',
  '?page=2&gclid=x&page=3',
  '?b=&utm_source=x&c=',
  '?b&fbclid&c',
  '?&utm_source=x',
  '?utm_source=x&',
  '?b=1&&utm_source=x',
  '?utm_source=x&&b=1',
  '?&&fbclid=1&&',
  '?b=%20&utm_source=%E2%9C%93&c=%2F',
  '?utm_source=a%26b&c=1',
  '?utm%5Fsource=x',
  '?utm%5fsource=x&fbclid=1',
  '?%75tm_source=x',
  '?fbclid%3D1',
  '?UTM_SOURCE=x',
  '?Fbclid=x&gclid=1',
  '?fbclidx=1&gclid=2',
  '?xfbclid=1',
  '?ref=utm_source',
  '?q=utm_source%3Dx',
  '?q=utm_&utm_source=utm_',
  '?next=/a?utm_source=x',
  '?next=/a?utm_source=x&utm_source=y',
  '?next=%2Fa%3Futm_source%3Dx%26fbclid%3D1',
  '?=utm_source&fbclid=1',
  '?b=1#x&utm_source=y',
  '?utm_source=y#frag',
  '?b#utm_source=1',
  '?#&fbclid=1',
  '?b=1?utm_source=2',
  '??utm_source=1',
  '?a.b~c-d=1&x%5Fy=2&_=3&_x=4&aXb~c-d=5&utm_source=6',
  `?q=${'w'.repeat(2000)}&utm_source=x&fbclid=${'z'.repeat(1000)}`,
];

// Pages to ask for with those queries: plain, encoded, raw UTF-8, a `#` before the query.
const QUERY_PATHS: readonly string[] = ['/', '/article/x/', '/a%20b', utf8('/café'), '/a#x'];

/** Every ignored query on every path, spread over the host forms of the site. */
export function queryCorpus(): ParityCase[] {
  const hosts = [...hostForms('www.example.com'), 'example.com', '[::1]:80'];
  const cases: ParityCase[] = [];
  let n = 0;
  for (const path of QUERY_PATHS) {
    for (const query of IGNORED_QUERIES) cases.push({ target: `${path}${query}`, host: hosts[n++ % hosts.length] as string });
  }
  // Absolute form, where nginx takes the host from the request line.
  for (const query of IGNORED_QUERIES.slice(0, 12)) {
    cases.push({ target: `http://Example.COM/article/x/${query}`, host: 'unrelated.test' });
    cases.push({ target: `http://www.example.com${query}`, host: 'unrelated.test' });
  }
  return cases;
}

/** Targets nginx itself answers with 400: nothing is looked up or rendered for them. */
export const REJECTED_TARGETS: readonly string[] = ['/a%00b', '/a/../../b', 'relative', '/a b'];

/** Hosts nginx answers with 400, which requestKey must refuse too. */
export const REJECTED_HOSTS: readonly string[] = ['www..example.com', 'www.example.com/x', '', '.', ':8080', 'a..', 'a b', 'tab\there'];
