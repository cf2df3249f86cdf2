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
  return cases;
}

/** Targets nginx itself answers with 400: nothing is looked up or rendered for them. */
export const REJECTED_TARGETS: readonly string[] = ['/a%00b', '/a/../../b', 'relative', '/a b'];

/** Hosts nginx answers with 400, which requestKey must refuse too. */
export const REJECTED_HOSTS: readonly string[] = ['www..example.com', 'www.example.com/x', '', '.', ':8080', 'a..', 'a b', 'tab\there'];
