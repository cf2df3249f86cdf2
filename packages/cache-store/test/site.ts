import { execFile } from 'node:child_process';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { connect, createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseConfig, type SitecacheConfig } from '@sitecache/config';
import { renderNginxConf, type RenderOptions } from '@sitecache/nginx-conf';
import {
  freePort,
  memcachedCommand,
  sendRaw,
  spawnService,
  startMemcached,
  startNginx,
  type MemcachedServer,
  type NginxServer,
  type RawResponse,
  type ServiceProcess,
} from '@sitecache/test-services';
import { createPageStore, type PageStore } from '../src/index.js';

/** The host every test site serves. */
export const HOST = 'www.example.test';

export type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** A node:http server on a free loopback port. */
export async function listen(handler: Handler, port = 0): Promise<Server & { port: number; stop(): Promise<void> }> {
  const server = createServer(handler);
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return Object.assign(server, {
    port: (server.address() as AddressInfo).port,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
}

/** What a site's config may change from the defaults the tests use. */
/** `handler` behind `cache` on a port of its own; `arrived` hears of each request before the middleware does. */
export function listenBehind(cache: (req: IncomingMessage, res: ServerResponse, next: () => void) => void, handler: Handler, arrived?: () => void): ReturnType<typeof listen> {
  return listen((req, res) => {
    arrived?.();
    cache(req, res, () => handler(req, res));
  });
}

export type ConfigFields = Partial<Record<keyof SitecacheConfig, unknown>>;

export interface Site {
  readonly config: SitecacheConfig;
  readonly memcached: MemcachedServer[];
  readonly nginx: NginxServer;
  /** Sends a GET (or `method`) for `target` through nginx over a raw socket. */
  request(target: string, headers?: Record<string, string>, method?: string): Promise<RawResponse>;
  stop(): Promise<void>;
}

/**
 * memcached servers, the app on `appPort` and nginx running the generated standalone config,
 * all on loopback. The app is the caller's: it must listen on `appPort` (see `listen`).
 */
export async function startSite(options: {
  memcachedCount: number;
  /** How many of those listen on a unix socket rather than a loopback port. Default 0. */
  unixSockets?: number;
  appPort: number;
  fields?: ConfigFields;
  render?: RenderOptions;
  edit?: (conf: string) => string;
}): Promise<Site> {
  const memcached: MemcachedServer[] = [];
  try {
    for (let i = 0; i < options.memcachedCount; i++) {
      memcached.push(await startMemcached({ unixSocket: i < (options.unixSockets ?? 0) }));
    }
    const fields = {
      hosts: [HOST],
      memcached: memcached.map((m) => m.address),
      app: [`127.0.0.1:${options.appPort}`],
      bypassCookies: ['sessionid'],
      ...options.fields,
    };
    const config = parseConfig(fields);
    const nginx = await startNginx(({ port, prefix }) => {
      const conf = renderNginxConf(parseConfig({ ...fields, listen: `127.0.0.1:${port}` }), {
        standalone: true,
        prefix,
        workerProcesses: 1,
        accessLog: false,
        ...options.render,
      });
      return options.edit ? options.edit(conf) : conf;
    });
    return {
      config,
      memcached,
      nginx,
      request: (target, headers = {}, method = 'GET') => requestTo(nginx.port, target, headers, method),
      async stop() {
        await nginx.stop();
        for (const m of memcached) await m.stop();
      },
    };
  } catch (error) {
    for (const m of memcached) await m.stop();
    throw error;
  }
}

/** A port for an app that nginx's config must name before the app starts. */
export { freePort };

/** Resolves once `check` holds, polling; rejects after `timeoutMs` with `what` (text, or a function giving it then) in the message. */
export async function eventually(check: () => boolean | Promise<boolean>, what: string | (() => string), timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'string' ? what : what()}`);
}

/**
 * Store options for tests about what is stored and where, not about faults: timeouts long enough
 * that a loaded CI machine never turns a slow answer into a skipped page.
 */
export const STEADY = {
  connectTimeoutMs: 1_000,
  commandTimeoutMs: 3_000,
  maxPendingPerServer: 1_024,
  logger: { warn: (message: string) => console.warn(message) },
};

/** Runs `task` for every item with at most `limit` at a time, results in input order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, task: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      results[index] = await task(items[index] as T, index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/**
 * Seconds memcached itself says the item under `key` has left (-1: never expires), or undefined
 * when it holds no such item. The trailing `get` of a key nobody stores ends the reply with END.
 */
export async function remainingTtl(address: string, key: string): Promise<number | undefined> {
  const reply = await memcachedCommand(address, `mg ${key} t\r\nget sitecache-test-no-such-key\r\n`);
  const match = /^HD t(-?\d+)/.exec(reply);
  return match ? Number(match[1]) : undefined;
}

/** Sends `method target` (with `body`, if any) straight to a server on `port` (no nginx), as a raw request. */
export function requestTo(port: number, target: string, headers: Record<string, string> = {}, method = 'GET', body = ''): Promise<RawResponse> {
  const lines = Object.entries({ Host: HOST, ...headers }).map(([name, value]) => `${name}: ${value}\r\n`);
  return sendRaw(port, `${method} ${target} HTTP/1.1\r\n${lines.join('')}Connection: close\r\n\r\n${body}`);
}

/** The config the app side of a test uses: one site on HOST over the given memcached servers. */
export function testConfig(memcached: readonly string[], fields: ConfigFields = {}): SitecacheConfig {
  return parseConfig({ hosts: [HOST], memcached, app: ['127.0.0.1:9'], bypassCookies: ['sessionid'], ...fields });
}

/** The headers without those that differ from one response to the next (Date) or by framing. */
export function headersWithout(headers: Readonly<Record<string, string>>, names: readonly string[]): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).filter(([name]) => !names.includes(name)));
}

/** A memcached stand-in that takes connections and commands and answers only when told to. */
export interface HeldMemcached {
  /** `127.0.0.1:port`, for `config.memcached`. */
  readonly address: string;
  /** Everything the clients sent so far, as latin1 text. */
  received(): string;
  /** Sends `reply` (such as "STORED\r\n") on every open connection. */
  answer(reply: string): void;
  stop(): Promise<void>;
}

/**
 * A deterministic "slow" memcached: commands arrive and wait until the test answers them, so a
 * test orders events instead of racing timers.
 */
export async function startHeldMemcached(): Promise<HeldMemcached> {
  const sockets = new Set<Socket>();
  let received = '';
  const server = createTcpServer((socket) => {
    sockets.add(socket);
    socket.on('data', (chunk) => (received += chunk.toString('latin1')));
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    address: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    received: () => received,
    answer(reply) {
      for (const socket of sockets) socket.write(reply);
    },
    stop() {
      for (const socket of sockets) socket.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/** A TCP relay to a real memcached that the test can cut: a memcached that fails when told. */
export interface CuttableMemcached {
  /** `127.0.0.1:port`, for `config.memcached`. */
  readonly address: string;
  /** Drops every connection and each new one at once, until `mend()`. */
  cut(): void;
  mend(): void;
  /** Holds what clients send `ms` before passing it on (0: at once), in order: a slow link. */
  delay(ms: number): void;
  stop(): Promise<void>;
}

export async function startCuttableMemcached(target: string): Promise<CuttableMemcached> {
  const [host = '127.0.0.1', port = '0'] = target.split(':');
  const sockets = new Set<Socket>();
  let cut = false;
  let delayMs = 0;
  const server = createTcpServer((client) => {
    if (cut) return void client.destroy();
    const upstream = connect(Number(port), host);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('error', () => undefined);
      socket.on('close', () => {
        sockets.delete(socket);
        client.destroy();
        upstream.destroy();
      });
    }
    // Each chunk waits its own delay from when it came: a constant delay keeps them in order.
    client.on('data', (chunk: Buffer) => (delayMs === 0 ? upstream.write(chunk) : setTimeout(() => upstream.write(chunk), delayMs)));
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    address: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    cut() {
      cut = true;
      for (const socket of sockets) socket.destroy();
    },
    mend() {
      cut = false;
    },
    delay(ms) {
      delayMs = ms;
    },
    stop() {
      for (const socket of sockets) socket.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/** App processes running test/fixtures/render-app.ts: pageCache in front of a render of `renderMs`. */
export interface AppProcesses {
  readonly ports: readonly number[];
  /** The renders every process has started so far: `{ pid, n, url }`. */
  renders(): { pid: number; n: number; url: string }[];
  /** What the processes logged besides their renders: sitecache's warnings. */
  warnings(): string[];
  /** SIGKILLs the process with this pid, as a crash would. */
  kill(pid: number): void;
  stop(): Promise<void>;
}

/** Starts `count` app processes (with tsx, from src), each on a port of its own. */
export async function startApps(count: number, settings: { config: SitecacheConfig; renderMs: number; options?: Record<string, unknown>; tags?: boolean }): Promise<AppProcesses> {
  const fixture = fileURLToPath(new URL('./fixtures/render-app.ts', import.meta.url));
  const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
  const env = withoutNodeOptions();
  const apps: ServiceProcess[] = [];
  const stop = async (): Promise<void> => {
    for (const app of apps) await app.stop();
  };
  try {
    for (let i = 0; i < count; i++) {
      apps.push(spawnService(process.execPath, ['--import', tsx, fixture], { env: { ...env, SITECACHE_TEST_APP: JSON.stringify(settings) } }));
    }
    const ports: number[] = [];
    for (const app of apps) {
      await eventually(() => /^ready \d+$/m.test(app.stderr()) || !app.alive(), () => `an app process to listen: ${app.stderr()}`, 20_000);
      const port = /^ready (\d+)$/m.exec(app.stderr());
      if (!port) throw new Error(`an app process exited: ${app.stderr()}`);
      ports.push(Number(port[1]));
    }
    return {
      ports,
      renders: () =>
        apps.flatMap((app) => [...app.stderr().matchAll(/^render (\d+) (\S+)$/gm)].map((m) => ({ pid: app.pid, n: Number(m[1]), url: m[2] as string }))),
      warnings: () => apps.flatMap((app) => app.stderr().split('\n').filter((line) => line !== '' && !/^(render|ready) /.test(line))),
      kill: (pid) => apps.find((app) => app.pid === pid)?.signal('SIGKILL'),
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/**
 * The bin as users run it, but from the source under test (through tsx's loader, resolved to an
 * absolute URL), so a test never runs a stale build.
 */
const CLI = ['--import', pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href, fileURLToPath(new URL('../src/cli.ts', import.meta.url))];

/** The environment without jest's --experimental-vm-modules, which is not for the processes a test starts. */
function withoutNodeOptions(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  return env;
}

/** Runs `sitecache ...args` and resolves with its exit code and output. */
export function sitecache(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [...CLI, ...args], { timeout: 20_000, env: withoutNodeOptions() }, (error, stdout, stderr) => {
      resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/**
 * A purge racing a render: two memcached servers, a store in this process that purges, and one app
 * process whose renders take `renderMs` (with `tags`, its pages are tagged). `stop()` ends them all.
 */
export interface PurgeRace {
  readonly servers: MemcachedServer[];
  readonly purger: PageStore;
  readonly apps: AppProcesses;
  stop(): Promise<void>;
}

export async function startPurgeRace(renderMs: number, tags = false): Promise<PurgeRace> {
  const servers = [await startMemcached(), await startMemcached()];
  const config = testConfig(servers.map((s) => s.address), { gzip: false, grace: 300 });
  const purger = createPageStore(config, STEADY);
  const apps = await startApps(1, { config, renderMs, tags, options: { serveFromCache: true, ...STEADY, logger: undefined } });
  return {
    servers,
    purger,
    apps,
    stop: async () => {
      await apps.stop();
      await purger.close();
      for (const s of servers) await s.stop();
    },
  };
}
