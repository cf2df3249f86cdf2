import { existsSync, mkdirSync, renameSync, rmdirSync } from 'node:fs';
import { dirname } from 'node:path';

/** A run's output folder, made ready by {@link prepareOutputFolder}. */
export interface OutputFolder {
  readonly path: string;
  /**
   * Puts the disk back as it was before the folder was prepared: the folders it made are removed
   * (when still empty) and a folder it set aside is moved back. For a start refused after the folder
   * was made (a worker module that does not load, a queue holding another job): a refused run leaves
   * nothing behind and moves nothing. Never throws: when the new folder holds something (what a
   * worker module printed before it failed), it stays, and a folder set aside stays where it went.
   */
  undo(): void;
}

/**
 * Makes the output folder `path` (and its missing parents). With `setAsideTo`, an existing folder
 * at `path` is first renamed to it, as `--fresh` keeps the old run's output beside the new one.
 */
export function prepareOutputFolder(path: string, setAsideTo: string | null): OutputFolder {
  const setAside = setAsideTo !== null && existsSync(path);
  if (setAside) renameSync(path, setAsideTo);
  // The first folder mkdir created, undefined when `path` was there already.
  const firstMade = mkdirSync(path, { recursive: true });
  return {
    path,
    undo() {
      if (firstMade !== undefined) removeEmptyFolders(path, firstMade);
      if (!setAside || existsSync(path)) return;
      try {
        renameSync(setAsideTo, path);
      } catch {
        // gone meanwhile: nothing to put back
      }
    },
  };
}

/** Removes `path` and its parents up to and including `top`, stopping at the first that is not empty. */
function removeEmptyFolders(path: string, top: string): void {
  for (let folder = path; ; folder = dirname(folder)) {
    try {
      rmdirSync(folder);
    } catch {
      return; // not empty (something else wrote there) or gone: leave it
    }
    if (folder === top || dirname(folder) === folder) return;
  }
}
