"""Which Chromium ``chromium.find_chromium`` picks, with the filesystem and PATH faked (no browser is launched)."""

from __future__ import annotations

import platform
import shutil
from pathlib import Path

import pytest

from crawlfleet.worker.pipeline import chromium


def make_executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def nothing_installed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No Playwright build, no system paths and nothing on PATH, unless a test adds it."""
    monkeypatch.setattr(chromium, "playwright_chromium_paths", lambda: [])
    monkeypatch.setattr(chromium, "SYSTEM_CHROMIUM_PATHS", (str(tmp_path / "missing"),))
    monkeypatch.setattr(shutil, "which", lambda name: None)
    return tmp_path


def test_none_when_nothing_is_installed(nothing_installed: Path) -> None:
    assert chromium.find_chromium() is None


def test_explicit_path_wins(monkeypatch: pytest.MonkeyPatch, nothing_installed: Path) -> None:
    explicit = make_executable(nothing_installed / "my-chrome")
    bundled = make_executable(nothing_installed / "pw" / "chrome")
    monkeypatch.setattr(chromium, "playwright_chromium_paths", lambda: [bundled])
    assert chromium.find_chromium(str(explicit)) == str(explicit)


def test_explicit_name_is_looked_up_on_path(monkeypatch: pytest.MonkeyPatch, nothing_installed: Path) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: "/opt/bin/chrome" if name == "chrome" else None)
    assert chromium.find_chromium("chrome") == "/opt/bin/chrome"


def test_missing_explicit_path_does_not_fall_back(monkeypatch: pytest.MonkeyPatch, nothing_installed: Path) -> None:
    system = make_executable(nothing_installed / "usr-bin-chromium")
    monkeypatch.setattr(chromium, "SYSTEM_CHROMIUM_PATHS", (str(system),))
    assert chromium.find_chromium(str(nothing_installed / "nope")) is None


def test_playwright_build_before_system(monkeypatch: pytest.MonkeyPatch, nothing_installed: Path) -> None:
    shell = nothing_installed / "pw" / "headless-shell"  # listed first but not installed
    bundled = make_executable(nothing_installed / "pw" / "chrome")
    system = make_executable(nothing_installed / "usr-bin-chromium")
    monkeypatch.setattr(chromium, "playwright_chromium_paths", lambda: [shell, bundled])
    monkeypatch.setattr(chromium, "SYSTEM_CHROMIUM_PATHS", (str(system),))
    assert chromium.find_chromium() == str(bundled)


def test_system_paths_before_path_lookup(monkeypatch: pytest.MonkeyPatch, nothing_installed: Path) -> None:
    first = nothing_installed / "usr-bin-chromium"  # not installed
    second = make_executable(nothing_installed / "usr-lib-chromium")
    monkeypatch.setattr(chromium, "SYSTEM_CHROMIUM_PATHS", (str(first), str(second)))
    monkeypatch.setattr(shutil, "which", lambda name: f"/somewhere/{name}")
    assert chromium.find_chromium() == str(second)


def test_path_lookup_in_order(monkeypatch: pytest.MonkeyPatch, nothing_installed: Path) -> None:
    on_path = {"chromium-browser": "/snap/bin/chromium-browser", "google-chrome": "/usr/bin/google-chrome"}
    monkeypatch.setattr(shutil, "which", on_path.get)
    assert chromium.find_chromium() == "/snap/bin/chromium-browser"


def test_non_executable_file_is_skipped(monkeypatch: pytest.MonkeyPatch, nothing_installed: Path) -> None:
    plain = nothing_installed / "chromium"
    plain.write_text("not a program")
    monkeypatch.setattr(chromium, "SYSTEM_CHROMIUM_PATHS", (str(plain),))
    assert chromium.find_chromium() is None


def test_playwright_registry_layout(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(platform, "system", lambda: "Linux")
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    monkeypatch.setenv("PLAYWRIGHT_BROWSERS_PATH", str(tmp_path))
    paths = chromium.playwright_chromium_paths()
    assert [path.relative_to(tmp_path).parts[1:] for path in paths] == [
        ("chrome-headless-shell-linux64", "chrome-headless-shell"),
        ("chrome-linux64", "chrome"),
    ]
    assert paths[0].relative_to(tmp_path).parts[0].startswith("chromium-headless-shell-")
    assert paths[1].relative_to(tmp_path).parts[0].startswith("chromium-")


def test_playwright_registry_in_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(platform, "system", lambda: "Linux")
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    monkeypatch.delenv("PLAYWRIGHT_BROWSERS_PATH", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    paths = chromium.playwright_chromium_paths()
    assert paths
    assert all(path.is_relative_to(tmp_path / "ms-playwright") for path in paths)
    assert paths[-1].parts[-2:] == ("chrome-linux-arm64", "chrome")


def test_no_playwright_registry_off_linux(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platform, "system", lambda: "Darwin")
    assert chromium.playwright_chromium_paths() == []
