"""``crawlfleet hosts``: how the fleet treats each host (docs/politeness.md), and the operator's
levers on it: policies, pause and resume."""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Sequence

from crawlfleet.cli.context import Context
from crawlfleet.cli.errors import EXIT_OK, UsageError
from crawlfleet.cli.render import ago, format_duration, message_dict, parse_duration, table, truncate, when
from crawlfleet.client import HostPolicyChange
from crawlfleet.common.hosts import host_of
from crawlfleet.common.urls import InvalidURL, normalize_url
from crawlfleet.v1 import admin_pb2

DEFAULT_LIMIT = 50
MAX_PAGE = 1000
ROBOTS = {"obey": True, "ignore": False}
# A pause ending this much later than asked was not the one asked for (clocks and calls take time).
PAUSE_END_SLACK = 5.0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    hosts = commands.add_parser(
        "hosts",
        help="hosts and their limits: list, show, set and clear policies, pause and resume",
        description="How the fleet treats each host: leases in flight, queued jobs, limits in force, pauses "
        "and failures; and the operator's levers. A HOST is spelled as the fleet spells it (shop.example, "
        "shop.example:8443) or given as a URL; a PATTERN is a host or a domain (*.shop.example). "
        "See docs/politeness.md.",
    )
    sub = hosts.add_subparsers(dest="hosts_command", required=True)
    listing = sub.add_parser("list", help="hosts in name order, with their state")
    listing.add_argument("--paused", action="store_true", help="only hosts paused now")
    listing.add_argument("--queued", action="store_true", help="only hosts with queued jobs")
    listing.add_argument("--prefix", metavar="P", help="only hosts whose name starts with this")
    listing.add_argument(
        "--limit", metavar="N", type=int, default=DEFAULT_LIMIT, help=f"at most this many (default {DEFAULT_LIMIT})"
    )
    listing.set_defaults(run=run_list)
    show = sub.add_parser("show", help="one host: limits, leases, queue, backoff, robots.txt")
    show.add_argument("host", metavar="HOST")
    show.set_defaults(run=run_show)
    policy = sub.add_parser(
        "set",
        help="set the policy of a host or a domain",
        description="Sets the policy of PATTERN, replacing the one it had; limits not given take the fleet "
        "defaults. Every known host it matches takes it at once (the most specific pattern wins).",
    )
    policy.add_argument("pattern", metavar="PATTERN")
    policy.add_argument(
        "--concurrency", type=int, metavar="N", help="leases in flight at once per matching host (1 to 10000)"
    )
    policy.add_argument(
        "--delay", metavar="SECONDS", help="least time between two lease starts per host: 0, 500ms, 2s, 1m"
    )
    policy.add_argument("--robots", choices=sorted(ROBOTS), help="obey or ignore robots.txt")
    policy.add_argument("--note", default="", metavar="TEXT", help="why the policy is there (shown with it)")
    policy.set_defaults(run=run_set)
    clear = sub.add_parser("clear", help="remove a policy: its hosts take the next one, or the fleet defaults")
    clear.add_argument("pattern", metavar="PATTERN")
    clear.set_defaults(run=run_clear)
    policies = sub.add_parser("policies", help="every host policy, in pattern order")
    policies.set_defaults(run=run_policies)
    pause = sub.add_parser(
        "pause",
        help="stop leasing a host's jobs, for a time or until resumed",
        description="Pauses HOST: its jobs stay queued, no lease of them starts. A longer pause in force stays "
        "(resume first to shorten one). When a timed pause ends, one lease at a time probes the host until one "
        "succeeds.",
    )
    pause.add_argument("host", metavar="HOST")
    pause.add_argument(
        "--for", dest="pause_for", metavar="SECONDS", help="how long: 30m, 2h, 1d (default: until resumed)"
    )
    pause.add_argument("--reason", default="", metavar="TEXT", help='recorded as "operator: REASON"')
    pause.set_defaults(run=run_pause)
    resume = sub.add_parser("resume", help="end a host's pause (any kind) and its failures in a row, now")
    resume.add_argument("host", metavar="HOST")
    resume.set_defaults(run=run_resume)


def host_argument(text: str) -> str:
    """The host of a URL, or the text as given (the coordinator checks its spelling)."""
    if "://" not in text:
        return text
    try:
        return host_of(normalize_url(text))
    except InvalidURL as exc:
        raise UsageError(f"not a host or a URL: {text!r} ({exc.reason})") from None


def limits(host: admin_pb2.Host) -> str:
    delay = format_duration(host.delay.ToNanoseconds() / 1e9) if host.delay.ToNanoseconds() else "no delay"
    return f"{host.max_concurrency} at once, {delay}, robots.txt {'obeyed' if host.obey_robots else 'ignored'}"


