"""`python -m app.worker`: run inbox workers alongside API replicas started with RUN_WORKER=false."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from app.config import Settings
from app.db import make_engine
from app.logging_setup import configure_logging
from app.migrations import schema_problem
from app.worker.runner import build_processor, run_worker_blocking

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
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    processor = build_processor(engine, settings)
    log.info("worker started")
    processed = run_worker_blocking(
        processor, stop, settings.worker_poll_interval_s, until_idle=args.until_idle
    )
    log.info("worker stopped", extra={"processed": processed})
    engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
