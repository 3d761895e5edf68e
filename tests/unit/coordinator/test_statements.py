"""Statements against the text of their SQL, and how they turn rows and names into arguments."""

from __future__ import annotations

import re
import uuid
from typing import Any, NamedTuple

import pytest

from crawlfleet.coordinator.storage import statements
from crawlfleet.coordinator.storage.rows import Completion
from crawlfleet.coordinator.storage.statement import NoColumns, NoRows, Statement, batch_statement, row_fields

_PARAMETER = re.compile(r"\$(\d+)")
# unnest(<the batch columns>) [WITH ORDINALITY] AS t(<their names>)
_UNNEST = re.compile(r"unnest\((?P<args>[^()]*)\)\s*(?P<ordinality>WITH ORDINALITY\s+)?AS t\((?P<names>[^()]*)\)", re.S)

BATCHES = [s for s in statements.ALL if s.takes is not NoColumns]


def test_statements_are_declared_once_per_query() -> None:
    names = [s.name for s in statements.ALL]
    assert len(names) == len(set(names))
    assert {"job_enqueue_many", "job_complete_if_leased_many", "page_insert_many", "job_get"} <= set(names)


@pytest.mark.parametrize("statement", statements.ALL, ids=lambda s: s.name)
def test_sql_numbers_one_parameter_per_column_and_name(statement: Statement[Any, Any]) -> None:
    used = {int(n) for n in _PARAMETER.findall(statement.sql)}
    declared = len(row_fields(statement.takes)) + len(statement.params)
    assert used == set(range(1, declared + 1))


@pytest.mark.parametrize("statement", BATCHES, ids=lambda s: s.name)
def test_batch_columns_are_unnested_in_field_order_under_field_names(statement: Statement[Any, Any]) -> None:
    (match,) = _UNNEST.finditer(statement.sql)
    fields = row_fields(statement.takes)
    assert [int(n) for n in _PARAMETER.findall(match["args"])] == list(range(1, len(fields) + 1))
    names = [name.strip() for name in match["names"].split(",")]
    if match["ordinality"]:
        names = names[:-1]  # the ordinal column WITH ORDINALITY adds
    assert tuple(names) == fields


class Pair(NamedTuple):
    a: int
    b: str


PAIRS = batch_statement("pairs", takes=Pair, returns=NoRows, params=("x", "y"))


def test_arguments_are_the_columns_of_the_rows_then_the_params_in_declared_order() -> None:
    rows = [Pair(1, "one"), Pair(2, "two")]
    assert PAIRS.arguments(rows, {"y": "Y", "x": "X"}) == [[1, 2], ["one", "two"], "X", "Y"]
    assert PAIRS.arguments([], {"x": 0, "y": 0}) == [[], [], 0, 0]


def test_arguments_refuse_missing_or_unknown_names_and_misplaced_rows() -> None:
    with pytest.raises(TypeError, match="takes parameters"):
        PAIRS.arguments([], {"x": 0})
    with pytest.raises(TypeError, match="takes parameters"):
        PAIRS.arguments([], {"x": 0, "y": 0, "z": 0})
    with pytest.raises(TypeError, match="takes rows of Pair"):
        PAIRS.arguments(None, {"x": 0, "y": 0})
    with pytest.raises(TypeError, match="takes rows of NoColumns"):
        statements.JOB_GET.arguments([Pair(1, "one")], {"job_id": 1, "owner": None})  # type: ignore[list-item]


def test_completions_become_the_three_arrays_of_job_complete_if_leased_many() -> None:
    token = uuid.uuid4()
    arguments = statements.JOB_COMPLETE_IF_LEASED_MANY.arguments(
        [Completion(job_id=7, lease_token=token, result=b"r")], {"now": None, "principal": None}
    )
    assert arguments == [[7], [token], [b"r"], None, None]
