// The parity check, runnable by hand: starts memcached and nginx from a generated standalone
// config, stores a page for each sample request under the key @sitecache/cache-key computes, then
// asks nginx for each over a raw socket and shows whether nginx found it (HIT) with the same bytes.
import { cacheKey, requestKey } from '@sitecache/cache-key';
import { parseConfig, type SitecacheConfig } from '@sitecache/config';
import { renderNginxConf } from '@sitecache/nginx-conf';
import { memcachedSet, sendRaw, startMemcached, startNginx } from '@sitecache/test-services';

const SAMPLES: { target: string; host: string }[] = [
  { target: '/', host: 'www.example.com' },
  { target: '/article/42?utm_source=feed', host: 'WWW.Example.COM:8080' },
  { target: '/caf%C3%A9/./menu//today', host: 'www.example.com.' },
  { target: '/search?q=a+b&q=c', host: 'example.com' },
  { target: '/?', host: 'example.com' },
  { target: 'http://Example.COM/absolute-form', host: 'ignored.test' },
  { target: '/ipv6', host: '[::1]:8080' },
  { target: `/long/${'x'.repeat(6000)}`, host: 'www.example.com' },
];

async function main(): Promise<void> {
  const memcached = await startMemcached();
  let config: SitecacheConfig | undefined;
  const nginx = await startNginx(({ port, prefix }) => {
    config = parseConfig({ hosts: ['www.example.com', 'example.com', '[::1]'], listen: `127.0.0.1:${port}`, memcached: [memcached.address], app: ['127.0.0.1:9'], gzip: false });
    return renderNginxConf(config, { standalone: true, prefix, workerProcesses: 1 });
  });
  let hits = 0;
  try {
    console.log(`memcached ${memcached.address}, nginx 127.0.0.1:${nginx.port} (generated standalone config)\n`);
    for (const sample of SAMPLES) {
      const key = requestKey({ url: sample.target, headers: { host: sample.host } }, config as SitecacheConfig);
      const body = `<p>page for ${sample.target.slice(0, 40)}</p>`;
      await memcachedSet(memcached.address, key, body);
      const response = await sendRaw(nginx.port, `GET ${sample.target} HTTP/1.1\r\nHost: ${sample.host}\r\nConnection: close\r\n\r\n`);
      const hit = response.status === 200 && response.headers['x-cache'] === 'HIT' && response.body.toString() === body;
      if (hit) hits++;
      const shown = sample.target.length > 44 ? `${sample.target.slice(0, 41)}...` : sample.target;
      console.log(`${hit ? 'HIT ' : 'FAIL'}  ${key}  Host: ${sample.host.padEnd(22)} GET ${shown}`);
    }
    console.log(`\nthe same page by URL: cacheKey('https://www.example.com/') = ${cacheKey('https://www.example.com/')}`);
    console.log(`${hits} of ${SAMPLES.length} requests served by nginx from memcached under the key the app computed`);
  } finally {
    await nginx.stop();
    await memcached.stop();
  }
  process.exitCode = hits === SAMPLES.length ? 0 : 1;
}

main().catch((error: Error) => {
  console.error(error.message);
  process.exitCode = 1;
});
