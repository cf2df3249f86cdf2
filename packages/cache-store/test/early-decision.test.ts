import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { request as httpRequest, ServerResponse, type ClientRequest, type IncomingHttpHeaders } from 'node:http';
import { PassThrough } from 'node:stream';
import { cacheKey } from '@sitecache/cache-key';
import { memcachedGet, startMemcached, type MemcachedServer } from '@sitecache/test-services';
import Fastify, { type FastifyInstance } from 'fastify';
import { pageCache, type PageCacheMiddleware, type SkipReason } from '../src/index.js';
import { fastifyPageCache } from '../src/fastify.js';
import { eventually, HOST, listen, listenBehind, requestTo, STEADY, testConfig, type Handler } from './site.js';

// Long enough that a request kept waiting for the leader shows: it would answer after WAIT_MS.
const WAIT_MS = 5_000;
/** Well under WAIT_MS: a request answered within it did not wait for the leader. */
const AT_ONCE_MS = WAIT_MS / 2;

const keyOf = (path: string): string => cacheKey(`https://${HOST}${path}`);
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
/** One turn of the event loop: the microtasks queued before it have all run. */
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
/** A promise the test resolves when it chooses: holds a render open until then. */
const gate = (): { readonly opened: Promise<void>; open(): void } => {
  let open = (): void => undefined;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
};

/** A response the client is still reading: its head and first bytes have arrived. */
interface OpenResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly first: string;
  /** Milliseconds from the request to its first bytes. */
  readonly waitedMs: number;
  /** The whole body, once the response ends. */
  readonly ended: Promise<string>;
}

/** A GET for `path`: `response` resolves once the head and first bytes arrived, however long the response stays open. */
function request(port: number, path: string): { client: ClientRequest; response: Promise<OpenResponse> } {
  const asked = Date.now();
  let client: ClientRequest | undefined;
  const response = new Promise<OpenResponse>((resolve, reject) => {
    client = httpRequest({ host: '127.0.0.1', port, path, headers: { host: HOST }, agent: false }, (res) => {
      res.setEncoding('utf8');
      let body = '';
      const ended = new Promise<string>((done) => res.once('end', () => done(body)));
      res.on('data', (chunk: string) => {
        const first = body === '';
        body += chunk;
        if (first) resolve({ status: res.statusCode ?? 0, headers: res.headers, first: chunk, waitedMs: Date.now() - asked, ended });
      });
    });
    client.on('error', reject);
    client.end();
  });
  return { client: client as ClientRequest, response };
}

let memcached: MemcachedServer;

beforeAll(async () => {
  memcached = await startMemcached();
});
afterAll(async () => {
  await memcached?.stop();
});

