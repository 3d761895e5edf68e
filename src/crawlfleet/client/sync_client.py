"""``Client``: the blocking client of a coordinator, for scripts, notebooks and threads."""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import grpc

from crawlfleet.client import calls, crawls
from crawlfleet.client.crawl_specs import CrawlLike, crawl_spec
from crawlfleet.client.crawls import CancelledCrawl, CrawlPage, StartedCrawl
from crawlfleet.client.errors import ConfigurationError, InvalidArgument, JobsNotFound, from_rpc_error
from crawlfleet.client.models import (
    EnqueuedJob,
    HostPage,
    HostPolicyChange,
    HostPolicyPage,
    JobOutcome,
    JobPage,
    PurgeCounts,
    QueueStats,
    ResultPage,
    WatchUpdate,
)
from crawlfleet.client.settings import (
    DEFAULT_CALL_TIMEOUT,
    DEFAULT_COORDINATOR,
    ClientSettings,
    security,
    settings_from_env,
)
from crawlfleet.client.specs import JobFilter, JobLike, Seconds, job_spec
from crawlfleet.client.watching import DEFAULT_RECONNECT_FOR, WatchSession
from crawlfleet.common.channel import CredentialsError, open_channel
from crawlfleet.common.states import JobState
from crawlfleet.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    crawls_pb2,
    crawls_pb2_grpc,
    job_queue_pb2,
    job_queue_pb2_grpc,
    jobs_pb2,
)

Request = TypeVar("Request")
Response = TypeVar("Response")
PathLike = str | os.PathLike[str]


