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
  readonly memcached: MemcachedServer;
  readonly nginx: NginxServer;
  /** The app process (`manage runserver`). */
  app: ServiceProcess;
  readonly appPort: number;
  /** The environment the app and `manage` commands run with. */
  readonly env: NodeJS.ProcessEnv;
  /** Starts the app again after a stop. */
  restartApp(): Promise<void>;
  stop(): Promise<void>;
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
export async function startStack(dataDir: string, options: { gzip?: boolean } = {}): Promise<Stack> {
  const base = loadSettings({ ...process.env, SITE_DATA_DIR: dataDir }).cache;
  const memcached = await startMemcached();
  const appPort = await freePort();
  const dir = await makeTempDir('pixelpress');
  const configPath = join(dir.path, 'sitecache.config.json');
  let config: SitecacheConfig | undefined;
  const env: NodeJS.ProcessEnv = { ...process.env, SITECACHE_CONFIG: configPath, SITE_DATA_DIR: dataDir, PORT: String(appPort), HOST: '127.0.0.1' };

  let app: ServiceProcess | undefined;
  let nginx: NginxServer | undefined;
  const startApp = async (): Promise<ServiceProcess> => {
    const started = spawnService(process.execPath, [MANAGE, 'runserver'], { env });
    await waitForListener({ host: '127.0.0.1', port: appPort }, 15_000, () => started.alive()).catch(async (error: Error) => {
      await started.stop();
      throw new Error(`the app did not start: ${error.message}\n${started.stderr()}`, { cause: error });
    });
    return started;
  };
  try {
    nginx = await startNginx(async ({ port, prefix }) => {
      config = parseConfig({
        ...base,
        hosts: [...base.hosts, '127.0.0.1', 'localhost'],
        listen: `127.0.0.1:${port}`,
        memcached: [memcached.address],
        app: [`127.0.0.1:${appPort}`],
        gzip: options.gzip ?? base.gzip,
      });
      await writeFile(configPath, JSON.stringify(config, null, 2));
      return renderNginxConf(config, { standalone: true, prefix, workerProcesses: 1 });
    });
    app = await startApp();
  } catch (error) {
    await nginx?.stop();
    await memcached.stop();
    await dir.remove();
    throw error;
  }
  const stack: Stack = {
    config: config as SitecacheConfig,
    configPath,
    memcached,
    nginx,
    app,
    appPort,
    env,
    async restartApp() {
      await stack.app.stop();
      stack.app = await startApp();
    },
    async stop() {
      await stack.app.stop();
      await nginx?.stop();
      await memcached.stop();
      await dir.remove();
    },
  };
  return stack;
}
