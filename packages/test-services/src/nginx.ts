import { writeFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { requireBinary } from './binaries.js';
import { freePort, waitForListener } from './net.js';
import { spawnService, type ServiceProcess } from './process.js';
import { makeTempDir } from './tempdir.js';

export interface NginxServer {
  /** The loopback port nginx listens on. */
  readonly port: number;
  /** The prefix folder holding nginx.conf, logs, pid and temp paths. */
  readonly prefix: string;
  readonly process: ServiceProcess;
  /** nginx's error log so far: what a failing test prints. */
  errorLog(): Promise<string>;
  stop(): Promise<void>;
}

/** What a config renderer gets: the port to listen on and the folder to keep its files in. */
export interface NginxSlot {
  readonly port: number;
  readonly prefix: string;
}

/**
 * Starts nginx in the foreground from the config `render` returns for a free port and a fresh
 * prefix folder, after `nginx -t` accepted it, and waits until it accepts connections.
 */
export async function startNginx(render: (slot: NginxSlot) => string | Promise<string>): Promise<NginxServer> {
  const binary = requireBinary('nginx');
  const dir = await makeTempDir('nginx');
  const port = await freePort();
  const prefix = dir.path;
  const confPath = join(prefix, 'nginx.conf');
  await writeFile(confPath, await render({ port, prefix }));
  const args = ['-p', `${prefix}/`, '-c', confPath, '-e', join(prefix, 'error.log')];

  const test = await execa(binary, [...args, '-t'], { reject: false, all: true });
  if (test.exitCode !== 0) {
    await dir.remove();
    throw new Error(`nginx -t refused the config:\n${test.all}`);
  }
  const nginx = spawnService(binary, [...args, '-g', 'daemon off;']);
  const errorLog = (): Promise<string> => readFile(join(prefix, 'error.log'), 'utf8').catch(() => '');
  try {
    await waitForListener({ host: '127.0.0.1', port }, 10_000, () => nginx.alive());
  } catch (error) {
    await nginx.stop();
    const log = await errorLog();
    await dir.remove();
    throw new Error(`nginx did not start: ${(error as Error).message}\n${nginx.stderr()}${log}`, { cause: error });
  }
  return {
    port,
    prefix,
    process: nginx,
    errorLog,
    async stop() {
      await nginx.stop();
      await dir.remove();
    },
  };
}
