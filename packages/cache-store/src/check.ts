import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { SitecacheConfig } from '@sitecache/config';
import { servedContentType } from '@sitecache/nginx-model';
import { headerDifferences, PER_RESPONSE_HEADERS, requestPolicy, responseRefusal, type SkipReason } from './policy.js';

/** One response as `check` saw it. */
export interface Fetched {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
}

/** What `sitecache check` found: the miss, the response after it, and how they differ. */
export interface CheckReport {
  readonly host: string;
  readonly miss: Fetched;
  /** The next response: a HIT when the miss was stored. */
  readonly next: Fetched;
  /** Headers whose values differ between the miss and the hit, outside `PER_RESPONSE_HEADERS`. */
  readonly differences: readonly { name: string; miss: string | undefined; hit: string | undefined }[];
  /** When the page was not stored: the policy's reason, as far as the miss's headers tell. */
  readonly refusal: SkipReason | undefined;
  /** For the reason "headers": the headers at fault. */
  readonly missingHeaders: readonly { name: string; miss: string | undefined; hit: string | undefined }[];
}

/**
 * Fetches `url` (nginx's address) twice, the second time after the miss had time to be stored,
 * and compares the two: what a visitor gets from the app and then from the cache.
 * @param host the Host header: nginx keys and serves by it.
 */
export async function checkPage(config: SitecacheConfig, url: URL, host: string, waitMs: number, timeoutMs: number): Promise<CheckReport> {
  const label = config.cacheHeader.toLowerCase();
  const miss = await fetchHead(url, host, timeoutMs);
  let next = miss;
  // The app stores a page once its response has gone out: give it a moment, twice at most.
  for (let attempt = 0; attempt < 3; attempt++) {
    await new Promise((resolve) => setTimeout(resolve, waitMs));
    next = await fetchHead(url, host, timeoutMs);
    if (next.headers[label] !== 'MISS') break;
  }
  const path = `${url.pathname}${url.search}`;
  const servedType = servedContentType(config.contentTypes, path);
  const requestRefusal = requestPolicy(config).refusal({ method: 'GET', url: path, headers: { host } });
  const refusal =
    next.headers[label] === 'HIT'
      ? undefined
      : (requestRefusal ?? (servedType === undefined ? 'invalid-request' : responseRefusal(miss, Date.now(), servedType, config)));
  return {
    host,
    miss,
    next,
    differences: next.headers[label] === 'HIT' ? compare(miss.headers, next.headers, label) : [],
    refusal,
    missingHeaders: refusal === 'headers' ? headerDifferences(miss.headers, config) : [],
  };
}

/** The report as `sitecache check` prints it. */
export function formatReport(report: CheckReport, config: SitecacheConfig): string {
  const label = config.cacheHeader.toLowerCase();
  const lines = [
    `host\t${report.host}`,
    `first\t${report.miss.status}\t${config.cacheHeader}: ${report.miss.headers[label] ?? '(none)'}`,
    `second\t${report.next.status}\t${config.cacheHeader}: ${report.next.headers[label] ?? '(none)'}`,
  ];
  const first = report.miss.headers[label];
  if (first !== 'MISS') {
    lines.push(`the first response was ${first ?? `without ${config.cacheHeader}`}, not a miss: purge the page first (sitecache purge) to compare a miss with a hit`);
  } else if (report.next.headers[label] === 'HIT') {
    if (report.differences.length === 0) lines.push('no differences: the hit carries the headers of the miss');
    for (const d of report.differences) lines.push(`differs\t${d.name}\tmiss: ${d.miss ?? '(none)'}\thit: ${d.hit ?? '(none)'}`);
  } else if (report.refusal === undefined) {
    lines.push('not stored, though the policy would store these headers: see the app\'s sitecache_pages_skipped_total (memcached, a purge, the route option)');
  } else {
    lines.push(`not stored\treason: ${report.refusal}`);
    for (const d of report.missingHeaders) {
      lines.push(`header\t${d.name}: ${d.miss}\t${d.hit === undefined ? 'not in config.hitHeaders' : `config.hitHeaders has: ${d.hit}`}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

/** Whether the report is clean: stored, and the hit carries the miss's headers. */
export function reportPassed(report: CheckReport, config: SitecacheConfig): boolean {
  const label = config.cacheHeader.toLowerCase();
  return report.miss.headers[label] === 'MISS' && report.next.headers[label] === 'HIT' && report.differences.length === 0;
}

function compare(miss: IncomingHttpHeaders, hit: IncomingHttpHeaders, label: string): CheckReport['differences'] {
  const names = new Set([...Object.keys(miss), ...Object.keys(hit)]);
  const differences: { name: string; miss: string | undefined; hit: string | undefined }[] = [];
  for (const name of names) {
    if (name === label || PER_RESPONSE_HEADERS.has(name)) continue;
    const a = text(miss[name]);
    const b = text(hit[name]);
    if (a !== b) differences.push({ name, miss: a, hit: b });
  }
  return differences;
}

function text(value: string | string[] | undefined): string | undefined {
  return value === undefined ? undefined : Array.isArray(value) ? value.join(', ') : value.trim();
}

/** A GET whose body is read and dropped: only the status and headers matter here. */
function fetchHead(url: URL, host: string, timeoutMs: number): Promise<Fetched> {
  const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'GET', headers: { host, connection: 'close' }, timeout: timeoutMs }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url.origin} within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}
