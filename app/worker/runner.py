"""The worker loop: in the API process (RUN_WORKER=true) or alone (`python -m app.worker`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine

from app.actions.service import ActionService
from app.config import Settings
from app.db import database_error_text, database_unreachable
from app.delivery.dispatcher import DispatchConfig, Dispatcher, DispatchOutcome
from app.delivery.facts import FactsResolver, db_hubspot_facts
from app.delivery.gateway import HubSpotGateway
from app.pull.jobs import JobRunner
from app.sync.inbox_processor import BatchOutcome, InboxProcessor, ProcessorConfig
from app.zoom_gateway import ZoomGateway

log = logging.getLogger(__name__)


# On SQLite the in-process worker and the webhook intake share one write lock: a long batch makes
# webhook answers wait for it, so the in-process worker takes smaller bites there.
SQLITE_IN_PROCESS_BATCH = 100

# While the database is unreachable a loop tries again after a delay growing from the first to the
# last of these (cheap: one refused or timed-out connection attempt), so it resumes within a few
# seconds of the database's return without spinning meanwhile.
OUTAGE_RETRY_S = (0.5, 1.0, 2.0, 4.0)
# After SIGTERM: a dispatch round still running after this is cancelled and its operations handed
# back (a round can take minutes against a slow HubSpot; the process must exit within ~10 s).
ROUND_GRACE_S = 3.0
# After SIGTERM: whatever loop is still busy after this is cancelled (Background.wait).
STOP_GRACE_S = 6.0


class OutageWatch:
    """One loop's view of database outages: says once that the database is unreachable and once
    that it is back (not once per attempt), and how long to wait before the next attempt."""

    def __init__(self, loop_name: str) -> None:
        self.loop_name = loop_name
        self.down_since: float | None = None
        self.attempts = 0

    def failed(self, exc: BaseException, other_error_delay_s: float) -> float:
        """Seconds to wait before the next round, after `exc` ended this one."""
        if not database_unreachable(exc):
            log.exception("%s round failed", self.loop_name)
            return other_error_delay_s
        if self.down_since is None:
            self.down_since = time.monotonic()
            log.warning(
                "database unreachable; %s waits and tries again",
                self.loop_name,
                extra={"error": database_error_text(exc)},
            )
        delay = OUTAGE_RETRY_S[min(self.attempts, len(OUTAGE_RETRY_S) - 1)]
        self.attempts += 1
        return delay

    def succeeded(self) -> None:
        if self.down_since is not None:
            log.warning(
                "database reachable again; %s resumes",
                self.loop_name,
                extra={"unreachable_s": round(time.monotonic() - self.down_since, 1)},
            )
            self.down_since = None
            self.attempts = 0


def build_processor(engine: Engine, settings: Settings, *, in_process: bool = False) -> InboxProcessor:
    batch_size = settings.worker_batch_size
    if in_process and settings.is_sqlite:
        batch_size = min(batch_size, SQLITE_IN_PROCESS_BATCH)
    return InboxProcessor(
        engine,
        ProcessorConfig(
            batch_size=batch_size,
            max_attempts=settings.worker_max_attempts,
            retry_base_s=settings.worker_retry_base_s,
            zoom_api=settings.has_zoom_api,
            reconcile_delay_s=settings.reconcile_delay_s,
        ),
        hubspot_facts=db_hubspot_facts,
    )


def build_dispatcher(
    engine: Engine, settings: Settings, gateway: HubSpotGateway, zoom: ZoomGateway | None = None
) -> Dispatcher:
    return Dispatcher(
        engine,
        client_for=gateway.client_for,
        setup_for=gateway.setup_for,
        facts=FactsResolver(engine),
        config=DispatchConfig(
            retry_base_s=settings.dispatch_retry_base_s,
            max_attempts=settings.dispatch_max_attempts,
            settle_s=settings.attendance_settle_s,
        ),
        transcripts=zoom.download_transcript if zoom is not None else None,
    )


async def run_dispatcher_async(
    dispatcher: Dispatcher, stop: asyncio.Event, wake: asyncio.Event, poll_interval_s: float
) -> None:
    """Delivers planned operations; woken when the inbox worker planned something."""
    watch = OutageWatch("dispatch")
    while not stop.is_set():
        try:
            outcome = await _dispatch_round(dispatcher, stop)
        except Exception as exc:  # the loop must survive anything (database restarting, a bug in one round)
            await asyncio.sleep(watch.failed(exc, poll_interval_s * 10))
            continue
        if outcome is None:
            return  # stopped mid-round
        watch.succeeded()
        if outcome.done or outcome.retried or outcome.failed:
            continue  # there may be more
        wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout=poll_interval_s)


async def _dispatch_round(dispatcher: Dispatcher, stop: asyncio.Event) -> DispatchOutcome | None:
    """One round; None when `stop` came first and the round was stopped (its claims handed back)."""
    round_task = asyncio.create_task(dispatcher.run_once(), name="outbox-round")
    stopping = asyncio.create_task(stop.wait(), name="outbox-round-stop")
    try:
        await asyncio.wait({round_task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not round_task.done():
            await asyncio.wait({round_task}, timeout=ROUND_GRACE_S)
        if round_task.done():
            return round_task.result()
    except asyncio.CancelledError:
        pass  # cancelled from outside (Background.wait): the same as a stop
    finally:
        stopping.cancel()
    round_task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await round_task
    # Sending them again is harmless (every HubSpot write is idempotent); waiting out their lease
    # (15 s) would only delay the worker that takes over.
    released = await asyncio.to_thread(dispatcher.release_claims)
    log.info("dispatch round stopped", extra={"released": released})
    return None


def _log_outcome(outcome: BatchOutcome) -> None:
    if outcome.failed or outcome.dead or outcome.retried:
        log.warning(
            "inbox batch had problems",
            extra={
                "done": outcome.done,
                "retried": outcome.retried,
                "failed": outcome.failed,
                "dead": outcome.dead,
            },
        )


async def run_worker_async(
    processor: InboxProcessor,
    stop: asyncio.Event,
    wake: asyncio.Event,
    poll_interval_s: float,
    on_planned: Callable[[], None] | None = None,
) -> None:
    """In-process worker: batches run in a thread so the event loop keeps answering webhooks."""
    watch = OutageWatch("inbox worker")
    while not stop.is_set():
        try:
            outcome = await asyncio.to_thread(processor.run_once)
        except Exception as exc:  # the loop must survive anything (e.g. database restarting)
            await asyncio.sleep(watch.failed(exc, poll_interval_s * 10))
            continue
        watch.succeeded()
        _log_outcome(outcome)
        if outcome.done and on_planned is not None:
            on_planned()
        if outcome.claimed:
            continue
        wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout=poll_interval_s)


def run_worker_blocking(
    processor: InboxProcessor, stop: threading.Event, poll_interval_s: float, *, until_idle: bool = False
) -> int:
    """Standalone worker process. Returns the number of events processed."""
    processed = 0
    watch = OutageWatch("inbox worker")
    while not stop.is_set():
        try:
            outcome = processor.run_once()
        except Exception as exc:
            stop.wait(watch.failed(exc, poll_interval_s * 10))
            continue
        watch.succeeded()
        _log_outcome(outcome)
        processed += outcome.done + outcome.dead + outcome.failed
        if outcome.claimed == 0 and not outcome.errors:
            if until_idle:
                break
            stop.wait(poll_interval_s)
    return processed


async def run_actions_async(
    service: ActionService, stop: asyncio.Event, wake: asyncio.Event, poll_interval_s: float
) -> None:
    """Completes blocked workflow actions and sends their results to HubSpot's callbacks API."""
    watch = OutageWatch("workflow action")
    while not stop.is_set():
        try:
            outcome = await service.run_once()
        except Exception as exc:  # the loop must survive anything
            await asyncio.sleep(watch.failed(exc, poll_interval_s * 10))
            continue
        watch.succeeded()
        if outcome.busy:
            continue
        wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout=max(poll_interval_s, 0.5))


