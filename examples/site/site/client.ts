import { request } from 'node:http';

export interface PageResponse {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
  /** Time to the last byte, in milliseconds. */
  readonly ms: number;
}

/** One HTTP request to 127.0.0.1:`port`, as a browser would send it for `host`. */
export function fetchPage(
  port: number,
  path: string,
  options: { host?: string; method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<PageResponse> {
  const started = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: options.method ?? 'GET',
        headers: { host: options.host ?? 'www.pixelpress.test', ...options.headers, ...(options.body ? { 'content-length': Buffer.byteLength(options.body) } : {}) },
        agent: false,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, ms: Number(process.hrtime.bigint() - started) / 1e6 }));
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}
