"""A named query together with the row types it takes and returns.

Nothing crosses the SQL boundary as a positional tuple: a batch goes in as NamedTuple rows whose
fields become the query's leading array parameters (one per column, in field order, for
`unnest`), every other parameter is passed by name, and each result row comes back as a
NamedTuple whose fields are the query's result columns. Which types a query takes and returns is
declared once, in statements.py, and a test checks each declaration against the SQL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, Protocol, TypeVar, cast

from crawlfleet.coordinator.storage import sql

P = TypeVar("P", bound=tuple[Any, ...])
R = TypeVar("R", bound=tuple[Any, ...])


class NoColumns(NamedTuple):
    """What a statement without batch columns takes."""


class NoRows(NamedTuple):
    """What a statement whose rows nobody reads returns."""


class Executor(Protocol):
    """What runs a statement: an asyncpg pool or connection."""

    async def fetch(self, query: str, *args: Any, timeout: float | None = None) -> list[Any]: ...

    async def execute(self, query: str, *args: Any, timeout: float | None = None) -> str: ...


def row_fields(row_type: type[tuple[Any, ...]]) -> tuple[str, ...]:
    """The field names of a NamedTuple row type, i.e. the columns it stands for."""
    fields: tuple[str, ...] = cast(Any, row_type)._fields
    return fields


@dataclass(frozen=True, kw_only=True, slots=True)
class Statement(Generic[P, R]):
    """The named query `name`: its parameters are one array per field of `takes` (absent for
    NoColumns), then `params` in order; each result row is a `returns`."""

    name: str
    takes: type[P]
    returns: type[R]
    params: tuple[str, ...]

    @property
    def sql(self) -> str:
        return sql.query(self.name)

    def arguments(self, rows: Sequence[P] | None, params: Mapping[str, Any]) -> list[Any]:
        """The positional arguments of the query: the columns of `rows`, then `params` by name."""
        if params.keys() != set(self.params):
            raise TypeError(f"{self.name} takes parameters {self.params}, got {tuple(params)}")
        if (rows is None) != (self.takes is NoColumns):
            raise TypeError(f"{self.name} takes rows of {self.takes.__name__}, got {rows!r:.80}")
        if not rows:  # None, or an empty batch: one empty array per column
            columns: list[Any] = [[] for _ in row_fields(self.takes)]
        else:
            columns = [list(column) for column in zip(*rows, strict=True)]
        return [*columns, *(params[name] for name in self.params)]

    async def fetch(
        self, db: Executor, rows: Sequence[P] | None = None, *, timeout: float | None = None, **params: Any
    ) -> list[R]:
        """Run the query; its result rows."""
        make = self._make()
        return [make(record) for record in await db.fetch(self.sql, *self.arguments(rows, params), timeout=timeout)]

    async def fetch_one(
        self, db: Executor, rows: Sequence[P] | None = None, *, timeout: float | None = None, **params: Any
    ) -> R | None:
        """Run the query; its first result row, or None without any."""
        records = await db.fetch(self.sql, *self.arguments(rows, params), timeout=timeout)
        return self._make()(records[0]) if records else None

    async def execute(
        self, db: Executor, rows: Sequence[P] | None = None, *, timeout: float | None = None, **params: Any
    ) -> None:
        """Run the query for its effect."""
        await db.execute(self.sql, *self.arguments(rows, params), timeout=timeout)

    def _make(self) -> Callable[[Iterable[Any]], R]:
        # NamedTuple._make: a record iterates over its values in column order.
        make: Callable[[Iterable[Any]], R] = cast(Any, self.returns)._make
        return make


def statement(name: str, *, returns: type[R], params: tuple[str, ...] = ()) -> Statement[NoColumns, R]:
    """A query with named parameters only."""
    return Statement(name=name, takes=NoColumns, returns=returns, params=params)


def batch_statement(name: str, *, takes: type[P], returns: type[R], params: tuple[str, ...] = ()) -> Statement[P, R]:
    """A query whose leading parameters are the columns of a batch of `takes` rows."""
    return Statement(name=name, takes=takes, returns=returns, params=params)