async def run_jobs_async(
    runner: JobRunner, stop: asyncio.Event, wake: asyncio.Event, poll_interval_s: float
) -> None:
    """Sync now, reconciliation and backfill pulls from Zoom, one job at a time per worker."""
    watch = OutageWatch("sync job")
    while not stop.is_set():
        try:
            outcome = await runner.run_once()
        except Exception as exc:  # the loop must survive anything
            await asyncio.sleep(watch.failed(exc, poll_interval_s * 10))
            continue
        watch.succeeded()
        if outcome.ran:
            continue
        wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout=max(poll_interval_s, 0.5))


@dataclass
class Background:
    """Everything a worker runs: inbox processing, HubSpot delivery, workflow-action completion.

    The API process runs it when RUN_WORKER=true; `python -m app.worker` runs it alone.
    """

    engine: Engine
    settings: Settings
    hubspot: HubSpotGateway
    actions: ActionService
    zoom: ZoomGateway | None = None
    in_process: bool = False
    wake_worker: asyncio.Event = field(default_factory=asyncio.Event)
    wake_dispatcher: asyncio.Event = field(default_factory=asyncio.Event)
    wake_actions: asyncio.Event = field(default_factory=asyncio.Event)
    wake_jobs: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self, stop: asyncio.Event) -> None:
        cfg = self.settings
        poll = cfg.worker_poll_interval_s
        self._tasks = [
            asyncio.create_task(
                run_worker_async(
                    build_processor(self.engine, cfg, in_process=self.in_process),
                    stop,
                    self.wake_worker,
                    poll,
                    self.wake_dispatcher.set,
                ),
                name="inbox-worker",
            ),
            asyncio.create_task(
                run_dispatcher_async(
                    build_dispatcher(self.engine, cfg, self.hubspot, self.zoom),
                    stop,
                    self.wake_dispatcher,
                    poll,
                ),
                name="outbox-dispatcher",
            ),
            asyncio.create_task(
                run_actions_async(self.actions, stop, self.wake_actions, poll), name="action-completer"
            ),
        ]
        if self.zoom is not None:
            zoom = self.zoom
            runner = JobRunner(self.engine, lambda account: zoom.client_for(account))
            self._tasks.append(
                asyncio.create_task(run_jobs_async(runner, stop, self.wake_jobs, poll), name="sync-jobs")
            )

    async def wait(self, grace_s: float = STOP_GRACE_S) -> None:
        """After `stop` was set: wait for the loops to end, cancelling those still busy after
        `grace_s` (the process must exit within ~10 s of SIGTERM)."""
        self.wake_worker.set()
        self.wake_dispatcher.set()
        self.wake_actions.set()
        self.wake_jobs.set()
        if not self._tasks:
            return
        _, busy = await asyncio.wait(self._tasks, timeout=grace_s)
        for task in busy:
            log.warning("%s still busy %g s after stop; cancelling it", task.get_name(), grace_s)
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
