#!/usr/bin/env bash
# The main job: sets up what it needs, then runs `crawlfleet demo` (URLs may be given; see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/crawlfleet demo "$@"
