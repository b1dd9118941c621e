"""`python -m app.worker`: run workers alongside API replicas started with RUN_WORKER=false.

A worker processes the inbox, delivers planned operations to HubSpot and completes blocked
workflow actions. `--until-idle` processes the inbox only, then exits (batch jobs, benchmarks).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import threading
import time

from sqlalchemy.engine import Engine

from app.actions.resources import build_action_resources
from app.actions.service import ActionService
from app.config import Settings
from app.db import make_engine
from app.delivery.hubspot_gateway import HubSpotGateway
from app.delivery.zoom_gateway import ZoomGateway
from app.logging_setup import configure_logging
from app.migrations import schema_problem
from app.worker.runner import Background, build_processor, run_worker_blocking

log = logging.getLogger("app.worker")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.worker", description=__doc__)
    parser.add_argument(
        "--until-idle", action="store_true", help="exit once the inbox has nothing left to do"
    )
    args = parser.parse_args(argv)
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    engine = make_engine(settings.database_url)
    problem = schema_problem(engine)
    if problem is not None:
        # A worker on an old schema could write rows the new code misreads: refuse to start.
        print(f"worker refuses to start: {problem}", file=sys.stderr)
        return 2
    if not args.until_idle:
        asyncio.run(_serve(engine, settings))
        engine.dispose()
        return 0
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    processor = build_processor(engine, settings)
    log.info("worker started", extra={"until_idle": True})
    processed = run_worker_blocking(processor, stop, settings.worker_poll_interval_s, until_idle=True)
    log.info("worker stopped", extra={"processed": processed})
    engine.dispose()
    return 0


async def _serve(engine: Engine, settings: Settings) -> None:
    """Inbox, delivery and action completion until SIGTERM/SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    hubspot = HubSpotGateway(settings, engine)
    zoom = ZoomGateway(settings, engine=engine)
    action_resources = build_action_resources(engine)
    actions = ActionService(
        action_resources,
        zoom_for=lambda account, interactive: zoom.client_for(account, interactive=interactive),
        hubspot_for=hubspot.client_for,
    )
    background = Background(engine, settings, hubspot, actions, zoom)
    background.start(stop)
    log.info("worker started")
    await stop.wait()
    # Graceful: each loop ends its round; a dispatch round still sending after a few seconds is
    # cancelled and its operations handed back, so another worker takes them at once (runner.py).
    stopping = time.monotonic()
    log.info("worker stopping")
    await background.wait()
    await hubspot.aclose()
    await zoom.aclose()
    action_resources.close()
    log.info("worker stopped", extra={"stop_s": round(time.monotonic() - stopping, 2)})


if __name__ == "__main__":
    sys.exit(main())
