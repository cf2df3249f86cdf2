import { requireBinary } from './binaries.js';
import { freePort, waitForListener } from './net.js';
import { spawnService, type ServiceProcess } from './process.js';
import { makeTempDir } from './tempdir.js';

export interface RedisServer {
  /** `redis://127.0.0.1:PORT/0`, as cluster-run's --queue takes it. */
  readonly url: string;
  readonly port: number;
  /** The server's working folder: its AOF lives here. */
  readonly dir: string;
  readonly process: ServiceProcess;
  /** Stops it (SIGTERM: it writes its AOF and exits) and starts it again on the same port and folder. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export interface RedisOptions {
  /** Keep an append-only file (--appendonly yes), so a restart loses nothing. Default false. */
  appendOnly?: boolean;
  /** --maxmemory-policy; default noeviction, which BullMQ needs. */
  maxmemoryPolicy?: string;
}

/**
 * Starts redis-server on a free loopback port in a temp folder, without RDB snapshots, and waits
 * until it accepts connections.
 */
export async function startRedis(options: RedisOptions = {}): Promise<RedisServer> {
  const binary = requireBinary('redis-server');
  const dir = await makeTempDir('redis');
  const port = await freePort();
  const args = [
    '--port', String(port),
    '--bind', '127.0.0.1',
    '--dir', dir.path,
    '--save', '',
    '--appendonly', options.appendOnly ? 'yes' : 'no',
    '--maxmemory-policy', options.maxmemoryPolicy ?? 'noeviction',
    '--daemonize', 'no',
  ];
  let current: ServiceProcess;
  const launch = async (): Promise<void> => {
    current = spawnService(binary, args);
    try {
      await waitForListener({ host: '127.0.0.1', port }, 10_000, () => current.alive());
    } catch (error) {
      await current.stop();
      throw new Error(`redis-server did not start: ${(error as Error).message}\n${current.stderr()}`, { cause: error });
    }
  };
  await launch();
  return {
    url: `redis://127.0.0.1:${port}/0`,
    port,
    dir: dir.path,
    get process() {
      return current;
    },
    async restart() {
      await current.stop();
      await launch();
    },
    async stop() {
      await current.stop();
      await dir.remove();
    },
  };
}
