import { createServer, connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/** A TCP port on 127.0.0.1 that nothing listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === 'object') resolve(address.port);
        else reject(new Error('could not read the port of a listening socket'));
      });
    });
  });
}

/** Resolves once `host:port` (or a unix socket path) accepts a connection; rejects after `timeoutMs`. */
export async function waitForListener(
  target: { host: string; port: number } | { path: string },
  timeoutMs = 10_000,
  isAlive: () => boolean = () => true,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    if (!isAlive()) throw new Error(`the process that should listen on ${describe(target)} exited`);
    try {
      await new Promise<void>((resolve, reject) => {
        const socket = connect(target as never);
        socket.once('connect', () => {
          socket.destroy();
          resolve();
        });
        socket.once('error', reject);
      });
      return;
    } catch (error) {
      lastError = error;
      await sleep(20);
    }
  }
  throw new Error(`nothing listens on ${describe(target)} after ${timeoutMs} ms: ${String(lastError)}`);
}

function describe(target: { host: string; port: number } | { path: string }): string {
  return 'path' in target ? target.path : `${target.host}:${target.port}`;
}
