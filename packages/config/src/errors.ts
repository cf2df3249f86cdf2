/** A field of sitecache.config.json holds a value sitecache cannot use. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  /** The field at fault, as a path: `memcached[1]`, `hosts[0]`. */
  readonly field: string;
  /** The value found there. */
  readonly value: unknown;

  constructor(field: string, expected: string, value: unknown, source?: string) {
    const where = source ? ` in ${source}` : '';
    super(`Invalid config field "${field}"${where}: expected ${expected}, got ${describe(value)}`);
    this.field = field;
    this.value = value;
  }
}

/** The config file could not be read or is not JSON. */
export class ConfigFileError extends Error {
  override readonly name = 'ConfigFileError';
  readonly path: string;

  constructor(path: string, reason: string, options?: { cause?: unknown }) {
    super(`Cannot load sitecache config "${path}": ${reason}`, options);
    this.path = path;
  }
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  const text = JSON.stringify(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