describe('a page that its status and headers refuse is let go as its head goes out', () => {
  const running: { stop(): Promise<void> }[] = [];
  const caches: PageCacheMiddleware[] = [];
  const clients: ClientRequest[] = [];

  afterEach(async () => {
    for (const client of clients.splice(0)) client.destroy();
    for (const s of running.splice(0)) await s.stop();
    for (const c of caches.splice(0)) await c.close();
  });

  /** An app process: the middleware with a single-flight wait of WAIT_MS in front of `handler`. */
  const serve = async (handler: Handler, arrived?: () => void) => {
    const cache = pageCache(testConfig([memcached.address], { gzip: false }), { ...STEADY, singleFlightWaitMs: WAIT_MS });
    caches.push(cache);
    const server = await listenBehind(cache, handler, arrived);
    running.push(server);
    return { cache, port: server.port };
  };

  /** A GET whose response may stay open; the test's clients leave when it ends. */
  const open = (port: number, path: string): Promise<OpenResponse> => {
    const { client, response } = request(port, path);
    clients.push(client);
    return response;
  };

  const stored = (path: string) => memcachedGet(memcached.address, keyOf(path));
  const lockOf = (path: string) => memcachedGet(memcached.address, `${keyOf(path)}.lock`);

  it('answers the next request for an event stream at once, in this process and in another sharing memcached, and copies none of the stream', async () => {
    const streams: ServerResponse[] = [];
    /** For each stream, once its head went out: were its writes Node's own again, copying nothing? */
    const writesUncopied: boolean[] = [];
    const events: Handler = (_req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
      res.write(`data: stream ${streams.length}\n\n`);
      writesUncopied.push(res.write === ServerResponse.prototype.write && res.end === ServerResponse.prototype.end);
      // Events keep coming (a long poll would be silent instead); the stream ends when its client leaves.
      const timer = setInterval(() => res.write('data: tick\n\n'), 100);
      res.once('close', () => clearInterval(timer));
      streams.push(res);
    };
    const here = await serve(events);
    const elsewhere = await serve(events);

    const first = await open(here.port, '/events');
    expect([first.status, first.headers['content-type'], first.first]).toEqual([200, 'text/event-stream', 'data: stream 0\n\n']);
    // Refused and counted as its head went out, while the stream goes on; its render lock let go.
    expect(here.cache.metrics.snapshot().skipped['no-cache']).toBe(1);
    await eventually(async () => (await lockOf('/events')) === null, 'the render lock to be let go while the stream is open', AT_ONCE_MS);

    // Another process does not wait for the lock of a stream that will never be a page.
    const other = await open(elsewhere.port, '/events');
    expect(other.first).toBe('data: stream 1\n\n');
    expect(other.waitedMs).toBeLessThan(AT_ONCE_MS);
    // Nor does the next request in this process wait for the first stream.
    const again = await open(here.port, '/events');
    expect(again.first).toBe('data: stream 2\n\n');
    expect(again.waitedMs).toBeLessThan(AT_ONCE_MS);
    expect(here.cache.metrics.snapshot().singleFlightJoins).toBe(0);
    expect(writesUncopied).toEqual([true, true, true]);

    // The streams end as their clients leave: each was counted once, at its head, and never as aborted.
    for (const client of clients.splice(0)) client.destroy();
    await eventually(() => streams.every((s) => s.closed), 'the streams to close');
    for (const [cache, streamsThere] of [[here.cache, 2], [elsewhere.cache, 1]] as const) {
      const skipped = cache.metrics.snapshot().skipped;
      expect([skipped['no-cache'], skipped.aborted, skipped['too-large']]).toEqual([streamsThere, 0, 0]);
    }
    expect(await stored('/events')).toBeNull();
  });

  it('answers the next request at once while a page that sets a cookie is still being written', async () => {
    let renders = 0;
    const secondAnswered = gate();
    const { cache, port } = await serve(async (_req, res) => {
      const n = ++renders;
      res.writeHead(200, { 'Content-Type': 'text/html', 'Set-Cookie': `visitor=${n}` });
      if (n === 1) {
        // A slow body: a chunk every 100 ms until the second visitor has had its page.
        let writing = true;
        void secondAnswered.opened.then(() => (writing = false));
        while (writing) {
          res.write('<p>more</p>');
          await sleep(100);
        }
      }
      res.end(`<p>for visitor ${n}</p>`);
    });
    const first = requestTo(port, '/personal');
    await eventually(() => renders === 1, 'the first render to send its head');
    const asked = Date.now();
    const second = await requestTo(port, '/personal');
    const waited = Date.now() - asked;
    secondAnswered.open();
    expect([second.headers['set-cookie'], second.body.toString()]).toEqual(['visitor=2', '<p>for visitor 2</p>']);
    expect(waited).toBeLessThan(AT_ONCE_MS);
    const firstResponse = await first;
    expect(firstResponse.headers['set-cookie']).toBe('visitor=1');
    expect(firstResponse.body.toString()).toMatch(/^(<p>more<\/p>)+<p>for visitor 1<\/p>$/);
    const skipped = cache.metrics.snapshot().skipped;
    expect([skipped['set-cookie'], skipped.aborted, cache.metrics.snapshot().singleFlightJoins]).toEqual([2, 0, 0]);
    expect(await stored('/personal')).toBeNull();
  });

  it('still keeps the next request waiting for a page whose head passed, and answers it with that page', async () => {
    let renders = 0;
    let arrivals = 0;
    const secondHere = gate();
    const { cache, port } = await serve(
      async (_req, res) => {
        renders++;
        res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
        res.write('<p>one page');
        // The body ends only once the second request has joined this render (in its own turn's microtasks).
        await secondHere.opened;
        await nextTurn();
        res.end(' for everyone</p>');
      },
      () => {
        if (++arrivals === 2) secondHere.open();
      },
    );
    const first = requestTo(port, '/shared');
    await eventually(() => renders === 1, 'the first render to send its head');
    const second = await requestTo(port, '/shared');
    expect([(await first).body.toString(), second.body.toString()]).toEqual(['<p>one page for everyone</p>', '<p>one page for everyone</p>']);
    expect(renders).toBe(1);
    expect(cache.metrics.snapshot().singleFlightJoins).toBe(1);
    await eventually(async () => (await stored('/shared'))?.value.toString() === '<p>one page for everyone</p>', 'the page to be stored');
  });

  // Every way Node sends a head: writeHead with its headers in each form, and the implicit head of
  // the first write, end or flushHeaders. Each response is refused as that call returns, before it finishes.
  const forms: [string, SkipReason, (res: ServerResponse) => void][] = [
    ['setHeader, then write', 'set-cookie', (res) => {
      res.setHeader('Content-Type', 'text/html');
      res.setHeader('Set-Cookie', 'a=1');
      res.write('<p>a cookie');
    }],
    ['setHeader, then end', 'no-store', (res) => {
      res.setHeader('Content-Type', 'text/html');
      res.setHeader('Cache-Control', 'no-store');
      res.end('<p>never stored</p>');
    }],
    ['statusCode, then write', 'status', (res) => {
      res.statusCode = 404;
      res.setHeader('Content-Type', 'text/html');
      res.write('<p>not found');
    }],
    ['setHeader, then flushHeaders', 'content-type', (res) => {
      res.setHeader('Content-Type', 'text/event-stream');
      res.flushHeaders();
      res.write('data: 1\n\n');
    }],
    ['writeHead(status, headers)', 'content-type', (res) => {
      res.writeHead(200, { 'Content-Type': 'text/event-stream' });
      res.write('data: 1\n\n');
    }],
    ['writeHead(status, reason, headers)', 'private', (res) => {
      res.writeHead(200, 'Fine', { 'Content-Type': 'text/html', 'Cache-Control': 'private' });
      res.write('<p>mine');
    }],
    ['writeHead(status, [name, value, ...])', 'set-cookie', (res) => {
      res.writeHead(200, ['Content-Type', 'text/html', 'Set-Cookie', 'a=1', 'Set-Cookie', 'b=2']);
      res.write('<p>two cookies');
    }],
    ['writeHead with a header over one set before', 'vary', (res) => {
      res.setHeader('Vary', 'Accept-Encoding');
      res.writeHead(200, { 'Content-Type': 'text/html', Vary: 'Cookie' });
      res.write('<p>varies');
    }],
  ];

  it.each(forms.map(([name, reason, send], i) => [name, reason, send, i] as const))(
    'decides a head sent by %s (reason "%s") as it goes out: counted once, and the next request does not wait',
    async (_name, reason, send, i) => {
      const path = `/form/${i}`;
      /** For each response: how many refusals its head-sending call had counted when it returned. */
      const countedBySend: number[] = [];
      let closed = 0;
      let counted = (): number => 0;
      const { cache, port } = await serve((_req, res) => {
        res.once('close', () => closed++);
        const before = counted();
        send(res);
        countedBySend.push(counted() - before);
      });
      counted = () => cache.metrics.snapshot().skipped[reason];
      await open(port, path);
      const second = await open(port, path);
      expect(second.waitedMs).toBeLessThan(AT_ONCE_MS);
      expect(countedBySend).toEqual([1, 1]);
      // Once both responses are over (finished or left by their clients), neither is counted again.
      for (const client of clients.splice(0)) client.destroy();
      await eventually(() => closed === 2, 'both responses to close');
      expect([counted(), cache.metrics.snapshot().skipped.aborted]).toEqual([2, 0]);
      expect(await stored(path)).toBeNull();
    },
  );
});