class Client:
    """A blocking client of one coordinator: enqueue jobs, wait for them, run crawls, read results,
    operate the queue.

    Use it as a context manager, or ``close()`` it. Failed calls raise a ``ClientError`` subclass;
    each call has the ``call_timeout`` deadline. A client may be shared between threads.
    """

    def __init__(
        self,
        coordinator: str = DEFAULT_COORDINATOR,
        *,
        token: str | None = None,
        tls: bool = False,
        tls_ca: PathLike | None = None,
        tls_cert: PathLike | None = None,
        tls_key: PathLike | None = None,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
        channel_options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        """Connects lazily to ``coordinator`` (``host:port``). ``token`` is the bearer token; TLS is
        on with ``tls=True`` (system roots) or a ``tls_ca``; ``tls_cert`` and ``tls_key`` for mTLS."""
        self.settings = ClientSettings(
            coordinator=coordinator,
            security=security(token=token, tls=tls, tls_ca=tls_ca, tls_cert=tls_cert, tls_key=tls_key),
            call_timeout=call_timeout,
            channel_options=tuple(channel_options),
        )
        try:
            self._channel = open_channel(coordinator, self.settings.security, self.settings.options())
        except CredentialsError as exc:
            raise ConfigurationError(str(exc)) from None
        self._queue = job_queue_pb2_grpc.JobQueueStub(self._channel)
        self._admin = admin_pb2_grpc.AdminStub(self._channel)
        self._crawls = crawls_pb2_grpc.CrawlsStub(self._channel)

    @classmethod
    def from_settings(cls, settings: ClientSettings) -> Client:
        """A client with ``settings``."""
        sec = settings.security
        return cls(
            settings.coordinator,
            token=sec.token,
            tls=sec.tls,
            tls_ca=sec.tls_ca,
            tls_cert=sec.tls_cert,
            tls_key=sec.tls_key,
            call_timeout=settings.call_timeout,
            channel_options=settings.channel_options,
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Client:
        """A client configured by the ``CRAWLFLEET_*`` variables the ``crawlfleet`` command reads."""
        return cls.from_settings(settings_from_env(environ))

    def close(self) -> None:
        """Closes the channel; calls in flight fail."""
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # Producing

    def enqueue(self, job: JobLike) -> EnqueuedJob:
        """Enqueues one job: a URL, a ``ScrapeJob`` or a ``JobSpec``. A job whose URL (or
        idempotency key) has a live job already returns that job, with ``created=False``."""
        response = self._call(self._queue.Enqueue, job_queue_pb2.EnqueueRequest(jobs=[job_spec(job)]))
        return calls.enqueued(response)[0]

    def enqueue_many(
        self, jobs: Iterable[JobLike], *, batch_size: int = calls.DEFAULT_ENQUEUE_BATCH
    ) -> list[EnqueuedJob]:
        """Enqueues jobs in batches of ``batch_size`` (one call each), in order; see ``enqueue``.

        Each batch is atomic; when one fails, the batches before it stay enqueued (an
        ``InvalidArgument`` names the offending job's position in ``job_index``).
        """
        return [job for batch in self.enqueue_batches(jobs, batch_size=batch_size) for job in batch]

    def enqueue_batches(
        self, jobs: Iterable[JobLike], *, batch_size: int = calls.DEFAULT_ENQUEUE_BATCH
    ) -> Iterator[list[EnqueuedJob]]:
        """Like ``enqueue_many``, handing out each batch's jobs as soon as it is enqueued (for progress)."""
        for offset, request in calls.enqueue_batches(jobs, batch_size):
            try:
                response = self._call(self._queue.Enqueue, request)
            except InvalidArgument as error:
                calls.locate(error, offset)
                raise
            yield calls.enqueued(response)

    # Waiting

    def watch(
        self,
        job_ids: Iterable[int] = (),
        *,
        all_unfinished: bool = False,
        timeout: float | None = None,
        reconnect_for: float = DEFAULT_RECONNECT_FOR,
    ) -> Iterator[WatchUpdate]:
        """Updates as the jobs finish, until every one has: the first at once (those already
        finished, and ids not found), then one whenever some finish.

        ``all_unfinished`` also watches every job queued or leased at the start. A stream the
        coordinator ends (drain) or a dropped connection is reopened for the jobs still unfinished,
        for up to ``reconnect_for`` seconds of failures. Raises ``WaitTimeout`` after ``timeout``
        seconds.
        """
        session = WatchSession(job_ids, all_unfinished=all_unfinished, timeout=timeout, reconnect_for=reconnect_for)
        while not session.done:
            request, deadline = session.open_stream()
            call = self._queue.WatchJobs(request, timeout=deadline)
            try:
                for response in call:
                    yield session.absorb(response)
                delay = session.stream_ended()
            except grpc.RpcError as error:
                delay = session.retry_delay(error)
            finally:
                call.cancel()
            if delay > 0 and not session.done:
                time.sleep(delay)

    def wait(self, job_ids: Iterable[int], *, timeout: float | None = None) -> dict[int, JobOutcome]:
        """Blocks until every job finished; the outcome of each, by id.

        Raises ``JobsNotFound`` for ids that match no job, ``WaitTimeout`` (with what finished so
        far) after ``timeout`` seconds.
        """
        ids = list(dict.fromkeys(job_ids))
        outcomes: dict[int, JobOutcome] = {}
        for update in self.watch(ids, timeout=timeout):
            if update.not_found:
                raise JobsNotFound(update.not_found)
            outcomes.update((o.job_id, o) for o in update.finished)
        return {job_id: outcomes[job_id] for job_id in ids}

    # Reading

    def get_job(self, job_id: int) -> jobs_pb2.Job:
        """One job with its attempts and result; ``NotFound`` when there is no such job."""
        return self._call(self._admin.GetJob, admin_pb2.GetJobRequest(job_id=job_id)).job

    def list_jobs(self, where: JobFilter | None = None, *, page_size: int = 50, page_token: str = "") -> JobPage:
        """One page of jobs matching ``where``, newest first (without attempts and results)."""
        request = calls.list_jobs_request(where, page_size, page_token)
        return calls.job_page(self._call(self._admin.ListJobs, request))

    def iter_jobs(
        self,
        where: JobFilter | None = None,
        *,
        limit: int | None = None,
        page_size: int = calls.DEFAULT_PAGE_SIZE,
    ) -> Iterator[jobs_pb2.Job]:
        """Every job matching ``where`` (at most ``limit``), newest first, a page per call."""
        paging = calls.Paging(page_size, limit)
        while not paging.done:
            page = self.list_jobs(where, page_size=paging.page_size(), page_token=paging.token)
            yield from page.jobs[: paging.take(page.jobs, page.next_page_token)]

    def list_results(
        self,
        *,
        kind: str | None = None,
        crawl_id: int | None = None,
        page_size: int = 100,
        page_token: str = "",
        changed_since: dt.datetime | None = None,
        url_prefix: str | None = None,
    ) -> ResultPage:
        """One page of results of succeeded jobs (of one crawl's pages with ``crawl_id``), in job id
        order (thumbnail bytes left out)."""
        request = calls.list_results_request(
            kind, page_size, page_token, crawl_id, changed_since=changed_since, url_prefix=url_prefix
        )
        return calls.result_page(self._call(self._admin.ListResults, request))

    def iter_results(
        self,
        *,
        kind: str | None = None,
        crawl_id: int | None = None,
        limit: int | None = None,
        page_size: int = calls.DEFAULT_PAGE_SIZE,
        changed_since: dt.datetime | None = None,
        url_prefix: str | None = None,
    ) -> Iterator[admin_pb2.ResultEntry]:
        """Results of succeeded jobs (of ``kind``: scrape, sitemap, noop; of one crawl's pages with
        ``crawl_id``), in job id order, a page per call.

        ``changed_since`` keeps the pages that changed since then (fetched in full since, with new
        content); ``url_prefix`` the jobs whose normalized target URL starts with it."""
        paging = calls.Paging(page_size, limit)
        while not paging.done:
            page = self.list_results(
                kind=kind,
                crawl_id=crawl_id,
                page_size=paging.page_size(),
                page_token=paging.token,
                changed_since=changed_since,
                url_prefix=url_prefix,
            )
            yield from page.results[: paging.take(page.results, page.next_page_token)]

    def get_thumbnail(self, sha256: str) -> jobs_pb2.Thumbnail:
        """A stored thumbnail with its bytes, by the SHA-256 a result lists."""
        return self._call(self._admin.GetThumbnail, admin_pb2.GetThumbnailRequest(sha256=sha256)).thumbnail

    def stats(self) -> QueueStats:
        """Jobs by state, and by kind and state."""
        return QueueStats.from_proto(self._call(self._admin.GetQueueStats, admin_pb2.GetQueueStatsRequest()))

    def health(
        self, *, expiring_within: Seconds | None = None, workers_seen_within: Seconds | None = None
    ) -> admin_pb2.GetQueueHealthResponse:
        """Queue health: depth, due jobs, leases expiring and expired, dead jobs, workers seen."""
        request = calls.health_request(expiring_within, workers_seen_within)
        return self._call(self._admin.GetQueueHealth, request)

    def list_workers(self, *, seen_within: Seconds | None = None) -> list[admin_pb2.WorkerStatus]:
        """Workers seen within ``seen_within`` (default 5 minutes), with their leases in flight."""
        return list(self._call(self._admin.ListWorkers, calls.workers_request(seen_within)).workers)

    # Crawls

    def start_crawl(self, crawl: CrawlLike) -> StartedCrawl:
        """Starts a crawl: a seed URL, seed URLs (the coordinator's defaults for the rest), a
        ``CrawlSpec`` or a ``crawlfleet.v1.CrawlSpec``. Its id and the seeds enqueued."""
        response = self._call(self._crawls.StartCrawl, crawls_pb2.StartCrawlRequest(spec=crawl_spec(crawl)))
        return StartedCrawl(response.crawl_id, response.seeds_enqueued)

    def get_crawl(self, crawl_id: int) -> crawls_pb2.Crawl:
        """A crawl with its progress: jobs by state and by depth, errors, pages per second;
        ``NotFound`` when there is no such crawl (or it is another producer's)."""
        return self._call(self._crawls.GetCrawl, crawls_pb2.GetCrawlRequest(crawl_id=crawl_id)).crawl

    def list_crawls(self, *, page_size: int = crawls.DEFAULT_CRAWL_PAGE_SIZE, page_token: str = "") -> CrawlPage:
        """One page of crawls, newest first (without job counts, errors and depths)."""
        request = crawls.list_crawls_request(page_size, page_token)
        return crawls.crawl_page(self._call(self._crawls.ListCrawls, request))

    def iter_crawls(
        self, *, limit: int | None = None, page_size: int = crawls.MAX_CRAWL_PAGE_SIZE
    ) -> Iterator[crawls_pb2.Crawl]:
        """Every crawl (at most ``limit``), newest first, a page per call; see ``list_crawls``."""
        crawls.list_crawls_request(page_size, "")
        paging = calls.Paging(page_size, limit)
        while not paging.done:
            page = self.list_crawls(page_size=paging.page_size(), page_token=paging.token)
            yield from page.crawls[: paging.take(page.crawls, page.next_page_token)]

    def refresh_crawl(self, crawl_id: int) -> StartedCrawl:
        """Crawls an ended crawl again now, as a new crawl whose pages are fetched with conditional
        GETs (docs/crawls.md); the new crawl. An unknown crawl raises NotFound; a running or already
        refreshed one Conflict."""
        response = self._call(self._crawls.RefreshCrawl, crawls_pb2.RefreshCrawlRequest(crawl_id=crawl_id))
        return StartedCrawl(response.crawl_id, response.seeds_enqueued)

    def cancel_crawl(self, crawl_id: int) -> CancelledCrawl:
        """Stops a crawl's discovery and cancels its queued jobs; its leased jobs stop at their next
        heartbeat. A crawl that had finished stays finished."""
        response = self._call(self._crawls.CancelCrawl, crawls_pb2.CancelCrawlRequest(crawl_id=crawl_id))
        return CancelledCrawl.from_proto(response)

    def wait_crawl(
        self,
        crawl_id: int,
        *,
        timeout: Seconds | None = None,
        interval: Seconds = crawls.DEFAULT_WATCH_INTERVAL,
        on_progress: Callable[[crawls_pb2.Crawl], object] | None = None,
        reconnect_for: float = DEFAULT_RECONNECT_FOR,
    ) -> crawls_pb2.Crawl:
        """Blocks until the crawl has finished or was cancelled; the crawl as it ended.

        ``on_progress`` gets the crawl at once and again whenever its counts change, as the
        coordinator sees every ``interval`` seconds (0.2 to 60). Raises ``NotFound`` for a crawl
        that does not exist, ``CrawlWaitTimeout`` (a ``WaitTimeout``, with the crawl as last seen)
        after ``timeout`` seconds. A stream a coordinator ends (drain) or a dropped connection is
        reopened, for up to ``reconnect_for`` seconds of failures.
        """
        session = crawls.CrawlWatch(crawl_id, timeout=timeout, interval=interval, reconnect_for=reconnect_for)
        while not session.done:
            request, deadline = session.open_stream()
            call = self._crawls.WatchCrawl(request, timeout=deadline)
            try:
                for response in call:
                    crawl = session.absorb(response)
                    if on_progress is not None:
                        on_progress(crawl)
                delay = session.stream_ended()
            except grpc.RpcError as error:
                delay = session.retry_delay(error)
            finally:
                call.cancel()
            if delay > 0 and not session.done:
                time.sleep(delay)
        assert session.last is not None  # done: a message said the crawl ended
        return session.last

    # Repairing

    def cancel(self, job_id: int) -> JobState:
        """Cancels a job; the state it is in after: CANCELLED, LEASED (it stops at its worker's next
        heartbeat) or the state it had already finished in."""
        response = self._call(self._admin.CancelJob, admin_pb2.CancelJobRequest(job_id=job_id))
        return JobState.from_proto(response.state)

    def requeue_dead(
        self,
        job_ids: Iterable[int] = (),
        *,
        where: JobFilter | None = None,
        batch_size: int = calls.DEFAULT_REQUEUE_BATCH,
    ) -> list[int]:
        """Dead jobs back to queued with a fresh attempt budget: those of ``job_ids``, or every dead
        job matching ``where`` (``JobFilter()``: all of them). The ids requeued; a job whose URL
        has a live job meanwhile stays dead."""
        ids = list(job_ids)
        if (where is None) == (not ids):
            raise ValueError("give job_ids or where=JobFilter(...), one of them")
        if where is None:
            return [i for r in calls.requeue_id_requests(ids) for i in self._requeue(r).requeued_job_ids]
        run = calls.RequeueByFilter(where, batch_size)
        while run.absorb(self._requeue(run.request)):
            pass
        return run.requeued

    def purge_batches(
        self,
        older_than: Seconds,
        *,
        states: Sequence[JobState | str] = (),
        batch_size: int = calls.DEFAULT_PURGE_BATCH,
    ) -> Iterator[PurgeCounts]:
        """Deletes finished jobs (of ``states``: succeeded, dead, cancelled, skipped; default all)
        that finished longer than ``older_than`` ago, with their results, a batch per call; what
        each call deleted."""
        request = calls.purge_request(older_than, states, batch_size)
        while True:
            response = self._call(self._admin.PurgeJobs, request)
            yield PurgeCounts(response.deleted_jobs, response.deleted_images)
            if response.deleted_jobs < batch_size:
                return

    def purge(
        self,
        older_than: Seconds,
        *,
        states: Sequence[JobState | str] = (),
        batch_size: int = calls.DEFAULT_PURGE_BATCH,
    ) -> PurgeCounts:
        """Like ``purge_batches``; the totals."""
        batches = list(self.purge_batches(older_than, states=states, batch_size=batch_size))
        return PurgeCounts(sum(b.jobs for b in batches), sum(b.images for b in batches))

    # Hosts

    def list_hosts(
        self,
        *,
        paused_only: bool = False,
        queued_only: bool = False,
        prefix: str | None = None,
        page_size: int = 100,
        page_token: str = "",
    ) -> HostPage:
        """One page of the hosts the fleet knows, in host order: only paused ones, only those with
        queued jobs, only names starting with ``prefix``."""
        request = calls.list_hosts_request(paused_only, queued_only, prefix, page_size, page_token)
        return calls.host_page(self._call(self._admin.ListHosts, request))

    def iter_hosts(
        self,
        *,
        paused_only: bool = False,
        queued_only: bool = False,
        prefix: str | None = None,
        limit: int | None = None,
        page_size: int = calls.DEFAULT_PAGE_SIZE,
    ) -> Iterator[admin_pb2.Host]:
        """Every host matching the filters (at most ``limit``), in host order, a page per call."""
        paging = calls.Paging(page_size, limit)
        while not paging.done:
            page = self.list_hosts(
                paused_only=paused_only,
                queued_only=queued_only,
                prefix=prefix,
                page_size=paging.page_size(),
                page_token=paging.token,
            )
            yield from page.hosts[: paging.take(page.hosts, page.next_page_token)]

    def get_host(self, host: str) -> admin_pb2.Host:
        """One host (``shop.example``, ``shop.example:8443``): limits in force, leases in flight,
        queued jobs, backoff, robots.txt; ``NotFound`` when no job was ever enqueued for it."""
        return self._call(self._admin.GetHost, admin_pb2.GetHostRequest(host=host)).host

    def set_host_policy(
        self,
        pattern: str,
        *,
        max_concurrency: int | None = None,
        delay: Seconds | None = None,
        obey_robots: bool | None = None,
        note: str = "",
    ) -> HostPolicyChange:
        """Sets the policy of a host (``shop.example``) or a domain (``*.shop.example``), replacing
        any it had; limits left None take the fleet defaults. The policy, and the known hosts it governs."""
        request = calls.set_host_policy_request(pattern, max_concurrency, delay, obey_robots, note)
        return calls.set_policy_change(self._call(self._admin.SetHostPolicy, request))

    def clear_host_policy(self, pattern: str) -> HostPolicyChange:
        """Removes a pattern's policy (``NotFound`` without one); the policy, and the hosts it governed."""
        request = admin_pb2.ClearHostPolicyRequest(pattern=pattern)
        return calls.cleared_policy_change(self._call(self._admin.ClearHostPolicy, request))

    def list_host_policies(self, *, page_size: int = 100, page_token: str = "") -> HostPolicyPage:
        """One page of host policies, in pattern order."""
        request = calls.list_host_policies_request(page_size, page_token)
        return calls.host_policy_page(self._call(self._admin.ListHostPolicies, request))

    def iter_host_policies(
        self, *, limit: int | None = None, page_size: int = calls.DEFAULT_PAGE_SIZE
    ) -> Iterator[admin_pb2.HostPolicy]:
        """Every host policy (at most ``limit``), in pattern order, a page per call."""
        paging = calls.Paging(page_size, limit)
        while not paging.done:
            page = self.list_host_policies(page_size=paging.page_size(), page_token=paging.token)
            yield from page.policies[: paging.take(page.policies, page.next_page_token)]

    def pause_host(self, host: str, *, pause_for: Seconds | None = None, reason: str = "") -> admin_pb2.Host:
        """Stops leasing a host's jobs for ``pause_for`` (None: until resumed); its jobs stay queued.
        A longer pause in force stays. The host afterwards."""
        request = calls.pause_host_request(host, pause_for, reason)
        return self._call(self._admin.PauseHost, request).host

    def resume_host(self, host: str) -> admin_pb2.Host:
        """Ends a host's pause (whoever paused it) and its failures in a row; the host afterwards."""
        return self._call(self._admin.ResumeHost, admin_pb2.ResumeHostRequest(host=host)).host

    def _requeue(self, request: admin_pb2.RequeueDeadJobsRequest) -> admin_pb2.RequeueDeadJobsResponse:
        return self._call(self._admin.RequeueDeadJobs, request)

    def _call(self, method: grpc.UnaryUnaryMultiCallable[Request, Response], request: Request) -> Response:
        """One unary call with the deadline; the one place a failed call becomes a ``ClientError``."""
        try:
            return method(request, timeout=self.settings.call_timeout)
        except grpc.RpcError as error:
            raise from_rpc_error(error) from error
