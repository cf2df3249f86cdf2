/** A Host (header or absolute-form request target) that nginx would answer with 400. */
export class InvalidHostError extends Error {
  override readonly name = 'InvalidHostError';
  readonly host: string;

  constructor(host: string, reason: string) {
    super(`Invalid host ${JSON.stringify(host)}: ${reason} (nginx answers such a request with 400)`);
    this.host = host;
  }
}

/** A URL or request target that names no page nginx could look up. */
export class InvalidUrlError extends Error {
  override readonly name = 'InvalidUrlError';
  readonly url: string;

  constructor(url: string, reason: string) {
    super(`Invalid URL ${JSON.stringify(url)}: ${reason}`);
    this.url = url;
  }
}

/** A list of memcached servers that nginx's upstream hash cannot be built from. */
export class InvalidServerListError extends Error {
  override readonly name = 'InvalidServerListError';
  readonly servers: unknown;

  constructor(servers: unknown, reason: string) {
    super(`Invalid memcached server list ${JSON.stringify(servers)}: ${reason}`);
    this.servers = servers;
  }
}
