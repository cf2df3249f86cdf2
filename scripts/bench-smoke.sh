#!/usr/bin/env bash
# Every benchmark once with --smoke: a short run that checks each still starts its services, measures
# and prints its table. The figures of a smoke run mean nothing (too short, on a loaded machine); the
# benchmarks themselves run by hand (`pnpm bench:...`), never in CI. Set-up is done already.
set -uo pipefail
cd "$(dirname "$0")/.."

failed=()
run() {
  local name=$1
  shift
  echo "== bench smoke: $name"
  local began=$SECONDS
  if "$@"; then
    echo "== bench smoke: $name ok in $((SECONDS - began)) s"
  else
    echo "== bench smoke: $name FAILED (exit $?)"
    failed+=("$name")
  fi
}

run bench:key pnpm exec tsx packages/cache-key/bench/key.bench.ts --smoke
run bench:hit pnpm exec tsx packages/nginx-conf/bench/hit.bench.ts --smoke
run bench:store pnpm exec tsx packages/cache-store/bench/store.bench.ts --smoke
run bench:tags pnpm exec tsx packages/cache-store/bench/tags.bench.ts --smoke
run bench:runner pnpm exec tsx packages/cluster-runner/bench/index.ts --smoke
run bench:site pnpm exec tsx examples/site/bench/site.bench.ts --smoke

if [ ${#failed[@]} -gt 0 ]; then
  echo "bench smoke failed: ${failed[*]}"
  exit 1
fi
echo "bench smoke: all benchmarks ran"
