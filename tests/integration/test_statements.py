"""Every declared statement against the real database: the parameters PostgreSQL infers for its
SQL and the columns it returns must match the row types and parameter names it is declared with."""

from __future__ import annotations

import datetime as dt
import types
import typing
import uuid
from typing import Any

import asyncpg
import pytest

from crawlfleet.coordinator.storage import statements
from crawlfleet.coordinator.storage.rows import CompletedJob, LeaseRef
from crawlfleet.coordinator.storage.statement import NoColumns, NoRows, Statement, batch_statement, row_fields

# The PostgreSQL types each Python annotation of a row field may stand for.
PG_TYPES: dict[object, set[str]] = {
    int: {"int2", "int4", "int8"},
    float: {"float4", "float8"},
    str: {"text", "jsonb", "job_state"},
    bytes: {"bytea"},
    bool: {"bool"},
    dt.datetime: {"timestamptz"},
    uuid.UUID: {"uuid"},
    type(None): {"void"},
    list[str]: {"text[]"},
    list[int]: {"int8[]"},
    list[int | None]: {"int8[]"},
    list[bool]: {"bool[]"},
    list[bytes | None]: {"bytea[]"},
}


def pg_types(annotation: object) -> set[str]:
    """The PostgreSQL type names an annotation allows (X | None allows those of X)."""
    if isinstance(annotation, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        return set().union(*(pg_types(a) for a in members))
    return PG_TYPES[annotation]


def field_types(row_type: type[tuple[Any, ...]]) -> list[tuple[str, object]]:
    hints = typing.get_type_hints(row_type)
    return [(name, hints[name]) for name in row_fields(row_type)]


def check(statement: Statement[Any, Any], prepared: Any) -> list[str]:
    """How the prepared SQL disagrees with the declaration (nothing when they agree)."""
    problems = []
    parameters = prepared.get_parameters()
    columns = field_types(statement.takes)
    if len(parameters) != len(columns) + len(statement.params):
        problems.append(
            f"the SQL has {len(parameters)} parameters; declared: {len(columns)} columns of "
            f"{statement.takes.__name__} {row_fields(statement.takes)} then {statement.params}"
        )
    for n, ((name, annotation), parameter) in enumerate(zip(columns, parameters, strict=False), start=1):
        element = parameter.name.removesuffix("[]")
        if parameter.kind != "array" or element not in pg_types(annotation):
            problems.append(f"${n} ({parameter.name}[{parameter.kind}]) does not take the {name} column ({annotation})")
    if statement.returns is not NoRows:
        attributes = prepared.get_attributes()
        names = tuple(a.name for a in attributes)
        if names != row_fields(statement.returns):
            fields = row_fields(statement.returns)
            problems.append(f"returns columns {names}, {statement.returns.__name__} has {fields}")
        for (name, annotation), attribute in zip(field_types(statement.returns), attributes, strict=False):
            if attribute.type.name not in pg_types(annotation):
                problems.append(f"column {attribute.name} is {attribute.type.name}, {name} is {annotation}")
    return problems


@pytest.mark.parametrize("statement", statements.ALL, ids=lambda s: s.name)
async def test_statement_matches_its_sql(db: asyncpg.Pool, statement: Statement[Any, Any]) -> None:
    async with db.acquire() as conn:
        prepared = await conn.prepare(statement.sql)
        assert check(statement, prepared) == []


async def test_a_row_type_one_column_short_of_its_query_is_caught(db: asyncpg.Pool) -> None:
    # LeaseRef lacks the result column of a Completion.
    wrong = batch_statement(
        "job_complete_if_leased_many", takes=LeaseRef, returns=CompletedJob, params=("now", "principal")
    )
    async with db.acquire() as conn:
        problems = check(wrong, await conn.prepare(wrong.sql))
    assert problems == [
        "the SQL has 5 parameters; declared: 2 columns of LeaseRef ('job_id', 'lease_token') then ('now', 'principal')"
    ]


async def test_swapped_or_renamed_result_columns_are_caught(db: asyncpg.Pool) -> None:
    class Swapped(typing.NamedTuple):
        kind: str
        id: int
        spec: bytes
        attempt: int
        max_attempts: int
        lease_token: uuid.UUID
        lease_expires_at: dt.datetime

    lease = statements.JOB_LEASE_AVAILABLE
    wrong = Statement(name=lease.name, takes=NoColumns, returns=Swapped, params=lease.params)
    async with db.acquire() as conn:
        problems = check(wrong, await conn.prepare(wrong.sql))
    assert any("returns columns" in p for p in problems)
    assert any("column id is int8, kind is <class 'str'>" in p for p in problems)
