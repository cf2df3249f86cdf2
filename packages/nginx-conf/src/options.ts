import { NginxConfOptionError } from './errors.js';

/** How nginx computes the md5 of the key. All three give the same lowercase hex as md5sum. */
export type Md5Backend = 'set_misc' | 'lua' | 'njs';

/** The module that removes the config's ignoreParams from the URI before the key is hashed. */
export type NormalizeBackend = 'lua' | 'njs';

/** Measured fastest by bench:hit (see the README) on a URI with tracking parameters. */
export const DEFAULT_NORMALIZE: NormalizeBackend = 'lua';

export interface RenderOptions {
  /** Print a complete nginx.conf that `nginx -c` runs as it is, rather than a snippet for `http {}`. Default false. */
  standalone?: boolean;
  /** With `standalone`: the absolute folder for the pid file, logs and temp paths. */
  prefix?: string;
  /** The module that computes the md5 key. Default "set_misc" (pure C, the cheapest). */
  md5?: Md5Backend;
  /**
   * With md5 "set_misc": the module that removes the config's `ignoreParams` from the request URI
   * (set_misc cannot). Default "lua". With md5 "lua" or "njs" that module does it, and this must be
   * left out or name it.
   */
  normalize?: NormalizeBackend;
  /** With md5 or normalize "njs": absolute path of the module written by `renderNjsKeyModule`. */
  njsModulePath?: string;
  /** Where Debian keeps nginx's dynamic modules, for standalone load_module lines. Default /usr/lib/nginx/modules. */
  modulesDir?: string;
  /** memcached_buffer_size: a page is relayed in pieces of this size, so make it hold a whole page. Default "128k". */
  memcachedBufferSize?: string;
  /** Idle upstream connections kept per nginx worker to memcached. Default 64. */
  memcachedKeepalive?: number;
  /** How long nginx waits for memcached before the app renders instead. Default "250ms". */
  memcachedTimeout?: string;
  /**
   * How long nginx keeps an idle connection to the app. It must stay below the app server's own
   * keep-alive timeout (Node's http server: keepAliveTimeout, 5 s), or a request nginx sends as the
   * app closes the connection gets 502. Default "4s".
   */
  appKeepaliveTimeout?: string;
  /** Standalone: worker_processes. Default "auto". */
  workerProcesses?: number | 'auto';
  /** Standalone: the user workers run as when nginx starts as root. Default: nginx's own default. */
  user?: string;
  /** Standalone: write an access log under the prefix. Default true. */
  accessLog?: boolean;
  /**
   * With the config's `microcache` on: the folder of nginx's micro-cache, best on tmpfs; the lookup
   * server's socket is `<folder>.sock`. Default `<prefix>/microcache` standalone, else
   * /dev/shm/sitecache-microcache.
   */
  microcachePath?: string;
  /** With `microcache`: the most the micro-cache's files may take (`max_size`). Default "256m". */
  microcacheMaxSize?: string;
  /** With `microcache`: the size of each of the 8 proxy buffers a page is read into. Default "16k". */
  microcacheBufferSize?: string;
  /**
   * Expose the key nginx computed: as `X-Sitecache-Key` on hits and to the app on misses.
   * For tests only: it tells anyone the key template.
   */
  debugKeyHeader?: boolean;
}

export type ResolvedOptions = Required<Omit<RenderOptions, 'prefix' | 'njsModulePath' | 'user' | 'microcachePath'>> &
  Pick<RenderOptions, 'prefix' | 'njsModulePath' | 'user' | 'microcachePath'>;

