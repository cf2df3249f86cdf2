// `manage import --cluster=i/N`: one cluster of the legacy export, converted row by row. Each cluster
// reads only its own id range and writes in one transaction, so a cluster killed halfway leaves
// nothing behind and running it again gives the same rows: what makes the run resumable.
import MarkdownIt from 'markdown-it';
import { clusterKeyRange, parseCluster } from '@sitecache/cluster-runner';
import type { Db } from '../site/db.js';
import { excerptOf } from '../site/models.js';

const RELATED_WINDOW = 200;
const markdown = new MarkdownIt({ html: false, linkify: true, typographer: true });

interface LegacyPost {
  ID: number;
  post_author: string;
  post_date: string;
  post_title: string;
  post_name: string;
  post_content: string;
}

export interface ImportResult {
  readonly cluster: string;
  readonly first: number | null;
  readonly last: number | null;
  readonly imported: number;
}

export function importCluster(site: Db, legacy: Db, spec: string): ImportResult {
  const { index, total } = parseCluster(spec);
  const bounds = legacy.prepare('SELECT min(ID) AS min, max(ID) AS max FROM wp_posts').get() as { min: number | null; max: number | null };
  if (bounds.min === null || bounds.max === null) return { cluster: spec, first: null, last: null, imported: 0 };
  const keys = clusterKeyRange(bounds.min, bounds.max, index, total);
  if (!keys) return { cluster: spec, first: null, last: null, imported: 0 };

  const posts = legacy
    .prepare("SELECT ID, post_author, post_date, post_title, post_name, post_content FROM wp_posts WHERE ID BETWEEN ? AND ? AND post_status = 'publish' AND post_type = 'post' ORDER BY ID")
    .all(keys.first, keys.last) as LegacyPost[];
  const termsOf = legacy.prepare('SELECT t.term_id AS id, t.name FROM wp_terms t JOIN wp_term_relationships r ON r.term_id = t.term_id WHERE r.object_id = ?');
  // Related: among the posts published around the same time, those sharing the most tags. The
  // window keeps this an index range scan instead of a join over every post with a common tag.
  const related = legacy.prepare(`
    SELECT r2.object_id AS id FROM wp_term_relationships r1
    JOIN wp_term_relationships r2 ON r2.term_id = r1.term_id AND r2.object_id BETWEEN @id - ${RELATED_WINDOW} AND @id + ${RELATED_WINDOW} AND r2.object_id != r1.object_id
    JOIN wp_posts p ON p.ID = r2.object_id AND p.post_status = 'publish' AND p.post_type = 'post'
    WHERE r1.object_id = @id GROUP BY r2.object_id ORDER BY count(*) DESC, abs(r2.object_id - @id), r2.object_id LIMIT 3`);

  const upsertArticle = site.prepare(`
    INSERT INTO articles (legacy_id, slug, title, author, html, excerpt, published_at) VALUES (@legacyId, @slug, @title, @author, @html, @excerpt, @publishedAt)
    ON CONFLICT (legacy_id) DO UPDATE SET slug = excluded.slug, title = excluded.title, author = excluded.author, html = excluded.html, excerpt = excluded.excerpt, published_at = excluded.published_at
    RETURNING id`);
  const upsertTag = site.prepare('INSERT INTO tags (slug, name) VALUES (?, ?) ON CONFLICT (slug) DO UPDATE SET name = excluded.name RETURNING id');
  const clearTags = site.prepare('DELETE FROM article_tags WHERE article_id = ?');
  const tagArticle = site.prepare('INSERT OR IGNORE INTO article_tags (article_id, tag_id) VALUES (?, ?)');
  const clearRelated = site.prepare('DELETE FROM related_articles WHERE article_id = ?');
  const relate = site.prepare('INSERT INTO related_articles (article_id, related_legacy_id, rank) VALUES (?, ?, ?)');

  // The row work happens before the write transaction, so the database lock is held only to write.
  const converted = posts.map((post) => ({
    post,
    article: convert(post),
    tags: (termsOf.all(post.ID) as { id: number; name: string }[]).map((term) => tagName(term.name)),
    related: (related.all({ id: post.ID }) as { id: number }[]).map((row) => row.id),
  }));
  site.transaction(() => {
    for (const { article, tags, related: others } of converted) {
      const { id } = upsertArticle.get(article) as { id: number };
      clearTags.run(id);
      for (const tag of tags) tagArticle.run(id, (upsertTag.get(slugify(tag), tag) as { id: number }).id);
      clearRelated.run(id);
      others.forEach((other, rank) => relate.run(id, other, rank));
    }
  }).immediate();
  return { cluster: spec, first: keys.first, last: keys.last, imported: posts.length };
}

function convert(post: LegacyPost) {
  const source = post.post_content.replace(/\[caption[^\]]*\](.*?)\[\/caption\]/gs, (_m, inner: string) => {
    const image = /<img src="([^"]+)">/.exec(inner)?.[1] ?? '';
    return `![${inner.replace(/<[^>]+>/g, '').trim()}](${image})`;
  });
  const html = markdown.render(source);
  return {
    legacyId: post.ID,
    // Titles repeat across 17 years of news; the legacy id keeps every slug unique and stable.
    slug: `${slugify(post.post_name || post.post_title)}-${post.ID}`,
    title: post.post_title.trim(),
    author: post.post_author,
    html,
    excerpt: excerptOf(html),
    publishedAt: post.post_date.slice(0, 10),
  };
}

function tagName(raw: string): string {
  const trimmed = raw.trim();
  return trimmed === trimmed.toUpperCase() && trimmed.length > 3 ? trimmed[0] + trimmed.slice(1).toLowerCase() : trimmed;
}

export function slugify(text: string): string {
  return text
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .slice(0, 80)
    // Trimmed after the cut too, which may end on a dash (the id then follows a single one).
    .replace(/^-+|-+$/g, '');
}
