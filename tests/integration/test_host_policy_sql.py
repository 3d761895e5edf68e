"""The database decides which policy covers a host exactly as common/hosts.py does."""

from __future__ import annotations

import asyncpg

from crawlfleet.common.hosts import pattern_matches

PATTERNS = ["shop.example", "shop.example:8443", "*.shop.example", "*.eu.shop.example", "*.shop.example:81"]
HOSTS = ["shop.example", "shop.example:8443", "www.shop.example", "a.eu.shop.example", "x.shop.example:81",
         "myshop.example", "other.example"]  # fmt: skip


async def test_sql_and_python_agree_on_matches(db: asyncpg.Pool) -> None:
    for pattern in PATTERNS:
        for host in HOSTS:
            in_sql = await db.fetchval("SELECT crawlfleet_pattern_matches($1, $2)", pattern, host)
            assert in_sql is pattern_matches(pattern, host), (pattern, host)


async def test_the_most_specific_policy_wins(db: asyncpg.Pool) -> None:
    for n, pattern in enumerate(PATTERNS):
        await db.execute(
            "INSERT INTO host_policies (pattern, max_concurrency, updated_at) VALUES ($1, $2, now())", pattern, n + 1
        )
    chosen = {
        host: await db.fetchval("SELECT (crawlfleet_host_policy($1)).pattern", host)
        for host in ["shop.example", "shop.example:8443", "shop.example:9000", "www.shop.example",
                     "a.eu.shop.example", "x.shop.example:81", "other.example"]
    }  # fmt: skip
    assert chosen == {
        "shop.example": "shop.example",
        "shop.example:8443": "shop.example:8443",
        "shop.example:9000": "shop.example",
        "www.shop.example": "*.shop.example",
        "a.eu.shop.example": "*.eu.shop.example",
        "x.shop.example:81": "*.shop.example:81",
        "other.example": None,
    }
