/** An option of createPageStore, pageCache or a put/purge call holds a value sitecache cannot use. */
export class CacheStoreOptionError extends Error {
  override readonly name = 'CacheStoreOptionError';
  /** The option at fault, such as `commandTimeoutMs` or `ttl`. */
  readonly option: string;
  /** The value found there. */
  readonly value: unknown;

  constructor(option: string, expected: string, value: unknown) {
    super(`Invalid cache-store option "${option}": expected ${expected}, got ${describe(value)}`);
    this.option = option;
    this.value = value;
  }
}

/** A page address that names no page nginx would look up: relative, another scheme, a wildcard host. */
export class PageAddressError extends Error {
  override readonly name = 'PageAddressError';
  /** The address as given. */
  readonly address: string;

  constructor(address: string, reason: string) {
    super(`Cannot address the page ${JSON.stringify(address)}: ${reason}`);
    this.address = address;
  }
}

/** A memcached server string that memcache-client cannot connect to, though nginx can. */
export class UnsupportedServerError extends Error {
  override readonly name = 'UnsupportedServerError';
  /** The entry of `config.memcached` at fault. */
  readonly server: string;

  constructor(server: string, reason: string) {
    super(`Cannot write to memcached server ${JSON.stringify(server)}: ${reason}`);
    this.server = server;
  }
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (typeof value === 'function') return 'a function';
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** A tag sitecache cannot index (empty, too long, not printable ASCII), or a purge by tag that names none. */
export class PageTagError extends Error {
  override readonly name = 'PageTagError';
  /** The tag at fault ("" when a purge named no tag). */
  readonly tag: string;

  constructor(tag: unknown, reason: string) {
    super(`Invalid tag ${describe(tag)}: ${reason}`);
    this.tag = String(tag);
  }

  /** The error for a purge by tag given an empty list. */
  static none(): PageTagError {
    const error = new PageTagError('', '');
    error.message = 'No tag to purge: a purge by tag names at least one tag, and the list given was empty';
    return error;
  }
}

/**
 * A server would not keep the count of purges by tag (its `incr` found no counter after it was
 * created, three times over): the purge could not mark its tags there. Reported in the purge's
 * result for that server, never thrown to the caller.
 */
export class PurgeCountError extends Error {
  override readonly name = 'PurgeCountError';
  /** The server of `config.memcached` at fault. */
  readonly server: string;

  constructor(server: string) {
    super(`memcached ${server} did not keep the count of purges by tag after it was created three times (evicted at once, or flushed meanwhile)`);
    this.server = server;
  }
}