const SIZE = /^\d+[km]?$/;
const DURATION = /^\d+(ms|s)?$/;
const SAFE_PATH = /^\/[^\s;{}"'$\\]*$/;

export function resolveOptions(options: RenderOptions): ResolvedOptions {
  const resolved: ResolvedOptions = {
    standalone: options.standalone ?? false,
    prefix: options.prefix,
    md5: options.md5 ?? 'set_misc',
    normalize: options.normalize ?? (options.md5 === 'lua' || options.md5 === 'njs' ? options.md5 : DEFAULT_NORMALIZE),
    njsModulePath: options.njsModulePath,
    modulesDir: options.modulesDir ?? '/usr/lib/nginx/modules',
    memcachedBufferSize: options.memcachedBufferSize ?? '128k',
    memcachedKeepalive: options.memcachedKeepalive ?? 64,
    memcachedTimeout: options.memcachedTimeout ?? '250ms',
    appKeepaliveTimeout: options.appKeepaliveTimeout ?? '4s',
    workerProcesses: options.workerProcesses ?? 'auto',
    user: options.user,
    accessLog: options.accessLog ?? true,
    debugKeyHeader: options.debugKeyHeader ?? false,
    microcachePath: options.microcachePath,
    microcacheMaxSize: options.microcacheMaxSize ?? '256m',
    microcacheBufferSize: options.microcacheBufferSize ?? '16k',
  };
  const fail = (option: string, expected: string): never => {
    throw new NginxConfOptionError(option, expected, (options as Record<string, unknown>)[option]);
  };
  if (!['set_misc', 'lua', 'njs'].includes(resolved.md5)) fail('md5', '"set_misc", "lua" or "njs"');
  if (!['lua', 'njs'].includes(resolved.normalize)) fail('normalize', '"lua" or "njs"');
  if (resolved.md5 !== 'set_misc' && resolved.normalize !== resolved.md5) {
    fail('normalize', `"${resolved.md5}" or nothing: with md5 "${resolved.md5}" that module removes ignoreParams too`);
  }
  if ((resolved.md5 === 'njs' || resolved.normalize === 'njs') && !(resolved.njsModulePath && SAFE_PATH.test(resolved.njsModulePath))) {
    fail('njsModulePath', 'an absolute path (md5 or normalize "njs" imports the key module from it)');
  }
  if (resolved.standalone && !(resolved.prefix && SAFE_PATH.test(resolved.prefix))) {
    fail('prefix', 'an absolute folder without spaces or quotes (standalone keeps pid, logs and temp files there)');
  }
  if (!SAFE_PATH.test(resolved.modulesDir)) fail('modulesDir', 'an absolute folder');
  if (!SIZE.test(resolved.memcachedBufferSize)) fail('memcachedBufferSize', 'an nginx size such as "128k"');
  if (!Number.isInteger(resolved.memcachedKeepalive) || resolved.memcachedKeepalive < 1) {
    fail('memcachedKeepalive', 'a whole number of connections, at least 1');
  }
  if (!DURATION.test(resolved.memcachedTimeout)) fail('memcachedTimeout', 'an nginx time such as "250ms" or "1s"');
  if (!DURATION.test(resolved.appKeepaliveTimeout) || parseInt(resolved.appKeepaliveTimeout, 10) === 0) {
    fail('appKeepaliveTimeout', "an nginx time above 0 and below the app server's keep-alive timeout, such as \"4s\"");
  }
  if (resolved.microcachePath !== undefined && !SAFE_PATH.test(resolved.microcachePath)) fail('microcachePath', 'an absolute folder without spaces or quotes');
  if (!SIZE.test(resolved.microcacheMaxSize)) fail('microcacheMaxSize', 'an nginx size such as "256m"');
  if (!SIZE.test(resolved.microcacheBufferSize)) fail('microcacheBufferSize', 'an nginx size such as "16k"');
  const workers = resolved.workerProcesses;
  if (workers !== 'auto' && !(Number.isInteger(workers) && workers >= 1)) fail('workerProcesses', '"auto" or a whole number');
  if (resolved.user !== undefined && !/^[a-z_][a-z0-9_-]*( [a-z_][a-z0-9_-]*)?$/i.test(resolved.user)) {
    fail('user', 'a user name, optionally followed by a group name');
  }
  return resolved;
}
