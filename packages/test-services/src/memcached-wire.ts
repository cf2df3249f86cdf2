import { connect, type NetConnectOpts } from 'node:net';

/** One item as memcached itself holds it. */
export interface StoredItem {
  readonly flags: number;
  readonly value: Buffer;
}

/**
 * Reads `key` straight from one memcached server over its text protocol: the server's own view,
 * not a client library's, which is what proves which server holds a page.
 */
export async function memcachedGet(address: string, key: string): Promise<StoredItem | null> {
  const reply = await exchange(address, `get ${key}\r\n`, (data) => data.includes('END\r\n'));
  const header = /^VALUE \S+ (\d+) (\d+)\r\n/.exec(reply.toString('latin1'));
  if (!header) return null;
  const start = header[0].length;
  return { flags: Number(header[1]), value: reply.subarray(start, start + Number(header[2])) };
}

/** Writes `value` with raw `flags` to one memcached server. */
export async function memcachedSet(address: string, key: string, value: string | Buffer, flags = 0, ttl = 0): Promise<void> {
  const bytes = typeof value === 'string' ? Buffer.from(value) : value;
  const command = Buffer.concat([Buffer.from(`set ${key} ${flags} ${ttl} ${bytes.length}\r\n`), bytes, Buffer.from('\r\n')]);
  const reply = (await exchange(address, command, (data) => data.includes('\r\n'))).toString('latin1');
  if (!reply.startsWith('STORED')) throw new Error(`memcached ${address} refused set ${key}: ${reply.trim()}`);
}

/** Sends a command and returns the raw reply, e.g. `stats\r\n`. */
export function memcachedCommand(address: string, command: string): Promise<string> {
  return exchange(address, command, (data) => /(END|OK|ERROR)\r\n$/.test(data.toString('latin1'))).then((b) =>
    b.toString('latin1'),
  );
}

function exchange(address: string, command: string | Buffer, complete: (data: Buffer) => boolean): Promise<Buffer> {
  const target: NetConnectOpts = address.startsWith('unix:')
    ? { path: address.slice('unix:'.length) }
    : { host: address.slice(0, address.lastIndexOf(':')), port: Number(address.slice(address.lastIndexOf(':') + 1)) };
  return new Promise((resolve, reject) => {
    const socket = connect(target);
    let data = Buffer.alloc(0);
    socket.setTimeout(5_000, () => socket.destroy(new Error(`memcached ${address} did not answer`)));
    socket.on('error', reject);
    socket.on('data', (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      if (complete(data)) {
        socket.end();
        resolve(data);
      }
    });
    socket.write(command);
  });
}
