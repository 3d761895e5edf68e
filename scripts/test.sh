#!/usr/bin/env bash
# The test command: sets up what it needs, then lint, types, proto lint and the whole suite.
# Extra arguments go to pytest (e.g. scripts/test.sh -k lease).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

# The egress tests build network namespaces with iproute2's `ip`.
if ! command -v ip >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y iproute2; } >/tmp/crawlfleet-apt.log 2>&1
fi

# buf (proto lint) ships as a binary inside its npm package.
if [ ! -x .tools/node_modules/.bin/buf ]; then
  mkdir -p .tools
  npm install --silent --prefix .tools @bufbuild/buf@1 >/dev/null
fi

echo "== buf lint"
.tools/node_modules/.bin/buf lint
echo "== ruff"
.venv/bin/ruff check src tests scripts bench
.venv/bin/ruff format --check src tests scripts bench
echo "== mypy --strict"
.venv/bin/mypy src tests scripts bench
echo "== pytest"
.venv/bin/pytest "$@"
