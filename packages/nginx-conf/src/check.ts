import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { SitecacheConfigInput } from '@sitecache/config';
import { NginxCheckError } from './errors.js';
import type { RenderOptions } from './options.js';
import { renderNginxConf, renderNjsKeyModule } from './render.js';

const run = promisify(execFile);

/**
 * Runs `nginx -t` on the config these options render, as a standalone file in a temp folder
 * (the snippet is the same http block, so this checks it too), and returns nginx's message.
 * @throws NginxCheckError with nginx's own message when nginx refuses it.
 */
export async function checkNginxConf(
  config: SitecacheConfigInput,
  options: RenderOptions = {},
  nginxBinary = 'nginx',
): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'sitecache-nginx-check-'));
  try {
    const njsModulePath = join(dir, 'sitecache-key.js');
    const njs = options.md5 === 'njs' || options.normalize === 'njs';
    if (njs) await writeFile(njsModulePath, renderNjsKeyModule(config));
    const file = join(dir, 'nginx.conf');
    const text = renderNginxConf(config, {
      ...options,
      standalone: true,
      prefix: dir,
      ...(njs ? { njsModulePath } : {}),
    });
    await writeFile(file, text);
    try {
      const { stderr } = await run(nginxBinary, ['-t', '-p', `${dir}/`, '-c', file, '-e', join(dir, 'error.log')], {
        env: { ...process.env, PATH: `${process.env.PATH ?? ''}:/usr/sbin:/usr/local/sbin` },
      });
      return stderr.trim();
    } catch (error) {
      const failure = error as { code?: string; stderr?: string };
      if (failure.code === 'ENOENT') {
        throw new NginxCheckError(`"${nginxBinary}" is not installed. Install it with: apt-get install -y nginx libnginx-mod-http-set-misc libnginx-mod-http-lua`);
      }
      throw new NginxCheckError((failure.stderr ?? String(error)).trim());
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
