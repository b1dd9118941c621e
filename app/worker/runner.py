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
from app.delivery.dispatcher import DispatchConfig, Dispatcher
from app.delivery.facts import FactsResolver, db_hubspot_facts
from app.delivery.gateway import HubSpotGateway
from app.pull.jobs import JobRunner
from app.worker.inbox_processor import BatchOutcome, InboxProcessor, ProcessorConfig
from app.zoom_gateway import ZoomGateway

log = logging.getLogger(__name__)


# On SQLite the in-process worker and the webhook intake share one write lock: a long batch makes
# webhook answers wait for it, so the in-process worker takes smaller bites there.
SQLITE_IN_PROCESS_BATCH = 100


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
    while not stop.is_set():
        try:
            outcome = await dispatcher.run_once()
        except Exception:  # the loop must survive anything (database restarting, a bug in one round)
            log.exception("dispatch round failed")
            await asyncio.sleep(poll_interval_s * 10)
            continue
        if outcome.done or outcome.retried or outcome.failed:
            continue  # there may be more
        wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout=poll_interval_s)


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
    while not stop.is_set():
        try:
            outcome = await asyncio.to_thread(processor.run_once)
        except Exception:  # the loop must survive anything (e.g. database restarting)
            log.exception("worker round failed")
            outcome = BatchOutcome()
            await asyncio.sleep(poll_interval_s * 10)
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
    while not stop.is_set():
        try:
            outcome = processor.run_once()
        except Exception:
            log.exception("worker round failed")
            time.sleep(poll_interval_s * 10)
            continue
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
    while not stop.is_set():
        try:
            outcome = await service.run_once()
        except Exception:  # the loop must survive anything
            log.exception("workflow action round failed")
            await asyncio.sleep(poll_interval_s * 10)
            continue
        if outcome.busy:
            continue
        wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout=max(poll_interval_s, 0.5))


async def run_jobs_async(
    runner: JobRunner, stop: asyncio.Event, wake: asyncio.Event, poll_interval_s: float
) -> None:
    """Sync now, reconciliation and backfill pulls from Zoom, one job at a time per worker."""
    while not stop.is_set():
        try:
            outcome = await runner.run_once()
        except Exception:  # the loop must survive anything
            log.exception("sync job round failed")
            await asyncio.sleep(poll_interval_s * 10)
            continue
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

    async def wait(self) -> None:
        self.wake_worker.set()
        self.wake_dispatcher.set()
        self.wake_actions.set()
        self.wake_jobs.set()
        await asyncio.gather(*self._tasks)
