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

/** A keyPrefix nginx cannot hold literally inside its key expression. */
export class InvalidKeyPrefixError extends Error {
  override readonly name = 'InvalidKeyPrefixError';
  readonly keyPrefix: string;

  constructor(keyPrefix: string) {
    super(`Invalid keyPrefix ${JSON.stringify(keyPrefix)}: nginx cannot hold whitespace, quotes, backslash, $ or braces literally in its key expression`);
    this.keyPrefix = keyPrefix;
  }
}
