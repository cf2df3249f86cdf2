import { createHash } from 'node:crypto';
import { memcachedExptime } from '@sitecache/nginx-model';

/**
 * Where the index of a tag lives in memcached, on each server: which pages of that server carry
 * the tag. Internal to the store; the README's "Tags" section says why it is built this way.
 *
 * An entry's key is `tag:<md5 of keyPrefix, a space and the tag>:<class>:<epoch>:<shard>`:
 * - class: the smallest of CLASS_SPANS that holds the page's life (TTL, plus grace with a stale
 *   copy), since memcached's append keeps the TTL the entry was created with;
 * - epoch: now / span, so an entry created in an epoch with a life of two spans (and CLOCK_MARGIN)
 *   outlives every page appended to it during that epoch, by processes whose clocks are apart by
 *   up to CLOCK_MARGIN;
 * - shard: the page key's last hex digit, so one tag on many pages spreads over 16 items, far
 *   under memcached's 1 MB item limit.
 * A purge reads, per tag, every class, the epochs from two before now to one after (a clock up to
 * a span apart from the storing one still finds its entries), and every shard.
 */
export const CLASS_SPANS = [64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304] as const;
const SHARDS = 16;
/**
 * Seconds an entry lives past its two spans: each process names the epoch by its own clock, so a
 * process whose clock is behind appends to an entry that one ahead created earlier.
 */
export const CLOCK_MARGIN = 60;

/** The part of a tag's keys that names the tag: md5, so any tag makes a valid memcached key. */
export function tagHash(keyPrefix: string, tag: string): string {
  return createHash('md5').update(`${keyPrefix} ${tag}`, 'latin1').digest('hex');
}

/** The tag's purge marker: the generation of the last purge of the tag on that server. */
export function tagMarkKey(hash: string): string {
  return `tag:${hash}.purged`;
}

/** Each server's counter of purges by tag: a render reads it when it claims its page. */
export function generationKey(keyPrefix: string): string {
  return `tag:${createHash('md5').update(`${keyPrefix} `, 'latin1').digest('hex')}.generation`;
}

/** Where a page living `life` seconds is indexed under the tag now: its entry key and the entry's exptime. */
export function entryKey(hash: string, pageKey: string, life: number, nowMs: number): { key: string; exptime: number } {
  const shard = shardOf(pageKey);
  const index = CLASS_SPANS.findIndex((span) => life <= span);
  if (index === -1) {
    // Longer than the last span (48 days): one entry that never expires nor rolls over, so it grows
    // with every store (the README's Limits say so); it may still be evicted.
    return { key: `tag:${hash}:x:0:${shard}`, exptime: 0 };
  }
  const span = CLASS_SPANS[index] as number;
  const epoch = Math.floor(nowMs / 1000 / span);
  return { key: `tag:${hash}:${index}:${epoch}:${shard}`, exptime: memcachedExptime(2 * span + CLOCK_MARGIN, nowMs) };
}

/** Every entry key a purge of the tag at `nowMs` must read. */
export function entryKeysToRead(hash: string, nowMs: number): string[] {
  const keys: string[] = [];
  CLASS_SPANS.forEach((span, index) => {
    const epoch = Math.floor(nowMs / 1000 / span);
    // A page stored at the end of epoch E lives into E + 1; a purging clock ahead of the storing one
    // by up to a span then reads from E + 2, one behind from E - 1: E is read either way.
    for (const e of [epoch - 2, epoch - 1, epoch, epoch + 1]) for (let shard = 0; shard < SHARDS; shard++) keys.push(`tag:${hash}:${index}:${e}:${shard.toString(16)}`);
  });
  for (let shard = 0; shard < SHARDS; shard++) keys.push(`tag:${hash}:x:0:${shard.toString(16)}`);
  return keys;
}

/** One page as an entry holds it: `<key> ` or, with a stale copy, `<key>/<stale key> `. */
export function entryText(pageKey: string, staleKey: string | undefined): string {
  return staleKey === undefined ? `${pageKey} ` : `${pageKey}/${staleKey} `;
}

/** The pages an entry names, as page key to stale key (or undefined). */
export function readEntry(text: string, into: Map<string, string | undefined>): void {
  for (const item of text.split(' ')) {
    if (item === '') continue;
    const [key, stale] = item.split('/');
    if (key && (stale !== undefined || !into.has(key))) into.set(key, stale);
  }
}

/**
 * The commands that create the entry if missing and append the page to it, without replies: an
 * `add` of an empty value then an `append`, each atomic in memcached, so processes never lose each
 * other's pages. They go down the page's connection before its set, so once the set is answered
 * memcached has run them.
 */
export function appendCommands(entries: readonly { key: string; exptime: number }[], text: string): string {
  const length = Buffer.byteLength(text, 'latin1');
  return entries.map(({ key, exptime }) => `add ${key} 0 ${exptime} 0 noreply\r\n\r\nappend ${key} 0 0 ${length} noreply\r\n${text}\r\n`).join('');
}

function shardOf(pageKey: string): string {
  const digit = pageKey.slice(-1).toLowerCase();
  return /^[0-9a-f]$/.test(digit) ? digit : (pageKey.charCodeAt(pageKey.length - 1) % SHARDS).toString(16);
}
