// Debian's Chromium, driven by playwright-core, which never downloads a browser of its own.
import { makeTempDir, requireBinary } from '@sitecache/test-services';
import { chromium, type BrowserContext } from 'playwright-core';

export interface Chromium {
  /** The browser's one context: its cookies are the visitor's. */
  readonly context: BrowserContext;
  close(): Promise<void>;
}

// The network here is closed: without the flags that stop Chromium's own background traffic
// (updates, sync, safe browsing lists) it fails connections to the outside many at a time.
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Headless Chromium with a fresh profile (its --user-data-dir), removed by close(). */
export async function launchChromium(): Promise<Chromium> {
  // A missing browser fails with its install command, never a skip.
  const executablePath = requireBinary('chromium');
  const profile = await makeTempDir('pixelpress-chromium');
  try {
    const context = await chromium.launchPersistentContext(profile.path, {
      executablePath,
      headless: true,
      args: ARGS,
      viewport: { width: 960, height: 720 },
    });
    return {
      context,
      async close() {
        await context.close();
        await profile.remove();
      },
    };
  } catch (error) {
    await profile.remove();
    throw error;
  }
}
