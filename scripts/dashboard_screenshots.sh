#!/usr/bin/env bash
# Regenerates the dashboard screenshots in docs/images from the browser tests (docs/dashboard.md).
set -euo pipefail
cd "$(dirname "$0")/.."
CRAWLFLEET_DASHBOARD_SCREENSHOTS="$PWD/docs/images" .venv/bin/pytest -q tests/integration/test_dashboard.py "$@"
# A palette of 256 colours is plenty for a UI and keeps the repository small.
.venv/bin/python - <<'PY'
from pathlib import Path
from PIL import Image

for path in sorted(Path("docs/images").glob("dashboard-*.png")):
    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)
PY
