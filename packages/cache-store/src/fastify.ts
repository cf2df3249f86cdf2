import type { OutgoingHttpHeaders } from 'node:http';
import { Transform, type Readable } from 'node:stream';
import type { SitecacheConfigInput } from '@sitecache/config';
import type { FastifyInstance, FastifyPluginCallback, FastifyReply, FastifyRequest } from 'fastify';
import { BodyCapture } from './body-capture.js';
import type { PageCacheMetrics } from './metrics.js';
import { LOOKUP_FAILED, PageCache, type Admission, type PageCacheOptions, type RouteRule } from './page-cache.js';
import type { PageStore } from './page-store.js';
import { captureSurrogateKey, tagPage } from './tags.js';

export interface FastifyPageCacheOptions extends PageCacheOptions {
  /**
   * The sitecache config the generated nginx config was rendered from: the object as written in
   * sitecache.config.json, or what `loadConfig` returned. A bad field fails the registration with
   * ConfigError.
   */
  config: SitecacheConfigInput;
}

/** What the plugin decorates the Fastify instance with, as `fastify.pageCache`. */
export interface FastifyPageCache {
  readonly store: PageStore;
  readonly metrics: PageCacheMetrics;
}

declare module 'fastify' {
  interface FastifyInstance {
    pageCache: FastifyPageCache;
  }
  interface FastifyReply {
    /**
     * Adds tags to this page's `Surrogate-Key` header (see `tagPage`): one purge by any of them
     * removes the page. The header never reaches the visitor.
     */
    tagPage(...tags: string[]): FastifyReply;
  }
  interface FastifyContextConfig {
    /** This route's rule: `false` opts out of the cache, `{ ttl }` sets the seconds its pages live. */
    pageCache?: RouteRule;
  }
}

interface RequestState {
  readonly admission: Admission;
  body?: BodyCapture;
  /** onSend met a payload it copies; a hijacked reply, or a payload of another kind, is never stored. */
  copied: boolean;
  /** The response came from the cache, a concurrent render or a stale copy: nothing to capture. */
  served: boolean;
}

/**
 * The page cache as a Fastify plugin. Its hooks: onRequest answers hits (serveFromCache),
 * followers of a concurrent render and, while another process renders, the stale copy; onSend
 * copies the body; the raw response's writeHead applies what the status and headers decide, and
 * its finish stores the page.
 * It applies to the whole instance it is registered on. The store closes with the instance.
 */
export const fastifyPageCache: FastifyPluginCallback<FastifyPageCacheOptions> = Object.assign(
  (fastify: FastifyInstance, options: FastifyPageCacheOptions, done: (error?: Error) => void): void => {
    const { config, ...rest } = options;
    let cache: PageCache;
    try {
      cache = new PageCache(config, rest);
    } catch (error) {
      done(error as Error);
      return;
    }
    const states = new WeakMap<FastifyRequest, RequestState>();
    fastify.decorate('pageCache', { store: cache.store, metrics: cache.metrics });
    fastify.decorateReply('tagPage', function (this: FastifyReply, ...tags: string[]): FastifyReply {
      return tagPage(this, ...tags);
    });

    fastify.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
      try {
        return await onRequest(request, reply);
      } catch (error) {
        // The route still runs: the cache is never the reason a page fails.
        cache.fail('the onRequest hook', error);
        states.delete(request);
        return reply.sent ? reply : undefined;
      }
    });

    const onRequest = async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> => {
      reply.header(cache.config.cacheHeader, 'MISS');
      // Whatever becomes of the request, the page's tags never reach the visitor.
      const tags = captureSurrogateKey(reply.raw);
      const admission = cache.admit(request.raw, request.routeOptions.config?.pageCache);
      const state: RequestState = { admission, served: true, copied: false };
      states.set(request, state);
      const hit = await cache.lookup(admission, request.raw);
      if (hit === LOOKUP_FAILED) return undefined;
      if (hit) return reply.code(200).headers(hit.headers).send(request.method === 'HEAD' ? undefined : hit.body);
      if (admission.refusal !== undefined) {
        cache.refuse(admission.refusal);
        return undefined;
      }
      const outcome = await cache.miss(admission, request.raw);
      if ('send' in outcome) return reply.code(outcome.send.status).headers(outcome.send.headers).send(outcome.send.body);
      state.served = false;
      state.body = new BodyCapture(cache.maxBodyBytes);
      // Fastify passes its headers to the raw writeHead; the reply's are read only for a head sent otherwise.
      cache.follow(
        admission,
        outcome.render,
        reply.raw,
        tags,
        {
          body: () => (state.body && !state.body.overflowed ? state.body.body() : undefined),
          seen: () => state.copied,
          stop: () => (state.body = undefined),
        },
        () => reply.getHeaders() as OutgoingHttpHeaders,
      );
      return undefined;
    };

    fastify.addHook('onSend', async (request: FastifyRequest, _reply: FastifyReply, payload: unknown) => {
      const state = states.get(request);
      if (!state || state.served || !state.body) return payload;
      if (payload === undefined || payload === null) {
        // No body at all: what was sent is the empty page.
        state.copied = true;
        return payload;
      }
      if (typeof payload === 'string' || payload instanceof Uint8Array) {
        state.copied = true;
        // The whole payload at once, as end() takes it: a Buffer is held by reference (the route
        // handed it over to send()).
        state.body.end(payload);
        return payload;
      }
      if (typeof (payload as Readable).pipe === 'function') {
        state.copied = true;
        // A stream: copy its chunks as they pass, within the size guard, until its page is refused.
        const copy = new Transform({
          transform(chunk: Buffer, _encoding, callback) {
            state.body?.write(chunk);
            callback(null, chunk);
          },
        });
        (payload as Readable).on('error', (error) => copy.destroy(error));
        return (payload as Readable).pipe(copy);
      }
      return payload;
    });

    fastify.addHook('onClose', async () => {
      if (!rest.store) await cache.close();
    });
    done();
  },
  {
    // Hooks for the whole instance, not only an encapsulated child context (what fastify-plugin does).
    [Symbol.for('skip-override')]: true,
    [Symbol.for('fastify.display-name')]: '@sitecache/cache-store',
  },
);