def queued(host: admin_pb2.Host) -> str:
    return f"{host.queued}+" if host.queued_capped else str(host.queued)


def status(host: admin_pb2.Host, now: dt.datetime) -> str:
    """What holds the host back now, if anything."""
    if host.paused:
        until = f"for {ago(host.paused_until, now).removeprefix('in ')}" if host.HasField("paused_until") else ""
        return " ".join(filter(None, ["paused", until or "until resumed", f"({host.pause_reason})"]))
    if host.probing:
        return "probing: one lease at a time until one succeeds"
    if host.error_streak:
        return f"{host.error_streak} failure(s) in a row"
    if host.saturated and host.queued:
        return "at its limit"
    if not host.HasField("ready_at"):
        return "idle" if not host.queued else "-"
    return "ready" if host.ready_at.ToDatetime(tzinfo=dt.UTC) <= now else f"next {ago(host.ready_at, now)}"


def policy_source(host: admin_pb2.Host) -> str:
    """Where the host's limits come from: ``default``, an operator's pattern, or a crawl's
    (``shop.example (crawl 7)``)."""
    if not host.policy_pattern:
        return "default"
    if not host.policy_crawl_ids:
        return host.policy_pattern
    ids = ", ".join(str(i) for i in host.policy_crawl_ids)
    return f"{host.policy_pattern} (crawl{'s' if len(host.policy_crawl_ids) > 1 else ''} {ids})"


def host_table(hosts: Sequence[admin_pb2.Host], now: dt.datetime) -> str:
    rows = [
        (
            h.host,
            queued(h),
            f"{h.in_flight}/{h.max_concurrency}",
            format_duration(h.delay.ToNanoseconds() / 1e9) if h.delay.ToNanoseconds() else "-",
            h.leases_started,
            policy_source(h),
            truncate(status(h, now), 70),
        )
        for h in hosts
    ]
    return table(["HOST", "QUEUED", "IN FLIGHT", "DELAY", "LEASES", "POLICY", "STATUS"], rows, right=[1, 2, 4])


def run_list(ctx: Context, ns: argparse.Namespace) -> int:
    if ns.limit < 1:
        raise UsageError("--limit must be at least 1")
    with ctx.client() as client:
        hosts = list(
            client.iter_hosts(
                paused_only=ns.paused,
                queued_only=ns.queued,
                prefix=ns.prefix,
                limit=ns.limit + 1,  # one more says whether more match
                page_size=min(MAX_PAGE, ns.limit + 1),
            )
        )
    more, hosts = len(hosts) > ns.limit, hosts[: ns.limit]
    if ctx.settings.json:
        ctx.json({"hosts": [message_dict(h) for h in hosts], "more": more})
        return EXIT_OK
    if not hosts:
        ctx.out("no hosts match")
        return EXIT_OK
    ctx.out(host_table(hosts, dt.datetime.now(dt.UTC)))
    if more:
        ctx.out(f"(first {len(hosts)}; more match: --limit N)")
    return EXIT_OK


def run_show(ctx: Context, ns: argparse.Namespace) -> int:
    with ctx.client() as client:
        host = client.get_host(host_argument(ns.host))
    if ctx.settings.json:
        ctx.json(message_dict(host))
        return EXIT_OK
    now = dt.datetime.now(dt.UTC)
    failures = host.recent_failures
    robots = host.robots
    crawl_delay = format_duration(robots.crawl_delay.ToNanoseconds() / 1e9) if robots.HasField("crawl_delay") else "-"
    fields: list[tuple[str, object]] = [
        ("host", host.host),
        ("policy", policy_source(host) if host.policy_pattern else "the fleet defaults"),
        ("limits", limits(host)),
        ("in flight", host.in_flight),
        ("queued", queued(host)),
        ("status", status(host, now)),
        ("next lease", when(host.ready_at, now) if host.HasField("ready_at") else "-"),
        ("paused until", when(host.paused_until, now) if host.HasField("paused_until") else "-"),
        ("pause reason", host.pause_reason or "-"),
        ("failures in a row", host.error_streak),
        (
            "recent failures",
            f"{failures.http_429} x 429, {failures.http_5xx} x 5xx, {failures.errors} other, "
            f"since {when(failures.window_started_at, now)}"
            if failures.HasField("window_started_at")
            else "none",
        ),
        (
            "robots.txt",
            f"{robots.state}, fetched {when(robots.fetched_at, now)}, expires {when(robots.expires_at, now)}",
        ),
        ("crawl delay", crawl_delay),
        ("leases started", host.leases_started),
        ("last lease", when(host.last_lease_at, now)),
    ]
    ctx.out(table(None, fields))
    return EXIT_OK


