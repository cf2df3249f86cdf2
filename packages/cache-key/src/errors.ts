import { NGINX_LITERAL_RULE } from '@sitecache/nginx-model';

/** A keyPrefix nginx cannot hold literally inside its key expression. */
export class InvalidKeyPrefixError extends Error {
  override readonly name = 'InvalidKeyPrefixError';
  readonly keyPrefix: string;

  constructor(keyPrefix: string) {
    super(`Invalid keyPrefix ${JSON.stringify(keyPrefix)}: expected ${NGINX_LITERAL_RULE}`);
    this.keyPrefix = keyPrefix;
  }
}
