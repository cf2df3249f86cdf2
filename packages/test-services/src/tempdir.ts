import { mkdtemp, rm, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A fresh folder under the system temp dir, and its removal. */
export interface TempDir {
  readonly path: string;
  remove(): Promise<void>;
}

export async function makeTempDir(label = 'sitecache'): Promise<TempDir> {
  const path = await mkdtemp(join(tmpdir(), `${label}-`));
  // mkdtemp makes it 0700; nginx's workers run as an unprivileged user when the tests run as root
  // and must reach sockets and temp files inside it.
  await chmod(path, 0o755);
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}
