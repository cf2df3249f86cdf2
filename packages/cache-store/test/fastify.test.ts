import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Readable } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import { cacheKey } from '@sitecache/cache-key';
import { ConfigError } from '@sitecache/config';
import { memcachedCommand, memcachedGet, startMemcached, type MemcachedServer } from '@sitecache/test-services';
import Fastify, { type FastifyInstance } from 'fastify';
import { createPageStore, type PageStore } from '../src/index.js';
import { fastifyPageCache } from '../src/fastify.js';
import { eventually, HOST, remainingTtl, requestTo, STEADY, testConfig } from './site.js';

describe('the Fastify plugin', () => {
  let memcached: MemcachedServer;
  let app: FastifyInstance;
  let port: number;

  beforeAll(async () => {
    memcached = await startMemcached();
    app = Fastify();
    await app.register(fastifyPageCache, {
      config: testConfig([memcached.address], { gzip: false }),
      ...STEADY,
      serveFromCache: true,
    });
    // The plugin's hooks apply to routes of the whole instance, including an encapsulated child.
    await app.register(async (child) => {
      child.get('/page/:name', async (request, reply) => reply.type('text/html; charset=utf-8').send(`<h1>${(request.params as { name: string }).name}</h1>`));
    });
    app.get('/personal', async (_request, reply) => reply.type('text/html').header('set-cookie', 'who=me').send('<p>mine</p>'));
    app.get('/stream', async (_request, reply) => reply.type('text/html').send(Readable.from(['<p>', 'streamed', '</p>'])));
    app.get('/live', { config: { pageCache: false } }, async (_request, reply) => reply.type('text/html').send('<p>live</p>'));
    app.get('/brief', { config: { pageCache: { ttl: 9 } } }, async (_request, reply) => reply.type('text/html').send('<p>brief</p>'));
    app.get('/text', async () => 'plain text is not what nginx serves');
    await app.listen({ port: 0, host: '127.0.0.1' });
    port = (app.server.address() as { port: number }).port;
  });
  afterAll(async () => {
    await app?.close();
    await memcached?.stop();
  });

  const stored = (path: string) => memcachedGet(memcached.address, cacheKey(`https://${HOST}${path}`));

  it('stores a page after sending it with X-Cache: MISS, then answers it from memcached as a HIT', async () => {
    const miss = await requestTo(port, '/page/hello');
    expect(miss.headers['x-cache']).toBe('MISS');
    expect(miss.body.toString()).toBe('<h1>hello</h1>');
    await eventually(async () => (await stored('/page/hello')) !== null, 'the page to be stored');
    const before = app.pageCache.metrics.snapshot().hits;
    const hit = await requestTo(port, '/page/hello');
    expect(hit.headers).toMatchObject({ 'x-cache': 'HIT', 'content-type': 'text/html; charset=utf-8' });
    expect(hit.body.toString()).toBe('<h1>hello</h1>');
    expect(app.pageCache.metrics.snapshot().hits).toBe(before + 1);
  });

  it('copies a streamed body as it passes and stores it whole', async () => {
    const response = await requestTo(port, '/stream');
    expect(response.body.toString()).toBe('<p>streamed</p>');
    await eventually(async () => (await stored('/stream'))?.value.toString() === '<p>streamed</p>', 'the stream to be stored');
  });

  it('refuses a page that sets a cookie and a page that is not HTML', async () => {
    const skipped = () => app.pageCache.metrics.snapshot().skipped;
    const before = skipped();
    expect((await requestTo(port, '/personal')).headers['set-cookie']).toBe('who=me');
    expect((await requestTo(port, '/text')).status).toBe(200);
    await eventually(() => skipped()['set-cookie'] === before['set-cookie'] + 1 && skipped()['content-type'] === before['content-type'] + 1, 'both refusals');
    expect(await stored('/personal')).toBeNull();
    expect(await stored('/text')).toBeNull();
  });

  it('follows a route config that opts out or sets its own TTL', async () => {
    await requestTo(port, '/live');
    await requestTo(port, '/brief');
    await eventually(async () => (await stored('/brief')) !== null, 'the brief page to be stored');
    expect(await stored('/live')).toBeNull();
    const ttl = await remainingTtl(memcached.address, cacheKey(`https://${HOST}/brief`));
    expect(ttl).toBeGreaterThan(6);
    expect(ttl).toBeLessThanOrEqual(9);
  });
});

