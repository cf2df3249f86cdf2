import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/** How each service binary is installed on Debian, where the project runs its tests and CI. */
const INSTALL: Record<string, string> = {
  nginx: 'apt-get install -y nginx libnginx-mod-http-set-misc libnginx-mod-http-lua libnginx-mod-http-js',
  memcached: 'apt-get install -y memcached',
  wrk: 'apt-get install -y wrk',
  parallel: 'apt-get install -y parallel',
  'redis-server': 'apt-get install -y redis-server',
  chromium: 'apt-get install -y chromium',
  varnishd: 'apt-get install -y varnish',
  varnishstat: 'apt-get install -y varnish',
};

/** A binary a test needs is not installed. Never a skip: the message says how to install it. */
export class MissingBinaryError extends Error {
  override readonly name = 'MissingBinaryError';
  readonly binary: string;

  constructor(binary: string) {
    const how = INSTALL[binary] ?? `install ${binary}`;
    super(`"${binary}" is not on PATH. Install it with: ${how} (or run \`pnpm run setup\`, which does it for you)`);
    this.binary = binary;
  }
}

const SEARCH_PATH = ['/usr/sbin', '/usr/local/sbin', '/sbin'];

/** The absolute path of `binary`, searching PATH and the sbin folders where Debian puts daemons. */
export function requireBinary(binary: string): string {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), ...SEARCH_PATH].filter(Boolean);
  for (const dir of dirs) {
    const candidate = join(dir, binary);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this folder
    }
  }
  throw new MissingBinaryError(binary);
}
