// The settings module, as in Django: everything the site reads from outside, in one place.
// sitecache.config.json is the file nginx's config is generated from too; the environment says
// where this process's files are and which ports it got.
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig, type SitecacheConfig } from '@sitecache/config';

export interface Settings {
  /** The sitecache config shared with nginx. */
  readonly cache: SitecacheConfig;
  /** The site's SQLite database. */
  readonly databasePath: string;
  /** The legacy export the migration reads. */
  readonly legacyDatabasePath: string;
  /** Where runserver listens: the first `app` entry of the config unless PORT says otherwise. */
  readonly port: number;
  readonly host: string;
  /** Serve hits from memcached in the app itself (for running without nginx). */
  readonly serveFromCache: boolean;
  /** Secret that signs session cookies. */
  readonly secretKey: string;
  /** The folder of the templates. */
  readonly templateDir: string;
}

const here = dirname(fileURLToPath(import.meta.url));
// Both site/settings.ts (tsx) and dist/site/settings.js (built) find the project folder.
export const PROJECT_DIR = resolve(here, here.includes(`${join('dist', 'site')}`) ? '../..' : '..');

export function loadSettings(env: NodeJS.ProcessEnv = process.env): Settings {
  const cache = loadConfig(env.SITECACHE_CONFIG ?? join(PROJECT_DIR, 'sitecache.config.json'));
  const [appHost = '127.0.0.1', appPort = '3000'] = (cache.app[0] ?? '').split(/:(?=\d+$)/);
  const dataDir = env.SITE_DATA_DIR ?? join(PROJECT_DIR, 'data');
  return {
    cache,
    databasePath: env.SITE_DATABASE ?? join(dataDir, 'site.db'),
    legacyDatabasePath: env.SITE_LEGACY_DATABASE ?? join(dataDir, 'legacy.db'),
    port: Number(env.PORT ?? appPort),
    host: env.HOST ?? appHost,
    serveFromCache: env.SITE_SERVE_FROM_CACHE === '1',
    secretKey: env.SITE_SECRET_KEY ?? 'development-only-secret: set SITE_SECRET_KEY in production',
    templateDir: join(PROJECT_DIR, 'site', 'templates'),
  };
}
