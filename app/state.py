"""What the running app holds: built in the lifespan, never at import time."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine

from app.config import Settings
from app.ingest.inbox_writer import InboxWriter


@dataclass
class AppState:
    settings: Settings
    engine: Engine
    # Admin GETs read through this one (`make_engine(..., read_only=True)`): on SQLite they never
    # wait for the write lock, and on both databases a write through it fails.
    read_engine: Engine
    inbox_writer: InboxWriter
    extras: dict[str, Any] = field(default_factory=dict)
