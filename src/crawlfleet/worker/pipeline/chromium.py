"""Which Chromium the worker launches: the one asked for, else Playwright's own build, else the system's."""

from __future__ import annotations

import json
import os
import platform
import shutil
from pathlib import Path

import playwright

SYSTEM_CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/lib/chromium/chromium")
SYSTEM_CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL_HINT = (
    "install one with `playwright install chromium` (Playwright's own build) or the system package "
    "(`apt-get install chromium`), or set the browser executable path"
)


def find_chromium(explicit: str | None = None) -> str | None:
    """The Chromium to launch: ``explicit`` (a path or a name on PATH) if given, else Playwright's own
    installed build, else a system Chromium. None when there is none (or ``explicit`` is missing)."""
    if explicit:
        found = explicit if _is_executable(explicit) else shutil.which(explicit)
        return found
    for path in playwright_chromium_paths():
        if _is_executable(str(path)):
            return str(path)
    for candidate in SYSTEM_CHROMIUM_PATHS:
        if _is_executable(candidate):
            return candidate
    for name in SYSTEM_CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def playwright_chromium_paths() -> list[Path]:
    """Where ``playwright install`` puts Chromium for this Playwright version (headless shell first).

    Mirrors Playwright's registry lookup, which is driven by ``PLAYWRIGHT_BROWSERS_PATH`` and
    ``XDG_CACHE_HOME``; Linux only, the platform the worker runs on.
    """
    arch = {"x86_64": "linux64", "aarch64": "linux-arm64"}.get(platform.machine())
    if platform.system() != "Linux" or arch is None:
        return []
    package = Path(playwright.__file__).parent / "driver" / "package"
    try:
        browsers = json.loads((package / "browsers.json").read_text())["browsers"]
    except (OSError, ValueError, KeyError):
        return []
    revisions = {entry.get("name"): entry.get("revision") for entry in browsers}
    registry = _playwright_registry_dir(package)
    layouts = (
        ("chromium-headless-shell", f"chrome-headless-shell-{arch}", "chrome-headless-shell"),
        ("chromium", f"chrome-{arch}", "chrome"),
    )
    return [
        registry / f"{name}-{revisions[name]}" / folder / binary
        for name, folder, binary in layouts
        if revisions.get(name)
    ]


def _playwright_registry_dir(package: Path) -> Path:
    configured = os.environ.get("PLAYWRIGHT_BROWSERS_PATH")
    if configured == "0":
        return package / ".local-browsers"
    if configured:
        return Path(configured)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "ms-playwright"


def _is_executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)
