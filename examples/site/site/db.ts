import type BetterSqlite3 from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';

export type Db = BetterSqlite3.Database;

/**
 * better-sqlite3 12 is built on node::ObjectWrap, and Node 24.19+ aborts when the garbage collector
 * frees one of its statements (nodejs/node#65446: "Assertion failed: (env) != nullptr"). 13 is
 * built on Node-API and does not, but it needs Node 22 and crashes on 20. So the site takes 13 from
 * Node 22 on (installed as better-sqlite3-napi) and 12 before that.
 */
const Database = createRequire(import.meta.url)(
  Number(process.versions.node.split('.')[0]) >= 22 ? 'better-sqlite3-napi' : 'better-sqlite3',
) as typeof BetterSqlite3;

/**
 * Opens a SQLite database the way several processes can share it: WAL, so readers never wait for
 * the importer's writers, and a busy timeout, so the three importers queue instead of failing.
 */
export function openDatabase(path: string, options: { readonly?: boolean } = {}): Db {
  if (!options.readonly) mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path, {
    readonly: options.readonly ?? false,
    fileMustExist: options.readonly ?? false,
  });
  db.pragma('busy_timeout = 10000');
  if (!options.readonly) {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
  }
  return db;
}
