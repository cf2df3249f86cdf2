export { cacheKey, requestKey, nginxKeyExpression, type KeyConfig, type RequestLike } from './key.js';
export { normalizeHost } from './host.js';
export { InvalidHostError, InvalidKeyPrefixError, InvalidUrlError } from './errors.js';
