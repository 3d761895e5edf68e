"""What ``crawlfleet workers`` prints: each worker's slots, and a dash for a worker that does not report them."""

from __future__ import annotations

import datetime as dt

from google.protobuf import timestamp_pb2

from crawlfleet.cli.commands.queue import worker_table
from crawlfleet.v1 import admin_pb2

NOW = dt.datetime(2030, 1, 1, 12, 0, tzinfo=dt.UTC)


def at(minutes_ago: float) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(NOW - dt.timedelta(minutes=minutes_ago))
    return ts


def test_the_table_has_each_workers_slots() -> None:
    workers = [
        admin_pb2.WorkerStatus(
            worker_id="w-new", host="h1", version="1", in_flight=3, slots=8, first_seen_at=at(5), last_seen_at=at(0)
        ),
        admin_pb2.WorkerStatus(
            worker_id="w-old", host="h2", version="1", in_flight=2, first_seen_at=at(5), last_seen_at=at(0)
        ),
    ]
    header, new, old = worker_table(workers, NOW).splitlines()
    assert header.split()[4:7] == ["IN", "FLIGHT", "SLOTS"]
    assert new.split()[3:6] == ["all", "3", "8"]
    assert old.split()[3:6] == ["all", "2", "-"]