def policy_limits(policy: admin_pb2.HostPolicy) -> tuple[str, str, str]:
    """Concurrency, delay and robots.txt of a policy; "default" where it leaves the fleet default."""
    concurrency = str(policy.max_concurrency) if policy.HasField("max_concurrency") else "default"
    delay = "default"
    if policy.HasField("delay"):
        delay = format_duration(policy.delay.ToNanoseconds() / 1e9) if policy.delay.ToNanoseconds() else "0"
    robots = ("obey" if policy.obey_robots else "ignore") if policy.HasField("obey_robots") else "default"
    return concurrency, delay, robots


def change_json(change: HostPolicyChange, hosts_key: str) -> dict[str, object]:
    return {"policy": message_dict(change.policy), hosts_key: change.hosts}


def run_set(ctx: Context, ns: argparse.Namespace) -> int:
    delay = parse_duration(ns.delay) if ns.delay is not None else None
    robots = ROBOTS[ns.robots] if ns.robots is not None else None
    with ctx.client() as client:
        change = client.set_host_policy(
            ns.pattern, max_concurrency=ns.concurrency, delay=delay, obey_robots=robots, note=ns.note
        )
    if ctx.settings.json:
        ctx.json(change_json(change, "hosts_governed"))
        return EXIT_OK
    concurrency, shown_delay, shown_robots = policy_limits(change.policy)
    ctx.out(
        f"policy {change.policy.pattern}: concurrency {concurrency}, delay {shown_delay}, robots.txt {shown_robots}; "
        f"it governs {change.hosts} known host(s)"
    )
    return EXIT_OK


def run_clear(ctx: Context, ns: argparse.Namespace) -> int:
    with ctx.client() as client:
        change = client.clear_host_policy(ns.pattern)
    if ctx.settings.json:
        ctx.json(change_json(change, "hosts_released"))
        return EXIT_OK
    ctx.out(
        f"cleared the policy of {change.policy.pattern}; the {change.hosts} host(s) it governed take the next "
        "most specific policy or the fleet defaults"
    )
    return EXIT_OK


def run_policies(ctx: Context, ns: argparse.Namespace) -> int:
    with ctx.client() as client:
        policies = list(client.iter_host_policies(page_size=MAX_PAGE))
    if ctx.settings.json:
        ctx.json({"policies": [message_dict(p) for p in policies]})
        return EXIT_OK
    if not policies:
        ctx.out("no host policies: every host takes the fleet defaults")
        return EXIT_OK
    now = dt.datetime.now(dt.UTC)
    rows = [(p.pattern, *policy_limits(p), ago(p.updated_at, now), truncate(p.note, 60)) for p in policies]
    ctx.out(table(["PATTERN", "CONCURRENCY", "DELAY", "ROBOTS", "UPDATED", "NOTE"], rows))
    return EXIT_OK


def run_pause(ctx: Context, ns: argparse.Namespace) -> int:
    pause_for = parse_duration(ns.pause_for) if ns.pause_for is not None else None
    with ctx.client() as client:
        host = client.pause_host(host_argument(ns.host), pause_for=pause_for, reason=ns.reason)
    if ctx.settings.json:
        ctx.json(message_dict(host))
        return EXIT_OK
    now = dt.datetime.now(dt.UTC)
    ctx.out(f"{host.host}: {status(host, now)}; {queued(host)} queued job(s) wait")
    if pause_for is not None and outlasts(host, now + dt.timedelta(seconds=pause_for)):
        ctx.out("(a longer pause was in force and stays; resume the host first to shorten it)")
    return EXIT_OK


def outlasts(host: admin_pb2.Host, asked_end: dt.datetime) -> bool:
    """Whether the host's pause ends well after the end asked for (pauses only lengthen)."""
    if not host.HasField("paused_until"):
        return host.paused  # until resumed
    return host.paused_until.ToDatetime(tzinfo=dt.UTC) > asked_end + dt.timedelta(seconds=PAUSE_END_SLACK)


def run_resume(ctx: Context, ns: argparse.Namespace) -> int:
    with ctx.client() as client:
        host = client.resume_host(host_argument(ns.host))
    if ctx.settings.json:
        ctx.json(message_dict(host))
        return EXIT_OK
    ctx.out(f"{host.host}: resumed; {queued(host)} queued job(s), {status(host, dt.datetime.now(dt.UTC))}")
    return EXIT_OK
