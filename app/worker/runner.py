"""The worker loop: in the API process (RUN_WORKER=true) or alone (`python -m app.worker`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time

from sqlalchemy.engine import Engine

from app.config import Settings
from app.worker.inbox_processor import BatchOutcome, InboxProcessor, ProcessorConfig

log = logging.getLogger(__name__)


def build_processor(engine: Engine, settings: Settings) -> InboxProcessor:
    return InboxProcessor(
        engine,
        ProcessorConfig(
            batch_size=settings.worker_batch_size,
            max_attempts=settings.worker_max_attempts,
            retry_base_s=settings.worker_retry_base_s,
        ),
    )


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
    processor: InboxProcessor, stop: asyncio.Event, wake: asyncio.Event, poll_interval_s: float
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
