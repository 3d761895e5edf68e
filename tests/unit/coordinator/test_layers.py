"""The coordinator's layers by their imports: storage knows nothing of the API above it, and each
servicer reaches only the store of its own service."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import crawlfleet.coordinator.api
import crawlfleet.coordinator.storage

STORAGE = Path(crawlfleet.coordinator.storage.__file__).parent
API = Path(crawlfleet.coordinator.api.__file__).parent


def imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
            modules.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
    return modules


@pytest.mark.parametrize("path", sorted(STORAGE.glob("*.py")), ids=lambda p: p.name)
def test_storage_does_not_import_the_api(path: Path) -> None:
    assert not {m for m in imported_modules(path) if m.startswith("crawlfleet.coordinator.api")}


@pytest.mark.parametrize(
    ("servicer", "other_store"),
    [
        ("job_queue.py", "crawlfleet.coordinator.storage.admin"),
        ("job_queue.py", "crawlfleet.coordinator.storage.hosts"),
        ("admin.py", "crawlfleet.coordinator.storage.queue"),
        ("hosts.py", "crawlfleet.coordinator.storage.queue"),
        ("hosts.py", "crawlfleet.coordinator.storage.admin"),
    ],
)
def test_each_servicer_uses_only_its_own_store(servicer: str, other_store: str) -> None:
    assert other_store not in imported_modules(API / servicer)
