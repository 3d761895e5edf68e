"""Loads the named queries and the numbered migrations shipped in the ``crawlfleet.sql`` package."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from importlib.resources.abc import Traversable

SQL_DIR: Traversable = files("crawlfleet.sql")
_NAME_HEADER = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)
_MIGRATION_FILE = re.compile(r"^(\d{4})_(\w+)\.sql$")


@dataclass(frozen=True, kw_only=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def parse_queries(text: str) -> dict[str, str]:
    """Split a file of `-- name: x` sections into {name: sql}; comments stay in the SQL."""
    headers = list(_NAME_HEADER.finditer(text))
    queries: dict[str, str] = {}
    for header, following in zip(headers, [*headers[1:], None], strict=True):
        end = following.start() if following else len(text)
        name = header.group(1)
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice")
        queries[name] = text[header.end() : end].strip()
    return queries


@cache
def queries() -> dict[str, str]:
    """All named queries of sql/queries/*.sql, read once."""
    found: dict[str, str] = {}
    for path in _sql_files("queries"):
        for name, text in parse_queries(path.read_text(encoding="utf-8")).items():
            if name in found:
                raise ValueError(f"query {name!r} is defined twice ({path.name})")
            found[name] = text
    return found


def query(name: str) -> str:
    """The SQL of one named query."""
    try:
        return queries()[name]
    except KeyError:
        raise KeyError(f"no query named {name!r} in {SQL_DIR / 'queries'}") from None


@cache
def migrations() -> tuple[Migration, ...]:
    """The numbered migrations of sql/migrations, in order."""
    found = []
    for path in _sql_files("migrations"):
        match = _MIGRATION_FILE.match(path.name)
        if not match:
            raise ValueError(f"migration file {path.name!r} is not named NNNN_name.sql")
        found.append(Migration(version=int(match.group(1)), name=match.group(2), sql=path.read_text(encoding="utf-8")))
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise ValueError(f"migrations must be numbered 1..n without gaps, found {versions}")
    return tuple(found)


def _sql_files(folder: str) -> list[Traversable]:
    return sorted((f for f in (SQL_DIR / folder).iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
