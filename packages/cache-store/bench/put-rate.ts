// How fast the store takes pages: shared by bench:store's writer rows and bench:tags.
import type { SitecacheConfig } from '@sitecache/config';
import { createPageStore, type PutOptions } from '../src/index.js';

export interface BenchPage {
  readonly url: string;
  readonly body: Buffer;
}

/**
 * Puts for `ms` with `inFlight` at a time, cycling through `pages`: pages stored per second, and
 * this process's CPU microseconds per stored page (steadier than a rate on a busy machine).
 */
export async function putRate(
  config: SitecacheConfig,
  pages: readonly BenchPage[],
  inFlight: number,
  ms: number,
  optionsFor: (index: number) => PutOptions = () => ({}),
): Promise<[number, number]> {
  const store = createPageStore(config, { logger: { warn: () => undefined } });
  const start = process.cpuUsage();
  let stored = 0;
  let next = 0;
  const end = Date.now() + ms;
  const worker = async (): Promise<void> => {
    while (Date.now() < end) {
      const i = next++ % pages.length;
      const page = pages[i] as BenchPage;
      if ((await store.put(page.url, page.body, optionsFor(i))).stored) stored++;
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  const used = process.cpuUsage(start);
  await store.close();
  return [(stored * 1000) / ms, (used.user + used.system) / Math.max(1, stored)];
}
