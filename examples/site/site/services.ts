// Starting the whole stack for the demo and the end-to-end tests: memcached, the app and nginx on
// free loopback ports, from one runtime copy of sitecache.config.json, and stopping all of it.
import { writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { parseConfig, type SitecacheConfig } from '@sitecache/config';
import { renderNginxConf } from '@sitecache/nginx-conf';
import {
  freePort,
  makeTempDir,
  spawnService,
  startMemcached,
  startNginx,
  waitForListener,
  type MemcachedServer,
  type NginxServer,
  type ServiceProcess,
} from '@sitecache/test-services';
import { loadSettings, PROJECT_DIR } from './settings.js';

export interface Stack {
  readonly config: SitecacheConfig;
  readonly configPath: string;
  /** The first memcached server. */
  readonly memcached: MemcachedServer;
  /** Every memcached server, in the config's order. */
  readonly memcachedServers: readonly MemcachedServer[];
  readonly nginx: NginxServer;
  /** The first app process (`manage runserver`). */
  readonly app: ServiceProcess;
  readonly appPort: number;
  /** Every app process, in the config's order; `restartApp` replaces entries. */
  readonly apps: ServiceProcess[];
  readonly appPorts: readonly number[];
  /** The environment the app and `manage` commands run with (the first app's port). */
  readonly env: NodeJS.ProcessEnv;
  /** Starts app `index` (default every app) again after a stop or a kill. */
  restartApp(index?: number): Promise<void>;
  stop(): Promise<void>;
}

export interface StackOptions {
  gzip?: boolean;
  /** App processes behind nginx. Default 1. */
  apps?: number;
  /** memcached servers, sharded by nginx's hash ring. Default 1. */
  memcachedServers?: number;
  /** Seconds a page stays fresh (config `ttl`). Default: the project's config. */
  ttl?: number;
}

export const MANAGE = join(PROJECT_DIR, 'dist', 'manage.js');

/** The `cluster-run` bin of @sitecache/cluster-runner, as its package.json names it. */
export function clusterRunBin(): string {
  const require = createRequire(import.meta.url);
  const manifest = require.resolve('@sitecache/cluster-runner/package.json');
  const { bin } = require(manifest) as { bin: Record<string, string> };
  return join(dirname(manifest), bin['cluster-run'] as string);
}

/**
 * Starts memcached, the app and nginx for the site whose data is in `dataDir`. The runtime config
 * is the project's sitecache.config.json with this run's ports, plus 127.0.0.1 and localhost as
 * hosts so a browser on this machine can open it.
 */
export async function startStack(dataDir: string, options: StackOptions = {}): Promise<Stack> {
  const base = loadSettings({ ...process.env, SITE_DATA_DIR: dataDir }).cache;
  const memcachedServers: MemcachedServer[] = [];
  const apps: ServiceProcess[] = [];
  const appPorts: number[] = [];
  for (let i = 0; i < (options.apps ?? 1); i++) appPorts.push(await freePort());
  const dir = await makeTempDir('pixelpress');
  const configPath = join(dir.path, 'sitecache.config.json');
  let config: SitecacheConfig | undefined;
  const env: NodeJS.ProcessEnv = { ...process.env, SITECACHE_CONFIG: configPath, SITE_DATA_DIR: dataDir, PORT: String(appPorts[0]), HOST: '127.0.0.1' };

  let nginx: NginxServer | undefined;
  const startApp = async (port: number): Promise<ServiceProcess> => {
    const started = spawnService(process.execPath, [MANAGE, 'runserver'], { env: { ...env, PORT: String(port) } });
    await waitForListener({ host: '127.0.0.1', port }, 15_000, () => started.alive()).catch(async (error: Error) => {
      await started.stop();
      throw new Error(`the app did not start: ${error.message}\n${started.stderr()}`, { cause: error });
    });
    return started;
  };
  try {
    for (let i = 0; i < (options.memcachedServers ?? 1); i++) memcachedServers.push(await startMemcached());
    nginx = await startNginx(async ({ port, prefix }) => {
      config = parseConfig({
        ...base,
        hosts: [...base.hosts, '127.0.0.1', 'localhost'],
        listen: `127.0.0.1:${port}`,
        memcached: memcachedServers.map((server) => server.address),
        app: appPorts.map((appPort) => `127.0.0.1:${appPort}`),
        gzip: options.gzip ?? base.gzip,
        ttl: options.ttl ?? base.ttl,
      });
      await writeFile(configPath, JSON.stringify(config, null, 2));
      return renderNginxConf(config, { standalone: true, prefix, workerProcesses: 1 });
    });
    for (const port of appPorts) apps.push(await startApp(port));
  } catch (error) {
    await Promise.all(apps.map((app) => app.stop()));
    await nginx?.stop();
    await Promise.all(memcachedServers.map((server) => server.stop()));
    await dir.remove();
    throw error;
  }
  const stack: Stack = {
    config: config as SitecacheConfig,
    configPath,
    memcached: memcachedServers[0] as MemcachedServer,
    memcachedServers,
    nginx,
    get app() {
      return apps[0] as ServiceProcess;
    },
    appPort: appPorts[0] as number,
    apps,
    appPorts,
    env,
    async restartApp(index?: number) {
      const which = index === undefined ? appPorts.map((_, i) => i) : [index];
      for (const i of which) {
        await apps[i]?.stop();
        apps[i] = await startApp(appPorts[i] as number);
      }
    },
    async stop() {
      await Promise.all(apps.map((app) => app.stop()));
      await nginx?.stop();
      await Promise.all(memcachedServers.map((server) => server.stop()));
      await dir.remove();
    },
  };
  return stack;
}
