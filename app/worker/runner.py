"""The worker loop: in the API process (RUN_WORKER=true) or alone (`python -m app.worker`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine

from app.actions.service import ActionService
from app.config import Settings
from app.db import database_error_text, database_unreachable
from app.delivery.dispatcher import DispatchConfig, Dispatcher, DispatchOutcome
from app.delivery.facts import FactsResolver, db_hubspot_facts
from app.delivery.hubspot_gateway import HubSpotGateway
from app.delivery.zoom_gateway import ZoomGateway
from app.pull.jobs import JobRunner
from app.sync.inbox_processor import BatchOutcome, InboxProcessor, ProcessorConfig

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


# One round of a loop: True when there may be more work right away, False when idle, None when it
# saw `stop` itself and the loop must end now.
Step = Callable[[], Awaitable[bool | None]]


def threadsafe_wake(event: asyncio.Event) -> Callable[[], None]:
    """`event.set` for callers in any thread, bound to the running loop.

    `asyncio.Event` is not thread-safe: set from another thread, its waiter's wake-up is queued
    without waking the loop's selector, so a loop idling in `wait_for(wake, idle)` sleeps on until
    its timeout. The workflow action's database threads and the admin API's sync endpoints (run in
    a thread pool) wake loops, so they go through the loop's thread-safe queue.
    """
    loop = asyncio.get_running_loop()

    def wake() -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            event.set()
            return
        # A loop already closed (shutdown) has nothing left to wake.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(event.set)

    return wake


async def run_loop(
    name: str, step: Step, stop: asyncio.Event, wake: asyncio.Event, idle_wait_s: float, error_wait_s: float
) -> None:
    """Runs `step` until `stop`: again at once while it is busy, else once `wake` is set or after
    `idle_wait_s`. An unreachable database is said once and tried again with a growing delay
    (OutageWatch); any other error is logged and the round tried again after `error_wait_s`."""
    watch = OutageWatch(name)
    while not stop.is_set():
        try:
            busy = await step()
        except Exception as exc:  # the loop must survive anything (database restarting, a bug in one round)
            await asyncio.sleep(watch.failed(exc, error_wait_s))
            continue
        if busy is None:
            return
        watch.succeeded()
        if busy:
            continue
        wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout=idle_wait_s)


def dispatch_step(dispatcher: Dispatcher, stop: asyncio.Event) -> Step:
    """Delivers planned operations; stopped mid-round by `stop` (its claims handed back)."""

    async def step() -> bool | None:
        outcome = await _dispatch_round(dispatcher, stop)
        if outcome is None:
            return None
        return bool(outcome.done or outcome.retried or outcome.failed)  # there may be more

    return step


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


def inbox_step(processor: InboxProcessor, on_planned: Callable[[], None] | None = None) -> Step:
    """In-process worker: batches run in a thread so the event loop keeps answering webhooks."""

    async def step() -> bool:
        outcome = await asyncio.to_thread(processor.run_once)
        _log_outcome(outcome)
        if outcome.done and on_planned is not None:
            on_planned()
        return bool(outcome.claimed)

    return step


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


def actions_step(service: ActionService) -> Step:
    """Completes blocked workflow actions and sends their results to HubSpot's callbacks API."""

    async def step() -> bool:
        return (await service.run_once()).busy

    return step


def jobs_step(runner: JobRunner) -> Step:
    """Sync now, reconciliation and backfill pulls from Zoom, one job at a time per worker."""

    async def step() -> bool:
        return bool((await runner.run_once()).ran)

    return step


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

        def spawn(task_name: str, loop_name: str, step: Step, wake: asyncio.Event, idle_s: float) -> None:
            loop = run_loop(loop_name, step, stop, wake, idle_s, error_wait_s=poll * 10)
            self._tasks.append(asyncio.create_task(loop, name=task_name))

        self._tasks = []
        inbox = inbox_step(
            build_processor(self.engine, cfg, in_process=self.in_process), self.wake_dispatcher.set
        )
        spawn("inbox-worker", "inbox worker", inbox, self.wake_worker, poll)
        dispatch = dispatch_step(build_dispatcher(self.engine, cfg, self.hubspot, self.zoom), stop)
        spawn("outbox-dispatcher", "dispatch", dispatch, self.wake_dispatcher, poll)
        spawn(
            "action-completer",
            "workflow action",
            actions_step(self.actions),
            self.wake_actions,
            max(poll, 0.5),
        )
        if self.zoom is not None:
            zoom = self.zoom
            runner = JobRunner(self.engine, lambda account: zoom.client_for(account))
            spawn("sync-jobs", "sync job", jobs_step(runner), self.wake_jobs, max(poll, 0.5))

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
