// The bench site's page: an article of about 40 KB of HTML, different for every number and the
// same bytes every time it is rendered, so any cache may store it and no two pages are alike.

const WORDS = (
  'the a an of to in and for on with at by from as is was are were be been has have had it its this that these those ' +
  'studio game games patch review sequel players player release trailer update console season map weapon story quest ' +
  'boss level online server launch price edition developer developers announced fans early access co-op mode build ' +
  'week month year today tomorrow new old first last next best worst big small open world racing shooter puzzle ' +
  'strategy indie publisher platform handheld controller frame rate resolution texture engine physics sound music ' +
  'voice actor director writer designer artist team studio company deal sales chart record week-one million copies ' +
  'review-bombed delayed cancelled remastered remake port sequel prequel expansion dlc season-pass battle-pass ' +
  'multiplayer single-player campaign speedrun tournament esports league final round match win loss draw patch-notes ' +
  'balance nerf buff meta character class skill tree loot drop rare legendary crafting inventory save checkpoint'
).split(' ');

/** What every page is sent with: longer than any run, so each cache keeps a page until it needs the room. */
export const CACHE_CONTROL = 'public, max-age=3600';

const SECTIONS = ['news', 'reviews', 'features', 'guides', 'esports', 'hardware', 'indie', 'retro'];

/** The page at /page/<n>: about 40 KB of HTML that gzip shrinks about fivefold. */
export function renderPage(n: number): string {
  // xorshift32 seeded by the page number: deterministic, exact in 32-bit integer arithmetic.
  let state = (n * 2654435761) >>> 0 || 1;
  const next = (): number => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return state >>> 0;
  };
  const sentence = (length: number): string => Array.from({ length }, () => WORDS[next() % WORDS.length]).join(' ');
  const section = SECTIONS[n % SECTIONS.length] as string;
  const parts: string[] = [
    `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${sentence(6)} | PixelPress</title>`,
    `<meta name="description" content="${sentence(24)}"><link rel="canonical" href="/page/${n}">`,
    '<link rel="stylesheet" href="/static/site.css"></head><body>',
    `<header class="site-header"><a class="logo" href="/">PixelPress</a><nav>${SECTIONS.map((s) => `<a href="/${s}/" class="nav-link${s === section ? ' active' : ''}">${s}</a>`).join('')}</nav></header>`,
    `<main><article id="article-${n}" class="article ${section}"><h1>${sentence(9)}</h1>`,
    `<p class="byline">By <a href="/authors/${next() % 40}">${sentence(2)}</a> <time datetime="2026-${1 + (next() % 12)}-${1 + (next() % 28)}">${1 + (next() % 28)} days ago</time></p>`,
  ];
  // As on a real news page, markup outweighs the words: the article's text is about a third of
  // the bytes, the rest the site's menus, teasers and footer, which gzip shrinks far more.
  for (let i = 0; i < 14; i++) {
    parts.push(
      i % 5 === 4
        ? `<h2 id="s${i}" class="article-heading">${sentence(6)}</h2>\n`
        : `<p id="p${i}" class="article-paragraph">${sentence(60 + (next() % 50))} <a href="/page/${1 + (next() % 20_000)}" class="inline-link">${sentence(3)}</a> ${sentence(20 + (next() % 30))}.</p>\n`,
    );
  }
  parts.push('</article><aside class="related"><h2 class="related-heading">Related</h2><ul class="related-list">');
  for (let i = 0; i < 52; i++) {
    const related = 1 + (next() % 20_000);
    const kind = SECTIONS[related % SECTIONS.length] as string;
    parts.push(
      `<li class="related-item related-item--${kind}"><a class="related-link" href="/page/${related}"><picture class="related-picture"><source type="image/avif" srcset="/img/${related}-320.avif 320w, /img/${related}-640.avif 640w" sizes="(min-width: 800px) 160px, 40vw"><img class="related-image" src="/img/${related}-320.webp" width="160" height="90" alt="" loading="lazy" decoding="async"></picture><span class="related-section">${kind}</span><span class="related-title">${sentence(6)}</span></a></li>\n`,
    );
  }
  parts.push('</ul></aside></main><footer class="site-footer"><nav class="footer-nav">');
  for (const s of SECTIONS) parts.push(`<a class="footer-link" href="/${s}/">${s}</a><a class="footer-link" href="/${s}/feed.xml" rel="alternate" type="application/rss+xml">${s} feed</a>`);
  parts.push('</nav><p class="footer-note">PixelPress, games news since 2009.</p></footer></body></html>\n');
  return parts.join('');
}
