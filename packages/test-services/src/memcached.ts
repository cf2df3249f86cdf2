import { join } from 'node:path';
import { requireBinary } from './binaries.js';
import { freePort, waitForListener } from './net.js';
import { spawnService, type ServiceProcess } from './process.js';
import { makeTempDir } from './tempdir.js';

export interface MemcachedServer {
  /** The server as nginx's upstream and sitecache.config.json name it: `127.0.0.1:PORT` or `unix:/path`. */
  readonly address: string;
  readonly process: ServiceProcess;
  /** Starts it again on the same address after a stop or a kill (an empty cache, as after a crash). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export interface MemcachedOptions {
  /** Cache size in megabytes (memcached -m). Default 64. */
  memoryMb?: number;
  /** Listen on a unix socket in a temp dir instead of a loopback port. */
  unixSocket?: boolean;
  /** Largest item memcached accepts (memcached -I), such as "1m". */
  maxItemSize?: string;
}

/** Starts memcached on a free loopback port (or a unix socket) and waits until it accepts connections. */
export async function startMemcached(options: MemcachedOptions = {}): Promise<MemcachedServer> {
  const binary = requireBinary('memcached');
  const dir = options.unixSocket ? await makeTempDir('memcached') : undefined;
  const port = options.unixSocket ? 0 : await freePort();
  const socketPath = dir ? join(dir.path, 'memcached.sock') : '';
  const args = ['-m', String(options.memoryMb ?? 64), '-t', '1', '-c', '1024'];
  // memcached refuses to run as root unless told which user to keep.
  if (process.getuid?.() === 0) args.push('-u', 'root');
  if (options.maxItemSize) args.push('-I', options.maxItemSize);
  if (dir) args.push('-s', socketPath, '-a', '0777');
  else args.push('-l', '127.0.0.1', '-p', String(port), '-U', '0');

  let current: ServiceProcess;
  const launch = async (): Promise<void> => {
    current = spawnService(binary, args);
    const target = dir ? { path: socketPath } : { host: '127.0.0.1', port };
    try {
      await waitForListener(target, 10_000, () => current.alive());
    } catch (error) {
      await current.stop();
      throw new Error(`memcached did not start: ${(error as Error).message}\n${current.stderr()}`, { cause: error });
    }
  };
  await launch();
  return {
    address: dir ? `unix:${socketPath}` : `127.0.0.1:${port}`,
    get process() {
      return current;
    },
    async restart() {
      await current.stop();
      await launch();
    },
    async stop() {
      await current.stop();
      await dir?.remove();
    },
  };
}
