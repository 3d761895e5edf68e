from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.processes import Fleet


@pytest.fixture
def fleet(tmp_path: Path, db_dsn: str) -> Iterator[Fleet]:
    """Processes of one test, all killed before its database is dropped (hence db_dsn)."""
    fleet = Fleet(tmp_path)
    yield fleet
    fleet.kill_all()
