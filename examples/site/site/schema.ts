import type { Db } from './db.js';

/** `manage migrate`: the site's tables. Safe to run again. */
export function migrate(db: Db): void {
  db.exec(`
    CREATE TABLE IF NOT EXISTS articles (
      id INTEGER PRIMARY KEY,
      legacy_id INTEGER NOT NULL UNIQUE,
      slug TEXT NOT NULL UNIQUE,
      title TEXT NOT NULL,
      author TEXT NOT NULL,
      html TEXT NOT NULL,
      excerpt TEXT NOT NULL,
      published_at TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS articles_published ON articles (published_at DESC);
    CREATE TABLE IF NOT EXISTS tags (
      id INTEGER PRIMARY KEY,
      slug TEXT NOT NULL UNIQUE,
      name TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS article_tags (
      article_id INTEGER NOT NULL REFERENCES articles (id) ON DELETE CASCADE,
      tag_id INTEGER NOT NULL REFERENCES tags (id),
      PRIMARY KEY (article_id, tag_id)
    );
    CREATE INDEX IF NOT EXISTS article_tags_tag ON article_tags (tag_id);
    CREATE TABLE IF NOT EXISTS related_articles (
      article_id INTEGER NOT NULL REFERENCES articles (id) ON DELETE CASCADE,
      related_legacy_id INTEGER NOT NULL,
      rank INTEGER NOT NULL,
      PRIMARY KEY (article_id, rank)
    );
    CREATE TABLE IF NOT EXISTS comment_counts (
      article_id INTEGER PRIMARY KEY REFERENCES articles (id) ON DELETE CASCADE,
      count INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE IF NOT EXISTS users (
      username TEXT PRIMARY KEY,
      display_name TEXT NOT NULL,
      password_hash TEXT NOT NULL
    );
  `);
}
