export { requireBinary, MissingBinaryError } from './binaries.js';
export { freePort, waitForListener } from './net.js';
export { makeTempDir, type TempDir } from './tempdir.js';
export { spawnService, type ServiceProcess } from './process.js';
export { startMemcached, type MemcachedServer, type MemcachedOptions } from './memcached.js';
export { startNginx, type NginxServer, type NginxSlot } from './nginx.js';
export { startRedis, type RedisServer, type RedisOptions } from './redis.js';
export { sendRaw, type RawResponse } from './raw-http.js';
export { memcachedGet, memcachedSet, memcachedCommand, type StoredItem } from './memcached-wire.js';
