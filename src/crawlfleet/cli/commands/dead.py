"""``crawlfleet dead list``, ``dead requeue`` and ``purge``: the dead letter, and retention."""

from __future__ import annotations

import argparse

from crawlfleet.cli.commands.jobs import add_filter_options, add_limit_options, has_filter, job_filter, print_jobs
from crawlfleet.cli.context import Context
from crawlfleet.cli.errors import EXIT_FAILED, EXIT_OK, UsageError
from crawlfleet.cli.render import TERMINAL_STATES, format_duration, id_ranges, parse_duration

DEFAULT_PURGE_BATCH = 10_000


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dead = commands.add_parser("dead", help="dead jobs: list them, requeue them")
    sub = dead.add_subparsers(dest="dead_command", required=True)
    listing = sub.add_parser("list", help="dead jobs with their last errors, newest first")
    add_filter_options(listing, states=False)
    add_limit_options(listing)
    listing.set_defaults(run=run_list)
    requeue = sub.add_parser(
        "requeue",
        help="dead jobs back to queued with a fresh attempt budget",
        description="Requeues dead jobs by id, every dead job matching filter options, or with --all every "
        "dead job (asks first; --yes to skip). A job whose URL already has a live job stays dead.",
    )
    requeue.add_argument("job_ids", type=int, nargs="*", metavar="ID")
    requeue.add_argument("--all", action="store_true", help="every dead job matching the filter options (or all)")
    add_filter_options(requeue, states=False)
    requeue.add_argument("--yes", "-y", action="store_true", help="do not ask before requeuing every dead job")
    requeue.set_defaults(run=run_requeue)
    purge = commands.add_parser(
        "purge",
        help="delete finished jobs older than a bound",
        description="Deletes succeeded, dead, cancelled and skipped jobs that finished longer ago than --older-than, "
        "with their history and results (images no page refers to go with them). Asks first; --yes to skip.",
    )
    purge.add_argument("--older-than", required=True, help="e.g. 7d, 12h, 0s")
    purge.add_argument("--state", action="append", default=[], help="only these: succeeded, dead, cancelled, skipped")
    purge.add_argument("--batch", type=int, default=DEFAULT_PURGE_BATCH, help="jobs per PurgeJobs call")
    purge.add_argument("--yes", "-y", action="store_true", help="do not ask")
    purge.set_defaults(run=run_purge)


def run_list(ctx: Context, ns: argparse.Namespace) -> int:
    return print_jobs(ctx, ns, job_filter(ns, states=["dead"]), error_width=90)


def run_requeue(ctx: Context, ns: argparse.Namespace) -> int:
    flt = job_filter(ns)
    if ns.job_ids:
        if ns.all or has_filter(flt):
            raise UsageError("give job ids, or --all / filter options, not both")
        with ctx.client() as client:
            requeued = client.requeue_dead(ns.job_ids)
    else:
        if not ns.all and not has_filter(flt):
            raise UsageError("give job ids, filter options (e.g. --error-type http_5xx), or --all")
        if not has_filter(flt):
            ctx.confirm("Requeue every dead job?", yes=ns.yes)
        with ctx.client() as client:
            requeued = client.requeue_dead(where=flt)
    missed = sorted(set(ns.job_ids) - set(requeued))
    if ctx.settings.json:
        ctx.json({"requeued": len(requeued), "requeued_job_ids": requeued, "not_requeued_job_ids": missed})
    else:
        ctx.out(f"requeued {len(requeued)} dead job(s)" + (f": {id_ranges(requeued)}" if requeued else ""))
        if missed:
            ctx.out(f"not requeued (not dead, or their URL has a live job): {id_ranges(missed)}")
    return EXIT_FAILED if missed else EXIT_OK


def run_purge(ctx: Context, ns: argparse.Namespace) -> int:
    older_than = parse_duration(ns.older_than)
    names = [s.strip() for arg in ns.state for s in arg.split(",") if s.strip()]
    for name in names:
        if name not in TERMINAL_STATES:
            raise UsageError(f"only finished jobs can be purged: succeeded, dead, cancelled, skipped (not {name!r})")
    if not 1 <= ns.batch <= 100_000:
        raise UsageError("--batch must be between 1 and 100000")
    which = ", ".join(names) if names else "succeeded, dead, cancelled and skipped"
    ctx.confirm(
        f"Delete {which} jobs finished more than {format_duration(older_than)} ago, with their results?", yes=ns.yes
    )
    jobs = images = 0
    progress = ctx.progress("purge")
    with ctx.client() as client:
        for batch in client.purge_batches(older_than, states=names, batch_size=ns.batch):
            jobs += batch.jobs
            images += batch.images
            progress.update(jobs, None)
    progress.finish()
    if ctx.settings.json:
        ctx.json({"deleted_jobs": jobs, "deleted_images": images})
    else:
        ctx.out(f"purged {jobs} job(s) and {images} image(s) no page refers to any more")
    return EXIT_OK
