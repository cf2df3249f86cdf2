import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { ConfigError, parseConfig } from '@sitecache/config';
import { checkNginxConf, NginxCheckError, NginxConfOptionError, renderNginxConf, renderNjsKeyModule, type RenderOptions } from '@sitecache/nginx-conf';

const base = {
  hosts: ['www.example.com', 'example.com'],
  listen: '127.0.0.1:8080',
  memcached: ['127.0.0.1:11211'],
  app: ['127.0.0.1:3000'],
};
const three = { ...base, memcached: ['127.0.0.1:11211', '127.0.0.1:11212', '127.0.0.1:11213'] };
const STALE_FIELDS = {
  grace: 3600,
  appTimeout: 5,
  hitHeaders: { 'Cache-Control': 'public, max-age=60', 'X-Note': 'a "quoted" \\ value' },
  errorPage: '/srv/site/error.html',
  contentTypes: { '= /feed.xml': 'application/rss+xml; charset=utf-8', '/api/v1/': 'application/json' },
};

describe('nginx -t accepts every rendered option set', () => {
  const matrix: [string, object, RenderOptions][] = [];
  for (const [servers, fields] of [
    ['one memcached server', base],
    ['three memcached servers', three],
  ] as const) {
    for (const gzip of [true, false]) {
      for (const md5 of ['set_misc', 'lua', 'njs'] as const) {
        matrix.push([`${servers}, gzip ${gzip ? 'on' : 'off'}, md5 by ${md5}`, { ...fields, gzip }, { md5, njsModulePath: '/x.js' }]);
      }
    }
  }
  matrix.push(['bypass cookies and a key prefix', { ...three, bypassCookies: ['sessionid', 'csrf.token'], keyPrefix: 'blog:' }, {}]);
  matrix.push(['unix sockets for memcached and the app', { ...base, memcached: ['unix:/run/mc.sock'], app: ['unix:/run/app.sock'] }, {}]);
  matrix.push([
    'typed locations (contentTypes), with gzip',
    { ...three, contentTypes: { '= /feed.xml': 'application/rss+xml; charset=utf-8', '/api/v1/': 'application/json' } },
    { md5: 'lua' },
  ]);
  matrix.push(['trusted proxies, IPv4 and IPv6', { ...base, trustedProxies: ['127.0.0.1', '10.0.0.0/8', '::1', '2001:db8::/32'] }, {}]);
  matrix.push(['another app keep-alive timeout', base, { appKeepaliveTimeout: '1500ms' }]);
  for (const md5 of ['set_misc', 'lua', 'njs'] as const) {
    matrix.push([`grace, typed locations, hitHeaders and an errorPage, md5 by ${md5}`, { ...three, ...STALE_FIELDS }, { md5, njsModulePath: '/x.js' }]);
  }
  matrix.push(['grace without an errorPage, gzip off', { ...base, grace: 60, gzip: false }, {}]);
  matrix.push(['ignoreParams removed by njs, md5 by set_misc, with grace', { ...base, grace: 60 }, { normalize: 'njs', njsModulePath: '/x.js' }]);
  matrix.push(['no ignoreParams', { ...base, ignoreParams: [] }, {}]);
  for (const md5 of ['set_misc', 'lua', 'njs'] as const) {
    matrix.push([`missRate, with grace, md5 by ${md5}`, { ...three, ...STALE_FIELDS, missRate: 20 }, { md5, njsModulePath: '/x.js' }]);
  }
  matrix.push(['missRate without grace', { ...base, missRate: 1 }, {}]);
  for (const md5 of ['set_misc', 'lua', 'njs'] as const) {
    matrix.push([`microcache, with grace, typed locations and missRate, md5 by ${md5}`, { ...three, ...STALE_FIELDS, missRate: 20, microcache: 1 }, { md5, njsModulePath: '/x.js' }]);
  }
  matrix.push(['microcache without grace, gzip off, its own path', { ...base, gzip: false, microcache: 5 }, { microcachePath: '/dev/shm/site-a' }]);

  it.each(matrix)('%s', async (_name, fields, options) => {
    await expect(checkNginxConf(parseConfig(fields), options)).resolves.toMatch(/test is successful/);
  });
});

