"""The `notes` activity writer: one note per activity on the contact (CONTRACT §4.2), the fallback
every account can receive.

A note has no idempotency key at HubSpot, so each is created once, the way call records are
(`recordings`): `hubspot_note.attempted_at` is committed before the create goes out and the note id is
stored as soon as the answer arrives. A row with `attempted_at` and no id is a create whose answer was
lost (5xx, timeout, crash): the next attempt first looks among the contact's notes for the one carrying
the activity's marker, and creates only when there is none. The lookup reads the contact's note
associations (not CRM search, whose index lags behind writes); that an inline association is listed
as soon as the create returned is assumed (UNVERIFIED at HubSpot, true of the sandbox).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import col

from app.db import unit_of_work, utcnow
from app.delivery.activity_writer import FAILED_REASON, Activity, ActivityKind
from app.delivery.ops import DONE, Result, hubspot_failure
from app.integrations.hubspot import BATCH_LIMIT, HubSpotClient, HubSpotError
from app.integrations.hubspot.client import may_have_reached_hubspot
from app.models import HubSpotNote
from app.util import chunks

log = logging.getLogger(__name__)

NOTE_BODY = "hs_note_body"
MARKER_PREFIX = "zoom-activity:"


def note_marker(key: str) -> str:
    """The activity's mark in its note's body: what a lost create is looked up by."""
    return MARKER_PREFIX + key


def _when(value: object) -> str | None:
    if not isinstance(value, datetime):
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _duration(seconds: object) -> str | None:
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        return None
    total = round(seconds)
    return f"{total} seconds ({total // 3600}:{total % 3600 // 60:02d}:{total % 60:02d})"


def _items(rows: Sequence[tuple[str, str | None]]) -> str:
    return "".join(f"<li>{escape(label)}: {value}</li>" for label, value in rows if value is not None)


def note_body(activity: Activity) -> str:
    """The note's HTML: the same facts as the timeline event, every value escaped, and the marker."""
    v = activity.values
    text = {k: escape(str(value)) for k, value in v.items() if value is not None}
    if activity.kind is ActivityKind.REGISTRATION:
        head = f"Registered for the Zoom webinar <strong>{text.get('webinar_name', '')}</strong>"
        rows = [("Webinar ID", text.get("webinar_id")), ("Registered", _when(activity.timestamp))]
    elif activity.kind is ActivityKind.ATTENDANCE:
        head = f"Attended the Zoom webinar <strong>{text.get('webinar_name', '')}</strong>"
        percent = v.get("attendance_percent")
        rows = [
            ("Webinar ID", text.get("webinar_id")),
            ("Webinar date", _when(v.get("webinar_date"))),
            ("Joined", _when(v.get("join_time"))),
            ("Left", _when(v.get("leave_time"))),
            ("Time attended", _duration(v.get("attendance_duration_seconds"))),
            (
                "Share of the webinar attended",
                f"{round(float(percent), 1)}%" if isinstance(percent, int | float) else None,
            ),
        ]
    else:
        head = f"Zoom recording: <strong>{text.get('topic', '')}</strong>"
        url = text.get("recording_url")
        rows = [
            ("Started", _when(v.get("start_time"))),
            ("Recording", f'<a href="{url}">{url}</a>' if url else None),
        ]
    return f"<p>{head}</p><ul>{_items(rows)}</ul><p>{escape(note_marker(activity.key))}</p>"


def note_properties(activity: Activity) -> dict[str, str]:
    stamp = activity.timestamp.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {"hs_timestamp": stamp, NOTE_BODY: note_body(activity)}


class NotesWriter:
    def __init__(self, engine: Engine, portal_id: int) -> None:
        self.engine = engine
        self.portal_id = portal_id

    async def write(self, client: HubSpotClient, activities: Sequence[Activity]) -> dict[str, Result]:
        portal_id = self.portal_id
        keys = [activity.key for activity in activities]
        rows = await asyncio.to_thread(self._rows, portal_id, keys)
        results: dict[str, Result] = {}
        for activity in activities:
            try:
                results[activity.key] = await self._one(client, portal_id, activity, rows.get(activity.key))
            except HubSpotError as exc:
                results[activity.key] = hubspot_failure(exc, FAILED_REASON)
        return results

    async def _one(
        self, client: HubSpotClient, portal_id: int, activity: Activity, row: HubSpotNote | None
    ) -> Result:
        if row is not None and row.note_id:
            return DONE  # created before: notes are written once and never changed
        if row is not None and row.attempted_at is not None:
            found = await self._find(client, row.contact_id or activity.contact_id, activity.key)
            if found is not None:
                log.info(
                    "note found by its marker after a lost answer",
                    extra={"portal_id": portal_id, "note_id": found},
                )
                await asyncio.to_thread(self._store, portal_id, activity.key, found)
                return DONE
        await asyncio.to_thread(self._intend, portal_id, activity)
        try:
            created = await client.create_note(
                note_properties(activity), activity.contact_id, at_most_once=True
            )
        except HubSpotError as exc:
            if not may_have_reached_hubspot(exc):
                await asyncio.to_thread(self._forget, portal_id, activity.key)  # refused: nothing to look for
            raise
        await asyncio.to_thread(self._store, portal_id, activity.key, created.id)
        return DONE

    async def _find(self, client: HubSpotClient, contact_id: str, key: str) -> str | None:
        """The oldest of the contact's notes carrying the activity's marker, if any."""
        marker = note_marker(key)
        found: list[str] = []
        ids = await client.contact_note_ids(contact_id)
        for part in chunks(sorted(set(ids), key=lambda i: (len(i), i)), BATCH_LIMIT):
            for note in await client.read_notes(part, [NOTE_BODY]):
                if marker in (note.properties.get(NOTE_BODY) or ""):
                    found.append(note.id)
        return min(found, key=lambda i: (len(i), i)) if found else None

    # ---- hubspot_note ---------------------------------------------------------------------------------

    def _rows(self, portal_id: int, keys: Sequence[str]) -> dict[str, HubSpotNote]:
        out: dict[str, HubSpotNote] = {}
        with unit_of_work(self.engine) as session:
            for part in chunks(list(keys), 400):
                rows = session.execute(
                    select(HubSpotNote).where(
                        col(HubSpotNote.portal_id) == portal_id, col(HubSpotNote.activity_key).in_(part)
                    )
                ).scalars()
                for row in rows:
                    session.expunge(row)
                    out[row.activity_key] = row
        return out

    def _intend(self, portal_id: int, activity: Activity) -> None:
        """Committed before the create is sent: `attempted_at` set, no note id yet."""
        now = utcnow()
        with unit_of_work(self.engine) as session:
            row = session.get(HubSpotNote, (portal_id, activity.key))
            if row is None:
                row = HubSpotNote(portal_id=portal_id, activity_key=activity.key, created_at=now)
                session.add(row)
            row.contact_id = activity.contact_id
            row.attempted_at = now
            row.updated_at = now

    def _forget(self, portal_id: int, key: str) -> None:
        with unit_of_work(self.engine) as session:
            row = session.get(HubSpotNote, (portal_id, key))
            if row is not None and row.note_id is None:
                row.attempted_at = None
                row.updated_at = utcnow()

    def _store(self, portal_id: int, key: str, note_id: str) -> None:
        with unit_of_work(self.engine) as session:
            row = session.get(HubSpotNote, (portal_id, key))
            if row is None:
                row = HubSpotNote(portal_id=portal_id, activity_key=key)
                session.add(row)
            row.note_id = note_id
            row.updated_at = utcnow()
