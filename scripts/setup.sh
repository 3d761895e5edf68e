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
# A Chromium for render=browser/auto: Playwright's own when installed, else the system's. Playwright
# cannot download browsers everywhere, so on Debian/Ubuntu as root we install the distribution's.
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1 \
    && ! compgen -G "${PLAYWRIGHT_BROWSERS_PATH:-$HOME/.cache/ms-playwright}/chromium*" >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Chromium (apt-get install chromium)..."
    { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; } >/tmp/crawlfleet-apt.log 2>&1 \
      || { tail -n 20 /tmp/crawlfleet-apt.log >&2; echo "could not install Chromium" >&2; exit 1; }
  else
    echo "no Chromium found: browser rendering will fail. Install one: 'sudo apt-get install chromium'" \
         "or '.venv/bin/playwright install chromium'." >&2
  fi
fi
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
# Reinstall when the project's metadata or its list of subpackages changes: the editable install
# maps each crawlfleet subpackage to its folder, so a new one must be installed to be importable.
stamp=.venv/.crawlfleet-installed
wanted="$(cat pyproject.toml; ls src/crawlfleet protos/crawlfleet)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
  echo "installing crawlfleet and its dependencies into .venv (log: .venv/install.log)..."
  if ! { .venv/bin/python -m pip install --upgrade pip && .venv/bin/python -m pip install -e '.[dev]'; } \
      >.venv/install.log 2>&1; then
    tail -n 30 .venv/install.log >&2
    echo "installation failed; full log in .venv/install.log" >&2
    exit 1
  fi
  printf '%s' "$wanted" >"$stamp"
fi