describe('renderNginxConf', () => {
  it('declares keepalive after hash, or nginx silently drops keepalive', () => {
    const text = renderNginxConf(parseConfig(three));
    const upstream = text.slice(text.indexOf('upstream sitecache_memcached'));
    expect(upstream.indexOf('hash $memcached_key consistent;')).toBeGreaterThan(0);
    expect(upstream.indexOf('keepalive')).toBeGreaterThan(upstream.indexOf('hash $memcached_key consistent;'));
  });

  it('never marks a memcached server down (max_fails=0), so its keys are never read from another server', () => {
    const text = renderNginxConf(parseConfig(three));
    for (const server of three.memcached) expect(text).toContain(`server ${server} max_fails=0;`);
  });

  it("closes idle app connections after 4s, below Node's keepAliveTimeout (5 s), and the caller can lower it", () => {
    const app = (text: string): string => text.slice(text.indexOf('upstream sitecache_app {'), text.indexOf('}', text.indexOf('upstream sitecache_app {')));
    expect(app(renderNginxConf(parseConfig(base)))).toMatch(/keepalive 32;\n(\s*#.*\n)+\s*keepalive_timeout 4s;\n/);
    expect(app(renderNginxConf(parseConfig(base), { appKeepaliveTimeout: '2s' }))).toContain('keepalive_timeout 2s;');
  });

  it('sends the app the address the request came from as X-Forwarded-For, never what the client claims', () => {
    const text = renderNginxConf(parseConfig(base));
    expect(text).toContain('proxy_set_header X-Forwarded-For $remote_addr;');
    expect(text).not.toContain('$proxy_add_x_forwarded_for');
    expect(text).not.toContain('real_ip');
  });

  it('takes the client address from X-Forwarded-For only on requests from the trusted proxies, in the site server', () => {
    const text = renderNginxConf(parseConfig({ ...base, trustedProxies: ['10.0.0.0/8', '2001:db8::/32'] }));
    const site = text.slice(text.indexOf('server_name www.example.com example.com;'));
    expect(site).toContain('set_real_ip_from 10.0.0.0/8;\n    set_real_ip_from 2001:db8::/32;\n    real_ip_header X-Forwarded-For;\n    real_ip_recursive on;');
    expect(text.match(/^\s*set_real_ip_from /gm)).toHaveLength(2);
    expect(text).toContain('proxy_set_header X-Forwarded-For $remote_addr;');
  });

  it('takes a config object as written in sitecache.config.json, and names a bad field', () => {
    const written = JSON.parse(JSON.stringify({ hosts: base.hosts, memcached: base.memcached, app: base.app }));
    expect(renderNginxConf(written)).toBe(renderNginxConf(parseConfig(written)));
    const attempt = () => renderNginxConf({ ...written, memcached: ['localhost'] });
    expect(attempt).toThrow(ConfigError);
    expect(attempt).toThrow('Invalid config field "memcached[0]": expected "host:port" or "unix:/path", got "localhost"');
  });

  it('is quoted in the README exactly as it renders', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    const quoted = [...readme.matchAll(/```nginx\n([\s\S]*?)```/g)].map((match) => match[1]);
    expect(quoted.length).toBeGreaterThan(2);
    // The README's two examples: the upstreams of two memcached servers, and the stale copies.
    const upstreams = renderNginxConf({ ...base, memcached: ['127.0.0.1:11211', '127.0.0.1:11212'] });
    const stale = renderNginxConf({ ...base, grace: 3600, appTimeout: 10, hitHeaders: { 'Cache-Control': 'public, max-age=60' }, errorPage: '/srv/site/error.html' });
    const limited = renderNginxConf({ ...base, missRate: 10 });
    const rendered = [upstreams, stale, limited];
    for (const block of quoted) expect({ block, rendered: rendered.some((text) => text.includes(block as string)) }).toEqual({ block, rendered: true });
  });

  it('renders no stale location and intercepts no app error without grace, as before it existed', () => {
    const text = renderNginxConf({ ...base, hitHeaders: { 'Cache-Control': 'public' }, errorPage: '/srv/site/error.html' });
    for (const absent of ['@stale', '@app_bypass', 'proxy_intercept_errors', 'recursive_error_pages', '@sitecache_failed', 'STALE', '/srv/site']) {
      expect(text).not.toContain(absent);
    }
    expect(text).toContain('error_page 404 405 418 502 504 = @app;');
  });

  it('waits appTimeout seconds for the app, with grace or without', () => {
    expect(renderNginxConf(base)).toMatch(/location @app \{[^}]*proxy_read_timeout 10s;\n/);
    const text = renderNginxConf({ ...base, grace: 60, appTimeout: 3 });
    expect(text).toMatch(/location @app \{[^}]*proxy_read_timeout 3s;\n/);
    expect(text).toMatch(/location @app_bypass \{[^}]*proxy_read_timeout 3s;\n/);
  });

  it('sends only misses to the app location that may serve a stale copy: bypasses and other methods go to @app_bypass', () => {
    const text = renderNginxConf({ ...base, grace: 60 });
    expect(text).toContain('error_page 404 502 504 = @app;');
    expect(text).toContain('error_page 405 418 = @app_bypass;');
    const bypass = text.slice(text.indexOf('location @app_bypass {'), text.indexOf('}', text.indexOf('location @app_bypass {')));
    expect(bypass).not.toContain('error_page');
    expect(bypass).not.toContain('proxy_intercept_errors');
  });

  it('escapes quotes and backslashes of hitHeaders, and writes them in every location that serves from memcached', () => {
    const text = renderNginxConf({ ...base, ...STALE_FIELDS });
    const line = 'add_header X-Note "a \\"quoted\\" \\\\ value" always;';
    // Three cached locations, and four stale locations for each.
    expect(text.split(line)).toHaveLength(1 + 3 + 3 * 4);
    const app = text.slice(text.indexOf('location @app {'), text.indexOf('location @stale_500 {'));
    expect(app).not.toContain('add_header');
  });

  it('routes a stale copy to its location\'s type as nginx matched it: an exact location, else the longest prefix, case-sensitive', () => {
    const text = renderNginxConf({ ...base, grace: 60, contentTypes: { '/a/': 'application/json', '/a/b.c/': 'text/plain', '= /a/x.xml': 'application/xml' } });
    const map = text.slice(text.indexOf('map $uri $sitecache_stale_type {'), text.indexOf('}', text.indexOf('map $uri $sitecache_stale_type {')));
    expect(map.split('\n').slice(1, -1).map((line) => line.trim())).toEqual(['default "";', '"~^/a/x\\.xml$" _type3;', '"~^/a/b\\.c/" _type2;', '"~^/a/" _type1;']);
    expect(text).toContain('error_page 503 = @stale_503$sitecache_stale_type;');
    const typed = text.slice(text.indexOf('location @stale_503_type3 {'));
    expect(typed.slice(0, typed.indexOf('add_header'))).toContain('default_type "application/xml";');
  });

  it('uses no hash with a single memcached server, where there is nothing to choose', () => {
    expect(renderNginxConf(parseConfig(base))).not.toContain('hash $memcached_key');
  });

  it('lists the memcached servers in config order, exactly as written, since the ring hashes the text', () => {
    const text = renderNginxConf(parseConfig({ ...three, memcached: ['127.0.0.1:11213', 'localhost:11211'] }));
    expect(text.indexOf('server 127.0.0.1:11213 max_fails=0;')).toBeLessThan(text.indexOf('server localhost:11211 max_fails=0;'));
  });

  it.each([
    ['without grace', three],
    ['with grace, typed locations and an errorPage', { ...three, ...STALE_FIELDS }],
  ])('writes a comment above every block saying why it is there, %s', (_what, fields) => {
    const lines = renderNginxConf(parseConfig(fields), { standalone: true, prefix: '/srv/site' }).split('\n');
    const opening = lines.map((line, i) => [line, i] as const).filter(([line]) => /^\s*(upstream|server|location|map|http|events) .*\{$|^\s*(server|http|events) \{$/.test(line));
    expect(opening.length).toBeGreaterThan(5);
    for (const [line, i] of opening) {
      if (/^\s*(events|http) \{/.test(line)) continue;
      const above = lines.slice(Math.max(0, i - 3), i).join('\n');
      expect({ line, commented: above.includes('#') || /^\s*map /.test(lines[i - 1] ?? '') }).toEqual({ line, commented: true });
    }
  });

  it('relays a whole page in one piece (128k by default), and the size is the caller\'s to choose', () => {
    expect(renderNginxConf(parseConfig(base))).toContain('memcached_buffer_size 128k;');
    expect(renderNginxConf(parseConfig(base), { memcachedBufferSize: '256k' })).toContain('memcached_buffer_size 256k;');
  });

  it('gives each typed location its own type and the same memcached lookup as every page', () => {
    const text = renderNginxConf(parseConfig({ ...base, contentTypes: { '= /feed.xml': 'application/rss+xml; charset=utf-8' } }));
    const location = text.slice(text.indexOf('location = /feed.xml {'), text.indexOf('location @app'));
    expect(location).toContain('default_type "application/rss+xml; charset=utf-8";');
    expect(location).toContain('charset off;');
    expect(location).toContain('memcached_pass sitecache_memcached;');
    expect(location).toContain('error_page 404 405 418 502 504 = @app;');
  });

  it('loads ndk before set_misc and lua with absolute paths in a standalone config', () => {
    const text = renderNginxConf(parseConfig(base), { standalone: true, prefix: '/srv/site' });
    const ndk = text.indexOf('load_module /usr/lib/nginx/modules/ndk_http_module.so;');
    expect(ndk).toBeGreaterThan(0);
    expect(text.indexOf('load_module /usr/lib/nginx/modules/ngx_http_set_misc_module.so;')).toBeGreaterThan(ndk);
    // lua removes the default ignoreParams; without them set_misc needs nothing else.
    expect(text.indexOf('load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;')).toBeGreaterThan(ndk);
    const plain = renderNginxConf(parseConfig({ ...base, ignoreParams: [] }), { standalone: true, prefix: '/srv/site' });
    expect(plain).not.toContain('ngx_http_lua_module');
    const njs = renderNginxConf(parseConfig(base), { standalone: true, prefix: '/srv/site', normalize: 'njs', njsModulePath: '/srv/site/key.js' });
    expect(njs).toContain('load_module /usr/lib/nginx/modules/ngx_http_js_module.so;');
    expect(njs).not.toContain('ngx_http_lua_module');
    expect(text).toContain('pid /srv/site/nginx.pid;');
    expect(text).toContain('client_body_temp_path /srv/site/client_body_temp;');
  });

  it.each([
    [{ standalone: true }, 'prefix'],
    [{ standalone: true, prefix: 'relative/dir' }, 'prefix'],
    [{ md5: 'sha1' }, 'md5'],
    [{ md5: 'njs' }, 'njsModulePath'],
    [{ normalize: 'perl' }, 'normalize'],
    [{ md5: 'lua', normalize: 'njs', njsModulePath: '/x.js' }, 'normalize'],
    [{ md5: 'njs', normalize: 'lua', njsModulePath: '/x.js' }, 'normalize'],
    [{ normalize: 'njs' }, 'njsModulePath'],
    [{ memcachedBufferSize: 'big' }, 'memcachedBufferSize'],
    [{ memcachedKeepalive: 0 }, 'memcachedKeepalive'],
    [{ memcachedTimeout: 'soon' }, 'memcachedTimeout'],
    [{ appKeepaliveTimeout: '4 s' }, 'appKeepaliveTimeout'],
    [{ appKeepaliveTimeout: '0s' }, 'appKeepaliveTimeout'],
    [{ workerProcesses: -1 }, 'workerProcesses'],
  ])('refuses %j naming option %s', (options, option) => {
    const attempt = () => renderNginxConf(parseConfig(base), options as RenderOptions);
    expect(attempt).toThrow(NginxConfOptionError);
    expect(attempt).toThrow(`Invalid nginx-conf option "${option}"`);
  });
});

describe('query parameters left out of the key (ignoreParams)', () => {
  it('renders the key exactly as before for no ignoreParams: $request_uri, nothing else', () => {
    const text = renderNginxConf({ ...base, ignoreParams: [] });
    expect(text).toContain('set_md5 $memcached_key "https://$host$request_uri";');
    for (const absent of ['sitecache_key_uri', 'lua', 'if ($request_uri']) expect(text).not.toContain(absent);
  });

  it('builds the key from $sitecache_key_uri, which only a URI naming an ignored parameter recomputes', () => {
    const text = renderNginxConf({ ...base, grace: 60 });
    expect(text).toContain('set $sitecache_key_uri $request_uri;\n    if ($request_uri ~ "[?&](?:utm_|(?:fbclid|gclid|dclid|msclkid|mc_cid|mc_eid|_ga|igshid|yclid)(?![^&=]))") {\n        set_by_lua_block $sitecache_key_uri {');
    expect(text).toContain('set_md5 $memcached_key "https://$host$sitecache_key_uri";');
    expect(text).toContain('set_md5 $memcached_key "stale:https://$host$sitecache_key_uri";');
    expect(text).not.toMatch(/\$memcached_key "[^"]*\$request_uri"/);
  });

  it('takes the URI from the njs module with normalize "njs", and reads it in the lua and njs keys', () => {
    const njs = renderNginxConf(base, { normalize: 'njs', njsModulePath: '/x.js' });
    expect(njs).toContain('js_set $sitecache_normalized_uri sitecache_key.keyUri;');
    expect(njs).toContain('set $sitecache_key_uri $sitecache_normalized_uri;');
    expect(renderNginxConf(base, { md5: 'lua' })).toContain('return ngx.md5("https://" .. ngx.var.host .. ngx.var.sitecache_key_uri)');
    const module = renderNjsKeyModule(base);
    expect(module).toContain('.update(r.rawVariables.sitecache_key_uri)');
    expect(module).toContain('export default { key, staleKey, keyUri };');
    expect(renderNjsKeyModule({ ...base, ignoreParams: [] })).toContain('export default { key, staleKey };');
  });
});

describe('missRate', () => {
  const app = (text: string, name: string): string => text.slice(text.indexOf(`location ${name} {`), text.indexOf('}', text.indexOf(`location ${name} {`)));

  it('limits the misses of each client address in @app, never the bypasses, and renders nothing at 0', () => {
    const text = renderNginxConf({ ...base, missRate: 10 });
    expect(text).toContain('limit_req_zone $binary_remote_addr zone=sitecache_misses:10m rate=10r/s;');
    expect(app(text, '@app')).toContain('limit_req zone=sitecache_misses burst=10 nodelay;');
    expect(app(text, '@app')).toContain('limit_req_status 429;');
    expect(app(text, '@app_bypass')).not.toContain('limit_req');
    expect(text).toContain('error_page 405 418 = @app_bypass;');
    expect(renderNginxConf(base)).not.toContain('limit_req');
  });

  it('serves the stale copy past the limit with grace on, else 429', () => {
    const text = renderNginxConf({ ...base, missRate: 10, grace: 60 });
    expect(app(text, '@app')).toContain('error_page 429 = @stale_429;');
    expect(text).toContain('error_page 404 502 504 =429 @sitecache_failed;');
  });
});

describe('microcache', () => {
  it('renders no proxy_cache and no lookup server at 0, the default', () => {
    const text = renderNginxConf({ ...three, ...STALE_FIELDS });
    expect(text).not.toMatch(/proxy_cache|sitecache_lookup|unix:.*\.sock/);
  });

  it('keeps only 200 hits for microcache seconds, under the page key, and no header of the page decides', () => {
    const text = renderNginxConf({ ...base, microcache: 3 }, { standalone: true, prefix: '/srv/site' });
    expect(text).toContain('proxy_cache_path /srv/site/microcache levels=1:2 keys_zone=sitecache_microcache:10m max_size=256m inactive=10s use_temp_path=off;');
    expect(text).toContain('server unix:/srv/site/microcache.sock;');
    expect(text).toContain('listen unix:/srv/site/microcache.sock;');
    expect(text).toContain('proxy_cache_key $memcached_key;');
    expect(text).toContain('proxy_cache_valid 200 3s;');
    expect(text).toContain('proxy_ignore_headers Cache-Control Expires X-Accel-Expires Set-Cookie Vary;');
    expect(text).not.toMatch(/proxy_cache_valid (?!200 3s)/);
    expect(text).not.toContain('proxy_cache_use_stale');
    expect(renderNginxConf({ ...base, microcache: 1 })).toContain('proxy_cache_path /dev/shm/sitecache-microcache ');
  });

  it('unzips for clients without gzip after the micro-cache, never before it', () => {
    const text = renderNginxConf({ ...base, microcache: 1 });
    const lookup = text.slice(text.indexOf('listen unix:'));
    expect(lookup).toContain('memcached_gzip_flag 16;');
    expect(lookup).not.toContain('gunzip');
    expect(text.slice(0, text.indexOf('listen unix:'))).toContain('gunzip on;');
  });

  it.each([
    [{ microcachePath: 'shm/x' }, 'microcachePath'],
    [{ microcacheMaxSize: 'lots' }, 'microcacheMaxSize'],
  ] as const)('refuses %j', (options, option) => {
    expect(() => renderNginxConf({ ...base, microcache: 1 }, options)).toThrow(NginxConfOptionError);
    expect(() => renderNginxConf({ ...base, microcache: 1 }, options)).toThrow(option);
  });
});

describe('checkNginxConf', () => {
  it("reports nginx's own message when nginx refuses the config", async () => {
    // A memcached server nginx cannot resolve: only nginx itself can tell.
    const config = parseConfig({ ...base, memcached: ['no-such-host.invalid:11211'] });
    const failure = checkNginxConf(config);
    await expect(failure).rejects.toThrow(NginxCheckError);
    await expect(checkNginxConf(config)).rejects.toThrow(/host not found in upstream "no-such-host.invalid:11211"/);
  });
});
