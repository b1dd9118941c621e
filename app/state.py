"""What the running app holds: built in the lifespan, never at import time."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from app.config import Settings
from app.ingest.inbox_writer import InboxWriter

if TYPE_CHECKING:  # the service imports the app's whole action stack; the state only names it
    from app.actions.service import ActionService

Wake = Callable[[], None]


@dataclass
class AppState:
    settings: Settings
    engine: Engine
    # Admin GETs read through this one (`make_engine(..., read_only=True)`): on SQLite they never
    # wait for the write lock, and on both databases a write through it fails.
    read_engine: Engine
    inbox_writer: InboxWriter
    # The workflow action's service (set in the lifespan before the first request is served).
    action_service: ActionService | None = None
    # Wake-ups of the in-process background loops; None when the worker runs in other processes
    # (RUN_WORKER=false), whose loops poll instead.
    wake_worker: Wake | None = None
    wake_jobs: Wake | None = None
