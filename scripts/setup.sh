#!/usr/bin/env bash
# Installs everything the demo, the tests and the benchmarks need on a fresh Debian machine with
# Node: nginx and its modules, memcached, wrk, GNU parallel, redis-server, chromium, varnish (apt-get, as root), pnpm, the
# workspace's packages, and the packages' builds. Safe to run again: it skips what is there.
set -euo pipefail
cd "$(dirname "$0")/.."

PNPM_VERSION=12.4.2
APT_PACKAGES=(nginx libnginx-mod-http-set-misc libnginx-mod-http-lua libnginx-mod-http-js memcached wrk parallel redis-server chromium varnish)
MODULES=/usr/lib/nginx/modules

missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
[ -f "$MODULES/ngx_http_set_misc_module.so" ] || missing+=(libnginx-mod-http-set-misc)
[ -f "$MODULES/ngx_http_lua_module.so" ] || missing+=(libnginx-mod-http-lua)
[ -f "$MODULES/ngx_http_js_module.so" ] || missing+=(libnginx-mod-http-js)
command -v memcached >/dev/null 2>&1 || [ -x /usr/bin/memcached ] || missing+=(memcached)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v parallel >/dev/null 2>&1 || missing+=(parallel)
# cluster-run's queue mode (BullMQ) is tested against a real Redis.
command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || missing+=(redis-server)
# The example site's browser test drives Debian's Chromium through playwright-core, which never
# downloads a browser of its own.
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || missing+=(chromium)
# bench:hit compares hits with Varnish's.
command -v varnishd >/dev/null 2>&1 || [ -x /usr/sbin/varnishd ] || missing+=(varnish)
# better-sqlite3 12 (the example's database on Node 20) compiles with node-gyp: a C++ compiler, make, python3.
command -v g++ >/dev/null 2>&1 || missing+=(g++)
command -v make >/dev/null 2>&1 || missing+=(make)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
APT_PACKAGES+=(g++ make python3)

if [ ${#missing[@]} -gt 0 ]; then
  as_root=()
  [ "$(id -u)" = 0 ] || as_root=(sudo -n)
  if command -v apt-get >/dev/null 2>&1 && { [ ${#as_root[@]} = 0 ] || sudo -n true 2>/dev/null; }; then
    echo "setup: installing ${missing[*]} with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    "${as_root[@]}" apt-get update -qq
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${APT_PACKAGES[@]}" >/dev/null
    # Debian starts nothing here, but where it does, stop the system copies: tests start their own.
    ("${as_root[@]}" systemctl disable --now nginx memcached redis-server varnish >/dev/null 2>&1 || true)
  else
    echo "setup: missing ${missing[*]}. Install them with:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y ${APT_PACKAGES[*]}" >&2
    exit 1
  fi
fi

if ! command -v pnpm >/dev/null 2>&1 || [ "$(pnpm --version 2>/dev/null)" != "$PNPM_VERSION" ]; then
  echo "setup: installing pnpm $PNPM_VERSION" >&2
  npm install -g "pnpm@$PNPM_VERSION" >/dev/null 2>&1 || {
    echo "setup: could not install pnpm globally; run: npm install -g pnpm@$PNPM_VERSION" >&2
    exit 1
  }
fi

# better-sqlite3 (the example's database) compiles with node-gyp: the registry is the only network
# here, so node-gyp must use the headers installed beside node rather than download them.
if ! command -v node-gyp >/dev/null 2>&1; then
  npm install -g node-gyp@12 >/dev/null 2>&1 || {
    echo "setup: could not install node-gyp; run: npm install -g node-gyp@12" >&2
    exit 1
  }
fi
node_prefix=$(dirname "$(dirname "$(command -v node)")")
if [ -z "${npm_config_nodedir:-}" ] && [ -f "$node_prefix/include/node/node.h" ]; then
  export npm_config_nodedir=$node_prefix
fi

pnpm install --frozen-lockfile --reporter=silent
pnpm run --silent build >/dev/null