describe('the Fastify plugin given a config as written in sitecache.config.json', () => {
  let memcached: MemcachedServer;
  const apps: FastifyInstance[] = [];

  beforeAll(async () => {
    memcached = await startMemcached();
  });
  afterAll(async () => {
    for (const app of apps) await app.close();
    await memcached?.stop();
  });

  const start = async (options: Parameters<typeof fastifyPageCache>[1]): Promise<{ app: FastifyInstance; port: number }> => {
    const app = Fastify();
    apps.push(app);
    await app.register(fastifyPageCache, options);
    app.get('/page', async (_request, reply) => reply.type('text/html').send('<p>from fastify</p>'));
    await app.listen({ port: 0, host: '127.0.0.1' });
    return { app, port: (app.server.address() as { port: number }).port };
  };

  it('takes a plain object and stores pages', async () => {
    const { app, port } = await start({ config: { hosts: [HOST], memcached: [memcached.address], app: ['127.0.0.1:9'], gzip: false }, ...STEADY });
    expect((await requestTo(port, '/page')).body.toString()).toBe('<p>from fastify</p>');
    await eventually(() => app.pageCache.metrics.snapshot().stored === 1, 'the page to be stored');
    expect((await memcachedGet(memcached.address, cacheKey(`https://${HOST}/page`)))?.value.toString()).toBe('<p>from fastify</p>');
  });

  it('fails to register with ConfigError naming the field when the config has a bad one', async () => {
    const config = JSON.parse(`{ "hosts": ["${HOST}"], "memcached": ["${memcached.address}"], "app": ["127.0.0.1:9"], "scheme": "ftp" }`);
    const app = Fastify();
    apps.push(app);
    const registered = app.register(fastifyPageCache, { config, ...STEADY });
    await expect(registered).rejects.toBeInstanceOf(ConfigError);
    await expect(registered).rejects.toMatchObject({ field: 'scheme' });
  });

  it('counts a lookup that throws as internal-error, and the route still answers', async () => {
    const warnings: string[] = [];
    const config = testConfig([memcached.address], { gzip: false });
    const real = createPageStore(config, { ...STEADY, logger: { warn: (m) => warnings.push(m) } });
    const store: PageStore = Object.assign(Object.create(real) as PageStore, {
      get: async () => {
        throw new Error('lookup exploded');
      },
    });
    const { app, port } = await start({ config, store, serveFromCache: true });
    try {
      const response = await requestTo(port, '/page');
      expect([response.status, response.body.toString()]).toEqual([200, '<p>from fastify</p>']);
      expect(app.pageCache.metrics.snapshot().skipped['internal-error']).toBe(1);
      expect(warnings.filter((w) => w.includes('lookup exploded'))).toHaveLength(1);
    } finally {
      await real.close();
    }
  });
});

describe('the Fastify plugin while another process renders (config.grace)', () => {
  let memcached: MemcachedServer;
  let app: FastifyInstance;
  let port: number;
  let store: PageStore;
  let renders = 0;

  beforeAll(async () => {
    memcached = await startMemcached();
    const config = testConfig([memcached.address], { gzip: true, grace: 60 });
    store = createPageStore(config, STEADY);
    app = Fastify();
    await app.register(fastifyPageCache, { config, ...STEADY, singleFlightWaitMs: 200 });
    app.get('/busy', async (_request, reply) => {
      renders++;
      return reply.type('text/html').send('<p>new</p>');
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    port = (app.server.address() as { port: number }).port;
  });
  afterAll(async () => {
    await app?.close();
    await store?.close();
    await memcached?.stop();
  });

  it('answers with the stale copy, as nginx would send it, while the render lock is held elsewhere; renders once it is gone', async () => {
    const key = store.keyFor(`https://${HOST}/busy`);
    await store.put(`https://${HOST}/busy`, '<p>old</p>');
    await memcachedCommand(memcached.address, `delete ${key}\r\nadd ${key}.lock 0 60 1\r\n1\r\nget sitecache-test-no-such-key\r\n`);
    const zipped = await requestTo(port, '/busy', { 'Accept-Encoding': 'gzip' });
    expect([zipped.status, zipped.headers['x-cache'], zipped.headers['content-encoding'], gunzipSync(zipped.body).toString()]).toEqual([200, 'STALE', 'gzip', '<p>old</p>']);
    const plain = await requestTo(port, '/busy');
    expect([plain.status, plain.headers['x-cache'], plain.headers['content-encoding'], plain.body.toString()]).toEqual([200, 'STALE', undefined, '<p>old</p>']);
    expect(renders).toBe(0);
    await memcachedCommand(memcached.address, `delete ${key}.lock\r\nget sitecache-test-no-such-key\r\n`);
    await eventually(async () => (await requestTo(port, '/busy')).headers['x-cache'] === 'MISS', 'a render once the lock is gone');
    expect(renders).toBe(1);
  });
});
