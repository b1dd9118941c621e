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
    inbox_writer: InboxWriter
    extras: dict[str, Any] = field(default_factory=dict)
