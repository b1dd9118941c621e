"""Timeline-style activities (registration, attendance, recording: CONTRACT §4, §4.2) and the one
interface every writer has, whatever the portal's timeline backend.

A handler turns its operations into `Activity` values (the facts, keyed by the activity's stable id:
the same as the classic timeline event id, `event_id("zoom-reg", ...)` etc.), and the portal's writer
(`writer_for`, chosen at set-up) sends them: classic v3 events (`activity_classic`), 2026-03 app
events (`activity_app_events`), notes (`activity_notes`), or nothing (`off`). A writer answers one
`Result` per activity key; the handler maps them back onto its operations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from sqlalchemy.engine import Engine

from app.delivery.ops import DONE, Result
from app.integrations.hubspot import HubSpotClient
from app.integrations.hubspot.setup import (
    TEMPLATE_ATTENDANCE,
    TEMPLATE_RECORDABLE_EVENT,
    TEMPLATE_REGISTRATION,
    PortalSetup,
)
from app.models import TimelineBackend

FAILED_REASON = "timeline_event_failed"  # the audit reason of a failed activity, in every backend


class ActivityKind(StrEnum):
    """One per timeline template; the values are the activity names of HUBSPOT_APP_EVENT_TYPES."""

    REGISTRATION = "registration"
    ATTENDANCE = "attendance"
    RECORDING = "recording"

    @property
    def template(self) -> str:
        """The classic template whose tokens name this activity's values."""
        return _TEMPLATES[self]


_TEMPLATES = {
    ActivityKind.REGISTRATION: TEMPLATE_REGISTRATION,
    ActivityKind.ATTENDANCE: TEMPLATE_ATTENDANCE,
    ActivityKind.RECORDING: TEMPLATE_RECORDABLE_EVENT,
}


@dataclass(frozen=True)
class Activity:
    """One activity on one contact. `values` are Python values named by the template's tokens
    (`setup_templates.TEMPLATE_TOKENS`): text, numbers, aware datetimes; None is left out."""

    kind: ActivityKind
    key: str  # stable id: the timeline event id, the app event id, the note's marker
    contact_id: str
    timestamp: datetime
    values: Mapping[str, object]


class ActivityWriter(Protocol):
    async def write(self, client: HubSpotClient, activities: Sequence[Activity]) -> dict[str, Result]:
        """Send the activities; a result per activity key (DONE includes "already there")."""
        ...


class OffWriter:
    """`off`: nothing is written, and the operations finish as done (CONTRACT §4.2: "off writes
    none"); contacts, marketing events and the audit log go on as in every other mode."""

    async def write(self, client: HubSpotClient, activities: Sequence[Activity]) -> dict[str, Result]:
        return {activity.key: DONE for activity in activities}


def writer_for(setup: PortalSetup, engine: Engine, portal_id: int, *, batch_size: int) -> ActivityWriter:
    """The writer of the portal's timeline backend, chosen at set-up."""
    # Imported here: each backend's module imports this one for `Activity`.
    from app.delivery.activity_app_events import AppEventsWriter
    from app.delivery.activity_classic import ClassicWriter
    from app.delivery.activity_notes import NotesWriter

    backend = setup.timeline_backend
    if backend is TimelineBackend.CLASSIC:
        return ClassicWriter(setup.templates, batch_size=batch_size)
    if backend is TimelineBackend.APP_EVENTS:
        return AppEventsWriter(setup.app_event_types, batch_size=batch_size)
    if backend is TimelineBackend.NOTES:
        return NotesWriter(engine, portal_id)
    return OffWriter()
