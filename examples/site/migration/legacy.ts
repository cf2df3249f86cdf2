// The legacy export the migration starts from: a WordPress-like posts table, generated from a fixed
// seed so every run (and every test) sees the same 30,000 rows.
import type { Db } from '../site/db.js';

const GAMES = ['Starfall Odyssey', 'Iron Meadow', 'Neon Drift', 'Hollow Crown', 'Pixel Tactics', 'Deep Harbor', 'Skyforge', 'Ember Run', 'Quiet Orbit', 'Glass Kingdom', 'Rust & Rain', 'Lantern Keep'];
const VERBS = ['announced', 'delayed', 'patched', 'reviewed', 'previewed', 'leaked', 'remastered', 'ported', 'rebalanced', 'teased'];
const TAGS = ['PC', 'PlayStation', 'Xbox', 'Switch', 'Indie', 'RPG', 'Shooter', 'Strategy', 'Esports', 'Retro', 'VR', 'Mobile', 'Review', 'Preview', 'Patch notes', 'Rumour', 'Hardware', 'Interview'];
const AUTHORS = ['mara', 'jonas', 'ayo', 'li', 'sofia', 'tomas'];
const WORDS = 'the a studio game patch review sequel players release trailer update console season map weapon story quest boss level online server launch price edition developer announced fans early access co-op mode frame rate performance controls soundtrack art direction open world crafting'.split(' ');

/** Deterministic pseudo-random numbers (xorshift32), so the export is the same on every machine. */
function random(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 4294967296;
  };
}

export const LEGACY_ROWS = 30_000;

/** Writes the legacy tables: wp_posts, wp_terms and wp_term_relationships. */
export function generateLegacyExport(db: Db, rows = LEGACY_ROWS, seed = 2008): void {
  const next = random(seed);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(next() * list.length)] as T;
  const words = (n: number): string => Array.from({ length: n }, () => pick(WORDS)).join(' ');
  db.exec(`
    DROP TABLE IF EXISTS wp_posts; DROP TABLE IF EXISTS wp_terms; DROP TABLE IF EXISTS wp_term_relationships;
    CREATE TABLE wp_posts (
      ID INTEGER PRIMARY KEY, post_author TEXT, post_date TEXT, post_title TEXT, post_name TEXT,
      post_content TEXT, post_status TEXT, post_type TEXT
    );
    CREATE TABLE wp_terms (term_id INTEGER PRIMARY KEY, name TEXT, slug TEXT);
    CREATE TABLE wp_term_relationships (object_id INTEGER, term_id INTEGER, PRIMARY KEY (object_id, term_id));
    CREATE INDEX wp_term_relationships_term ON wp_term_relationships (term_id, object_id);
  `);
  const insertTerm = db.prepare('INSERT INTO wp_terms (term_id, name, slug) VALUES (?, ?, ?)');
  const insertPost = db.prepare('INSERT INTO wp_posts VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
  const relate = db.prepare('INSERT OR IGNORE INTO wp_term_relationships (object_id, term_id) VALUES (?, ?)');
  db.transaction(() => {
    // Legacy term names are messy: the importer normalizes them.
    TAGS.forEach((tag, i) => insertTerm.run(i + 1, i % 3 === 0 ? ` ${tag.toUpperCase()} ` : tag, ''));
    const start = Date.UTC(2009, 0, 1);
    for (let id = 1; id <= rows; id++) {
      const game = pick(GAMES);
      const title = `${game} ${pick(VERBS)}: ${words(4 + Math.floor(next() * 5))}`;
      const paragraphs = Array.from({ length: 3 + Math.floor(next() * 6) }, (_, i) =>
        i === 1 ? `## What we know\n\n- ${words(6)}\n- ${words(7)}\n- **${words(3)}**` : `${words(40 + Math.floor(next() * 80))}.`,
      );
      if (next() < 0.3) paragraphs.splice(1, 0, `[caption id="attachment_${id}"]<img src="/media/${id}.jpg"> ${words(5)}[/caption]`);
      const status = next() < 0.92 ? 'publish' : pick(['draft', 'trash']);
      const type = next() < 0.95 ? 'post' : 'revision';
      const date = new Date(start + (id / rows) * 17 * 365 * 86_400_000).toISOString().replace('T', ' ').slice(0, 19);
      insertPost.run(id, pick(AUTHORS), date, title, next() < 0.5 ? '' : title.toLowerCase().replace(/[^a-z0-9]+/g, '-'), paragraphs.join('\n\n'), status, type);
      for (let t = 0; t < 1 + Math.floor(next() * 4); t++) relate.run(id, 1 + Math.floor(next() * TAGS.length));
    }
  })();
}
