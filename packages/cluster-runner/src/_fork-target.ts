import { createRequire } from 'node:module';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** A script the runner forks, and the Node flags it needs to load. */
export interface ForkTarget {
  readonly path: string;
  readonly execArgv: readonly string[];
}

/**
 * The entry script `name` (launcher-entry, worker-entry) beside the module at `moduleUrl`, with
 * that module's own extension: `.js` or `.cjs` from the build, `.ts` when the source itself runs
 * (tests under jest). A `.ts` entry is forked with tsx's loader, resolved from here to an absolute
 * URL because the child starts in the job's cwd, where a bare `tsx` may not resolve.
 */
export function forkTarget(name: string, moduleUrl: string): ForkTarget {
  const module = fileURLToPath(moduleUrl);
  const extension = extname(module);
  const path = join(dirname(module), `${name}${extension}`);
  if (extension !== '.ts') return { path, execArgv: [] };
  const tsx = pathToFileURL(createRequire(moduleUrl).resolve('tsx')).href;
  return { path, execArgv: ['--import', tsx] };
}
