import type { Db } from './db.js';

export interface ArticleSummary {
  readonly id: number;
  readonly slug: string;
  readonly title: string;
  readonly excerpt: string;
  readonly author: string;
  readonly publishedAt: string;
}

export interface Article extends ArticleSummary {
  readonly html: string;
  readonly tags: readonly Tag[];
  readonly related: readonly ArticleSummary[];
}

export interface Tag {
  readonly slug: string;
  readonly name: string;
}

const SUMMARY = `a.id, a.slug, a.title, a.excerpt, a.author, a.published_at AS publishedAt`;

/** The text of an article's first 40 words, without markup: what lists and the feed show under a headline. */
export function excerptOf(html: string): string {
  const text = html.replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').trim();
  const words = text.split(' ');
  return words.length > 40 ? `${words.slice(0, 40).join(' ')}…` : text;
}

/** The queries the views make, named as the views need them. */
export class Articles {
  constructor(private readonly db: Db) {}

  latest(limit = 20, offset = 0): ArticleSummary[] {
    return this.db.prepare(`SELECT ${SUMMARY} FROM articles a ORDER BY a.published_at DESC, a.id DESC LIMIT ? OFFSET ?`).all(limit, offset) as ArticleSummary[];
  }

  bySlug(slug: string): Article | undefined {
    const summary = this.db.prepare(`SELECT ${SUMMARY}, a.html FROM articles a WHERE a.slug = ?`).get(slug) as (ArticleSummary & { html: string }) | undefined;
    if (!summary) return undefined;
    return { ...summary, tags: this.tagsOf(summary.id), related: this.relatedTo(summary.id) };
  }

  byId(id: number): Article | undefined {
    const row = this.db.prepare('SELECT slug FROM articles WHERE id = ?').get(id) as { slug: string } | undefined;
    return row ? this.bySlug(row.slug) : undefined;
  }

  tagged(tagSlug: string, limit = 50): { tag: Tag; articles: ArticleSummary[] } | undefined {
    const tag = this.db.prepare('SELECT id, slug, name FROM tags WHERE slug = ?').get(tagSlug) as (Tag & { id: number }) | undefined;
    if (!tag) return undefined;
    const articles = this.db
      .prepare(`SELECT ${SUMMARY} FROM articles a JOIN article_tags t ON t.article_id = a.id WHERE t.tag_id = ? ORDER BY a.published_at DESC, a.id DESC LIMIT ?`)
      .all(tag.id, limit) as ArticleSummary[];
    return { tag: { slug: tag.slug, name: tag.name }, articles };
  }

  tagsOf(articleId: number): Tag[] {
    return this.db.prepare('SELECT g.slug, g.name FROM tags g JOIN article_tags t ON t.tag_id = g.id WHERE t.article_id = ? ORDER BY g.name').all(articleId) as Tag[];
  }

  relatedTo(articleId: number): ArticleSummary[] {
    return this.db
      .prepare(`SELECT ${SUMMARY} FROM related_articles r JOIN articles a ON a.legacy_id = r.related_legacy_id WHERE r.article_id = ? ORDER BY r.rank`)
      .all(articleId) as ArticleSummary[];
  }

  /** The articles whose "Related" box lists this one. */
  relatedFrom(articleId: number): ArticleSummary[] {
    return this.db
      .prepare(`SELECT ${SUMMARY} FROM articles o JOIN related_articles r ON r.related_legacy_id = o.legacy_id JOIN articles a ON a.id = r.article_id WHERE o.id = ? ORDER BY a.id`)
      .all(articleId) as ArticleSummary[];
  }

  /** An editor's change: the headline, the body (HTML) or both; a new body gets its excerpt again. */
  update(id: number, change: { title?: string; html?: string }): void {
    if (change.title !== undefined) this.db.prepare('UPDATE articles SET title = ? WHERE id = ?').run(change.title, id);
    if (change.html !== undefined) this.db.prepare('UPDATE articles SET html = ?, excerpt = ? WHERE id = ?').run(change.html, excerptOf(change.html), id);
  }

  allSlugs(): string[] {
    return (this.db.prepare('SELECT slug FROM articles ORDER BY id').all() as { slug: string }[]).map((row) => row.slug);
  }

  allTagSlugs(): string[] {
    return (this.db.prepare('SELECT slug FROM tags ORDER BY slug').all() as { slug: string }[]).map((row) => row.slug);
  }

  count(): number {
    return (this.db.prepare('SELECT count(*) AS n FROM articles').get() as { n: number }).n;
  }
}

export class Comments {
  constructor(private readonly db: Db) {}

  countFor(articleId: number): number {
    const row = this.db.prepare('SELECT count FROM comment_counts WHERE article_id = ?').get(articleId) as { count: number } | undefined;
    return row?.count ?? 0;
  }

  add(articleId: number): number {
    this.db
      .prepare('INSERT INTO comment_counts (article_id, count) VALUES (?, 1) ON CONFLICT (article_id) DO UPDATE SET count = count + 1')
      .run(articleId);
    return this.countFor(articleId);
  }
}

export class Users {
  constructor(private readonly db: Db) {}

  find(username: string): { username: string; displayName: string; passwordHash: string } | undefined {
    return this.db.prepare('SELECT username, display_name AS displayName, password_hash AS passwordHash FROM users WHERE username = ?').get(username) as
      | { username: string; displayName: string; passwordHash: string }
      | undefined;
  }

  create(username: string, displayName: string, passwordHash: string): void {
    this.db.prepare('INSERT OR REPLACE INTO users (username, display_name, password_hash) VALUES (?, ?, ?)').run(username, displayName, passwordHash);
  }
}