describe('the Fastify plugin lets go of a page refused by its head', () => {
  let app: FastifyInstance;
  let port: number;
  const streams: PassThrough[] = [];
  let closed = 0;
  let personalRenders = 0;
  const secondVisitorAnswered = gate();

  beforeAll(async () => {
    app = Fastify();
    await app.register(fastifyPageCache, { config: testConfig([memcached.address], { gzip: false }), ...STEADY, singleFlightWaitMs: WAIT_MS });
    app.get('/events', async (_request, reply) => {
      const stream = new PassThrough();
      stream.write(`data: stream ${streams.length}\n\n`);
      streams.push(stream);
      reply.raw.once('close', () => closed++);
      return reply.header('Cache-Control', 'no-cache').type('text/event-stream').send(stream);
    });
    // A route that writes its own head on the raw response (as an SSE plugin does): the headers are
    // only in the writeHead call, none set on the response before it.
    app.get('/personal', async (_request, reply) => {
      const n = ++personalRenders;
      reply.hijack();
      reply.raw.writeHead(200, { 'Content-Type': 'text/html', 'Set-Cookie': `visitor=${n}` });
      reply.raw.write('<p>');
      if (n === 1) await secondVisitorAnswered.opened;
      reply.raw.end(`for visitor ${n}</p>`);
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    port = (app.server.address() as { port: number }).port;
  });
  afterAll(async () => {
    secondVisitorAnswered.open();
    for (const stream of streams) stream.end();
    await app?.close();
  });

  it('answers the next request for an event stream at once, and counts the stream once, as its head goes out', async () => {
    const skipped = () => app.pageCache.metrics.snapshot().skipped;
    const first = await request(port, '/events').response;
    expect(first.first).toBe('data: stream 0\n\n');
    expect(skipped()['no-cache']).toBe(1);
    const second = await request(port, '/events').response;
    expect(second.first).toBe('data: stream 1\n\n');
    expect(second.waitedMs).toBeLessThan(AT_ONCE_MS);
    expect(app.pageCache.metrics.snapshot().singleFlightJoins).toBe(0);
    for (const stream of streams) stream.end('data: bye\n\n');
    // Both streams end: neither is counted again.
    expect(await Promise.all([first.ended, second.ended])).toEqual(['data: stream 0\n\ndata: bye\n\n', 'data: stream 1\n\ndata: bye\n\n']);
    await eventually(() => closed === 2, 'both responses to close');
    expect([skipped()['no-cache'], skipped().aborted]).toEqual([2, 0]);
    expect(await memcachedGet(memcached.address, keyOf('/events'))).toBeNull();
  });

  it('answers the next request at once while a hijacked reply that sets a cookie is still being written', async () => {
    const before = app.pageCache.metrics.snapshot().skipped['set-cookie'];
    const first = await request(port, '/personal').response;
    expect([first.headers['set-cookie'], first.first]).toEqual([['visitor=1'], '<p>']);
    const asked = Date.now();
    const second = await requestTo(port, '/personal');
    expect(Date.now() - asked).toBeLessThan(AT_ONCE_MS);
    expect(second.body.toString()).toBe('<p>for visitor 2</p>');
    secondVisitorAnswered.open();
    expect(await first.ended).toBe('<p>for visitor 1</p>');
    expect(app.pageCache.metrics.snapshot().skipped['set-cookie']).toBe(before + 2);
  });
});

describe('a response its client left before it was answered', () => {
  const lockOf = async (path: string) => memcachedGet(memcached.address, `${keyOf(path)}.lock`);
  /** A GET the client gives up on after `ms`. */
  const abandoned = (port: number, path: string, ms: number): Promise<void> =>
    new Promise((resolve) => {
      const client = httpRequest({ host: '127.0.0.1', port, path, headers: { host: HOST }, agent: false });
      client.on('error', () => resolve());
      client.end();
      setTimeout(() => {
        client.destroy();
        resolve();
      }, ms);
    });

  it('is counted once as aborted, and a head the app sends afterwards leaves alone the lock of the process that renders the page by then', async () => {
    const config = testConfig([memcached.address], { gzip: false });
    const [a, b] = [pageCache(config, { ...STEADY, singleFlightWaitMs: WAIT_MS }), pageCache(config, { ...STEADY, singleFlightWaitMs: WAIT_MS })] as const;
    const late = gate();
    const bRenders = gate();
    const bMayAnswer = gate();
    const slow = await listen((req, res) =>
      a(req, res, () => {
        // A slow render whose visitor leaves meanwhile; then the app answers with a refused head.
        void late.opened.then(() => {
          res.writeHead(500, { 'Content-Type': 'text/html; charset=utf-8' });
          res.end('<p>failed</p>');
        });
      }),
    );
    const other = await listen((req, res) =>
      b(req, res, () => {
        bRenders.open();
        void bMayAnswer.opened.then(() => {
          res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
          res.end('<p>the page</p>');
        });
      }),
    );
    try {
      await abandoned(slow.port, '/left', 100);
      await eventually(() => a.metrics.snapshot().skipped.aborted === 1, 'the abort to be counted');
      await eventually(async () => (await lockOf('/left')) === null, 'the first render lock to go');
      const answered = requestTo(other.port, '/left');
      await bRenders.opened;
      expect(await lockOf('/left')).not.toBeNull();
      late.open();
      await sleep(200);
      expect(await lockOf('/left')).not.toBeNull();
      expect([a.metrics.snapshot().skipped.aborted, a.metrics.snapshot().skipped.status ?? 0]).toEqual([1, 0]);
      bMayAnswer.open();
      expect((await answered).body.toString()).toBe('<p>the page</p>');
    } finally {
      late.open();
      bMayAnswer.open();
      await slow.stop();
      await other.stop();
      await a.close();
      await b.close();
    }
  });

  it('lets the next request go at once when the client left while its render lock was being taken', async () => {
    const config = testConfig([memcached.address], { gzip: false });
    const cache = pageCache(config, { ...STEADY, singleFlightWaitMs: WAIT_MS });
    let renders = 0;
    const server = await listen((req, res) => {
      // The client is gone before the middleware has followed the response (its lookups are awaited).
      if (renders === 0) req.socket.destroy();
      cache(req, res, () => {
        renders++;
        res.setHeader('Content-Type', 'text/html; charset=utf-8');
        res.end(`<p>render ${renders}</p>`);
      });
    });
    try {
      await abandoned(server.port, '/gone', 50);
      await eventually(() => cache.metrics.snapshot().skipped.aborted === 1, 'the abort to be counted');
      const asked = Date.now();
      const next = await requestTo(server.port, '/gone');
      expect(Date.now() - asked).toBeLessThan(AT_ONCE_MS);
      // The app rendered for the visitor who left, too: this is the second render.
      expect(next.body.toString()).toBe('<p>render 2</p>');
    } finally {
      await server.stop();
      await cache.close();
    }
  });
});

describe('the Fastify plugin stores only a body it saw', () => {
  it('never stores a hijacked reply or a web-stream payload (it would store them empty): they are counted as body-unseen', async () => {
    const app = Fastify();
    await app.register(fastifyPageCache, { config: testConfig([memcached.address], { gzip: false }), ...STEADY });
    app.get('/hijacked', async (_request, reply) => {
      reply.hijack();
      reply.raw.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
      reply.raw.end('<p>the whole page</p>');
    });
    app.get('/web-stream', async (_request, reply) => {
      const body = new ReadableStream({
        start(controller) {
          controller.enqueue(new TextEncoder().encode('<p>a web stream</p>'));
          controller.close();
        },
      });
      return reply.type('text/html; charset=utf-8').send(body);
    });
    app.get('/sent', async (_request, reply) => reply.type('text/html; charset=utf-8').send('<p>sent</p>'));
    await app.listen({ port: 0, host: '127.0.0.1' });
    const port = (app.server.address() as { port: number }).port;
    try {
      expect((await requestTo(port, '/hijacked')).body.toString()).toBe('<p>the whole page</p>');
      expect((await requestTo(port, '/web-stream')).body.toString()).toBe('<p>a web stream</p>');
      expect((await requestTo(port, '/sent')).body.toString()).toBe('<p>sent</p>');
      await eventually(async () => (await memcachedGet(memcached.address, keyOf('/sent'))) !== null, 'the page sent whole to be stored');
      expect(await memcachedGet(memcached.address, keyOf('/hijacked'))).toBeNull();
      expect(await memcachedGet(memcached.address, keyOf('/web-stream'))).toBeNull();
      expect(app.pageCache.metrics.snapshot().skipped['body-unseen']).toBe(2);
    } finally {
      await app.close();
    }
  });
});
