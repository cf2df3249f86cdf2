#!/usr/bin/env bash
# The test command: set-up, typecheck, lint, then every jest suite. Ends with the line
# "N passed, N failed" read from jest's own JSON results.
#   scripts/test.sh                 the whole suite on this machine's node
#   scripts/test.sh --node BIN      only the jest suites, on another node binary (set-up done already)
set -uo pipefail
cd "$(dirname "$0")/.."

node_bin=node
if [ "${1:-}" = "--node" ]; then
  node_bin=$2
  shift 2
else
  bash scripts/setup.sh || exit 1
  pnpm -r --reporter=silent typecheck || exit 1
  pnpm run --silent typecheck || exit 1
  pnpm run --silent lint || exit 1
fi

mkdir -p .tmp
results=.tmp/jest-results-$("$node_bin" -p 'process.versions.node.split(".")[0]').json
rm -f "$results"
echo "jest on node $("$node_bin" --version)"
"$node_bin" --experimental-vm-modules node_modules/jest/bin/jest.js --json --outputFile="$results" "$@" 2>&1 | grep -v ExperimentalWarning
status=${PIPESTATUS[0]}
if [ ! -s "$results" ]; then
  echo "jest wrote no results"
  echo "0 passed, 1 failed"
  exit 1
fi
node -e '
const r = require(process.argv[1]);
const failedSuites = r.numFailedTestSuites - r.testResults.filter((s) => s.assertionResults.some((a) => a.status === "failed")).length;
if (failedSuites > 0) console.log(`${failedSuites} test file(s) failed to run`);
console.log(`${r.numPassedTests} passed, ${r.numFailedTests + Math.max(0, failedSuites)} failed`);
' "$PWD/$results"
exit "$status"
