#!/usr/bin/env bash
# Prepares a fresh machine: a virtualenv in .venv with crawlfleet and its dev tools installed.
# Safe to run again; it only installs what is missing or changed.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "crawlfleet needs Python 3.11 or newer (found: $("$python" --version 2>&1))" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
stamp=.venv/.crawlfleet-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "installing crawlfleet and its dependencies into .venv (log: .venv/install.log)..."
  if ! { .venv/bin/python -m pip install --upgrade pip && .venv/bin/python -m pip install -e '.[dev]'; } \
      >.venv/install.log 2>&1; then
    tail -n 30 .venv/install.log >&2
    echo "installation failed; full log in .venv/install.log" >&2
    exit 1
  fi
  touch "$stamp"
fi
