// The app the miss-path rows measure, shared by bench:store and the process each side runs in.
import type { RequestListener, ServerResponse } from 'node:http';

/** A 42 KB article rendered from a template: one pass costs about 0.09 ms on the bench machine. */
export function renderPage(url: string): string {
  const parts: string[] = [`<!doctype html><html><head><title>${url}</title></head><body><main>`];
  for (let i = 0; parts.length < 420; i++) {
    parts.push(`<p id="p${i}">Paragraph ${i} of the article at ${url}: caf\u00e9 lorem ipsum dolor sit amet.</p>`);
  }
  const html = `${parts.join('\n')}</main></body></html>`;
  return html + ' '.repeat(Math.max(0, 42_000 - Buffer.byteLength(html)));
}

/**
 * What Express's res.send hands Node for a string: a Buffer once it is 1,000 characters or more
 * (always, with Express's default ETag), with its Content-Length.
 */
export function send(res: ServerResponse, html: string): void {
  const body = html.length >= 1000 ? Buffer.from(html, 'utf8') : html;
  res.setHeader('Content-Type', 'text/html; charset=utf-8');
  res.setHeader('Content-Length', typeof body === 'string' ? Buffer.byteLength(body, 'utf8') : body.length);
  res.end(body);
}

/** How a render spends its time: `passes` template passes of CPU, then `waitMs` idle (a database's answer). */
export interface RenderCost {
  readonly passes: number;
  readonly waitMs: number;
}

/** The app: each request renders its page at `cost` and sends it as Express would. */
export function appOf(cost: RenderCost): RequestListener {
  const render = (url: string): string => {
    let html = '';
    for (let i = 0; i < cost.passes; i++) html = renderPage(url);
    return html;
  };
  if (cost.waitMs <= 0) return (req, res) => send(res, render(req.url ?? '/'));
  return (req, res) => {
    setTimeout(() => send(res, render(req.url ?? '/')), cost.waitMs);
  };
}

/**
 * The ms of CPU one template pass takes, measured here and now (after a warm-up): CPU time, not
 * wall time, so that other work on the machine does not make the renders cheaper than they seem.
 */
export function passMs(): number {
  for (let i = 0; i < 300; i++) renderPage(`/warm-up/${i}`);
  const batches: number[] = [];
  for (let batch = 0; batch < 9; batch++) {
    const start = process.cpuUsage();
    for (let i = 0; i < 100; i++) renderPage(`/calibrate/${batch}/${i}`);
    const used = process.cpuUsage(start);
    batches.push((used.user + used.system) / 1000 / 100);
  }
  return batches.sort((a, b) => a - b)[4] as number;
}
