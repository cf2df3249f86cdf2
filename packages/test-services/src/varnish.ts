import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { requireBinary } from './binaries.js';
import { freePort, waitForListener } from './net.js';
import { spawnService, type ServiceProcess } from './process.js';
import { makeTempDir } from './tempdir.js';

export interface VarnishServer {
  /** The loopback port varnishd listens on. */
  readonly port: number;
  /** The instance's working folder (`-n`): what varnishstat and varnishadm are pointed at. */
  readonly workDir: string;
  readonly process: ServiceProcess;
  /** Every counter varnishstat shows for the instance, by name (`MAIN.n_object`, `MAIN.cache_hit`, ...). */
  counters(): Promise<Record<string, number>>;
  stop(): Promise<void>;
}

export interface VarnishOptions {
  /** The ports on 127.0.0.1 of the app Varnish fetches from; several are balanced round robin. */
  backends: number | readonly number[];
  /** malloc storage in megabytes (`-s malloc,<n>m`). Default 64. */
  mallocMb?: number;
  /**
   * VCL added after the backends: subroutines such as `sub vcl_backend_response { ... }`. A
   * `vcl_recv` here runs after the one that picks the backend. Default none: Varnish's built-in
   * rules decide what is cached, from the backend's Cache-Control.
   */
  vcl?: string;
  /** Runtime parameters (`-p name=value`), such as `{ thread_pools: 1, http_gzip_support: 'off' }`. */
  parameters?: Readonly<Record<string, string | number>>;
  /** Run varnishd and its child under `taskset -c <list>`, such as "0": every thread on those CPUs. */
  cpuList?: string;
}

/**
 * Starts varnishd in the foreground on a free loopback port in a temp folder, with malloc storage
 * and a VCL built from `options`, and waits until it accepts connections.
 */
export async function startVarnish(options: VarnishOptions): Promise<VarnishServer> {
  const varnishd = requireBinary('varnishd');
  const backends = typeof options.backends === 'number' ? [options.backends] : [...options.backends];
  if (backends.length === 0) throw new Error('startVarnish: name at least one backend port');
  const dir = await makeTempDir('varnish');
  const port = await freePort();
  const vclPath = join(dir.path, 'main.vcl');
  const workDir = join(dir.path, 'work');
  await writeFile(vclPath, renderVcl(backends, options.vcl ?? ''));
  const args = ['-F', '-n', workDir, '-a', `127.0.0.1:${port}`, '-f', vclPath, '-s', `malloc,${options.mallocMb ?? 64}m`];
  for (const [name, value] of Object.entries(options.parameters ?? {})) args.push('-p', `${name}=${value}`);
  // The child process (the cache itself) inherits the mask, which pinning varnishd's pid afterwards would miss.
  const varnish = options.cpuList
    ? spawnService(requireBinary('taskset'), ['-c', options.cpuList, varnishd, ...args])
    : spawnService(varnishd, args);
  try {
    await waitForListener({ host: '127.0.0.1', port }, 20_000, () => varnish.alive());
  } catch (error) {
    await varnish.stop();
    await dir.remove();
    throw new Error(`varnishd did not start: ${(error as Error).message}\n${varnish.stderr()}`, { cause: error });
  }
  return {
    port,
    workDir,
    process: varnish,
    async counters() {
      const { stdout } = await execa(requireBinary('varnishstat'), ['-n', workDir, '-1']);
      const counters: Record<string, number> = {};
      // One counter a line: name, value, rate per second, description.
      for (const line of stdout.split('\n')) {
        const [name, value] = line.trim().split(/\s+/);
        if (name && value && /^\d+$/.test(value)) counters[name] = Number(value);
      }
      return counters;
    },
    async stop() {
      await varnish.stop();
      await dir.remove();
    },
  };
}

function renderVcl(backends: readonly number[], extra: string): string {
  const names = backends.map((_, i) => `app${i}`);
  const lines = ['vcl 4.1;'];
  // One backend is Varnish's default; several need a director, picked per request in vcl_recv.
  if (backends.length > 1) lines.push('import directors;');
  backends.forEach((port, i) => lines.push(`backend ${names[i]} { .host = "127.0.0.1"; .port = "${port}"; }`));
  if (backends.length > 1) {
    lines.push(
      'sub vcl_init {',
      '    new apps = directors.round_robin();',
      ...names.map((name) => `    apps.add_backend(${name});`),
      '}',
      'sub vcl_recv { set req.backend_hint = apps.backend(); }',
    );
  }
  lines.push(extra, '');
  return lines.join('\n');
}
