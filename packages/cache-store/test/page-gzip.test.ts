import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { cacheKey } from '@sitecache/cache-key';
import { GZIP_FLAG } from '@sitecache/nginx-model';
import { freePort, memcachedGet } from '@sitecache/test-services';
import { createPageStore, type PageStore } from '../src/index.js';
import { PageGzip } from '../src/page-gzip.js';
import { HOST, STEADY, startSite, type Site } from './site.js';

const MAX = 1024 * 1024;

/** Pages unlike each other: HTML of many sizes, text with multi-byte characters, bytes that do not compress. */
function pageOf(i: number): string | Buffer {
  if (i % 7 === 3) return randomBytes(1 + ((i * 977) % 20_000));
  if (i % 5 === 1) return `<p>caf\u00e9 \u2603 ${i}</p>`.repeat(1 + ((i * 31) % 4000));
  return `<!doctype html><title>${i}</title>${'<p>paragraph</p>\r\nEND\r\n'.repeat(i % 300)}`;
}

const bytesOf = (page: string | Buffer): Buffer => (typeof page === 'string' ? Buffer.from(page) : page);

describe('the store gzip', () => {
  it('goes through one engine, reset between pages, on this Node', () => {
    expect(new PageGzip(1, MAX).reusesEngine).toBe(true);
  });

  for (const reuse of [true, false]) {
    it(`gzips 400 different pages in a row, each into a buffer of its own size, that gunzip reads back byte for byte (${reuse ? 'one engine' : 'gzipSync per page'})`, () => {
      const gzip = new PageGzip(1, MAX, { reuse });
      const wrong: number[] = [];
      for (let i = 0; i < 400; i++) {
        const page = pageOf(i);
        const gzipped = gzip.gzip(page, MAX);
        // Each in a buffer of its own size: a stored page keeps nothing larger alive.
        if (!gzipped || gzipped.buffer.byteLength !== gzipped.length || !gunzipSync(gzipped).equals(bytesOf(page))) wrong.push(i);
      }
      expect(wrong).toEqual([]);
      gzip.close();
    });
  }

  it('cuts a page that outgrows its limit short mid-way, and the pages after it start clean', () => {
    const gzip = new PageGzip(1, MAX);
    const large = randomBytes(200_000);
    for (let i = 0; i < 20; i++) {
      // Cut short after some output went out: the engine is left mid-stream.
      expect(gzip.gzip(large, 50_000)).toBeUndefined();
      const page = pageOf(i);
      const gzipped = gzip.gzip(page, MAX) as Buffer;
      expect(gunzipSync(gzipped).equals(bytesOf(page))).toBe(true);
    }
    gzip.close();
  });

  it('gzips again after close, with a new engine', () => {
    const gzip = new PageGzip(1, MAX);
    const first = Buffer.from(gzip.gzip('<p>one</p>', MAX) as Buffer);
    gzip.close();
    expect(gunzipSync(gzip.gzip('<p>two</p>', MAX) as Buffer).toString()).toBe('<p>two</p>');
    expect(gunzipSync(first).toString()).toBe('<p>one</p>');
  });
});

describe('pages a store gzipped, served by nginx', () => {
  let site: Site;
  let store: PageStore;

  beforeAll(async () => {
    site = await startSite({ memcachedCount: 2, appPort: await freePort(), fields: { gzip: true } });
    store = createPageStore(site.config, STEADY);
  });
  afterAll(async () => {
    await store?.close();
    await site?.stop();
  });

  it('are answered by nginx gunzipped and gzip, byte for byte, with pages cut short between them', async () => {
    const pages = Array.from({ length: 60 }, (_, i) => ({ url: `/gzip/${i}`, body: pageOf(i) }));
    for (const [i, { url, body }] of pages.entries()) {
      // A page too large for memcached between the others: gzip stops mid-page.
      if (i % 10 === 5) expect(await store.put(`https://${HOST}/gzip/too-large/${i}`, randomBytes(MAX))).toMatchObject({ stored: false, reason: 'too-large' });
      expect(await store.put(`https://${HOST}${url}`, body)).toMatchObject({ stored: true });
    }
    for (const { url, body } of pages) {
      const key = cacheKey(`https://${HOST}${url}`);
      const item = await memcachedGet(store.serverFor(key), key);
      expect(item?.flags).toBe(8 | GZIP_FLAG);
      const plain = await site.request(url, { 'Accept-Encoding': 'identity' });
      expect([plain.status, plain.headers['x-cache'], plain.headers['content-encoding']]).toEqual([200, 'HIT', undefined]);
      expect(plain.body.equals(bytesOf(body))).toBe(true);
      const zipped = await site.request(url, { 'Accept-Encoding': 'gzip' });
      expect([zipped.status, zipped.headers['content-encoding']]).toEqual([200, 'gzip']);
      expect(gunzipSync(zipped.body).equals(bytesOf(body))).toBe(true);
    }
  });
});
