import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

export type Db = Database.Database;

/**
 * Opens a SQLite database the way several processes can share it: WAL, so readers never wait for
 * the importer's writers, and a busy timeout, so the three importers queue instead of failing.
 */
export function openDatabase(path: string, options: { readonly?: boolean } = {}): Db {
  if (!options.readonly) mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path, {
    readonly: options.readonly ?? false,
    fileMustExist: options.readonly ?? false,
    // A binding built for another Node version (CI runs the suite on Node 24 too).
    ...(process.env.BETTER_SQLITE3_BINDING ? { nativeBinding: process.env.BETTER_SQLITE3_BINDING } : {}),
  });
  db.pragma('busy_timeout = 10000');
  if (!options.readonly) {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
  }
  return db;
}
