import { crc32 } from 'node:zlib';
import { InvalidServerListError } from './errors.js';

/**
 * nginx's choice of memcached server for a key (`hash $memcached_key consistent;`, ketama),
 * computed in the app so the writer stores where nginx reads.
 */
export interface HashRing {
  /** The servers, exactly as the upstream block writes them. */
  readonly servers: readonly string[];
  /** The server nginx reads `key` from while every server is up. */
  serverFor(key: string): string;
}

/**
 * nginx's consistent hash balancer over the literal server strings of an upstream block
 * (ngx_http_upstream_hash_module, nginx 1.22-1.26), the one the generated config writes. The
 * strings are hashed as written: no resolving, no lowercasing, no default port, so they must be
 * the ones the nginx config names. A single server takes every key (nginx does not hash then).
 * @throws InvalidServerListError for an empty list or a server named twice.
 */
export function createHashRing(servers: readonly string[]): HashRing {
  if (!Array.isArray(servers) || servers.length === 0 || servers.some((s) => typeof s !== 'string' || s === '')) {
    throw new InvalidServerListError(servers, 'expected a non-empty list of "host:port" or "unix:/path" strings');
  }
  if (new Set(servers).size !== servers.length) {
    throw new InvalidServerListError(servers, 'each server once (nginx would weigh a repeated one twice)');
  }
  const list = Object.freeze([...servers]);
  const only = list[0] as string;
  if (list.length === 1) return { servers: list, serverFor: () => only };
  return ketamaRing(list);
}

const POINTS_PER_SERVER = 160;

// ngx_http_upstream_init_chash: 160 points per server (weight 1), point j = crc32(host "\0" port
// prev), prev being point j-1 as four little-endian bytes, starting from four zero bytes.
function ketamaRing(servers: readonly string[]): HashRing {
  const points: { hash: number; server: number }[] = [];
  const prev = Buffer.alloc(4);
  servers.forEach((server, index) => {
    const { host, port } = splitServer(server);
    const base = crc32(Buffer.concat([Buffer.from(host, 'latin1'), NUL, Buffer.from(port, 'latin1')]));
    prev.writeUInt32LE(0);
    for (let j = 0; j < POINTS_PER_SERVER; j++) {
      const hash = crc32(prev, base);
      points.push({ hash, server: index });
      prev.writeUInt32LE(hash);
    }
  });
  points.sort((a, b) => a.hash - b.hash);
  // nginx keeps one point per hash value.
  const unique = points.filter((point, i) => i === 0 || point.hash !== (points[i - 1] as { hash: number }).hash);
  const hashes = Uint32Array.from(unique, (p) => p.hash);
  const owners = Uint16Array.from(unique, (p) => p.server);
  return {
    servers,
    serverFor(key: string): string {
      // ngx_http_upstream_find_chash_point: the first point >= crc32(key), wrapping to the first.
      const hash = crc32(key);
      let low = 0;
      let high = hashes.length;
      while (low < high) {
        const mid = (low + high) >>> 1;
        if ((hashes[mid] as number) < hash) low = mid + 1;
        else high = mid;
      }
      return servers[owners[low % hashes.length] as number] as string;
    },
  };
}

const NUL = Buffer.from([0]);
const UNIX_PREFIX = /^unix:/i;

/** How nginx splits a server string for the ring: the port is the digits after the last colon. */
function splitServer(server: string): { host: string; port: string } {
  if (UNIX_PREFIX.test(server)) return { host: server.slice(5), port: '' };
  for (let j = 0; j < server.length; j++) {
    const c = server.charCodeAt(server.length - j - 1);
    if (c === COLON) return { host: server.slice(0, server.length - j - 1), port: server.slice(server.length - j) };
    if (c < DIGIT_0 || c > DIGIT_9) break;
  }
  return { host: server, port: '' };
}

const COLON = 0x3a;
const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;
