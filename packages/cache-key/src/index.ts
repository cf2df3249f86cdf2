export { cacheKey, requestKey, nginxKeyExpression, type KeyConfig } from './key.js';
export { InvalidKeyPrefixError } from './errors.js';
// The request side of the key is nginx's: re-exported so a key's caller needs one import.
export { normalizeHost, keyRequestUri, DEFAULT_IGNORE_PARAMS, InvalidHostError, InvalidUrlError, type RequestLike } from '@sitecache/nginx-model';
