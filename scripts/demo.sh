#!/usr/bin/env bash
# The main job: sets up what it needs, then runs the demo (scripts/demo.py; URLs may be given).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python scripts/demo.py "$@"
