"""The `notes` activity writer creates each note once (CONTRACT §4.2), against the in-process HubSpot
sandbox on SQLite and PostgreSQL: the intent is committed before the create goes out, the id stored
as soon as it is answered; after a lost answer (or a crash before it) the note is looked for among the
contact's notes, by the activity's marker, before any second create."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI
from sqlmodel import Session, select

from app.db import unit_of_work
from app.delivery.activity_notes import NotesWriter, note_body, note_marker
from app.delivery.activity_writer import Activity, ActivityKind
from app.delivery.ops import DONE, Verdict
from app.integrations.hubspot import HubSpotClient, InProcessRateLimiter
from app.models import HubSpotNote
from app.sandbox.hubspot import create_hubspot_sandbox, sandbox_of
from app.sandbox.hubspot_bodies import SeedContact
from app.sandbox.hubspot_state import HubSpotSandbox
from tests.fixtures.databases import Database

pytestmark = pytest.mark.anyio

BASE = "http://hubspot.test"
TOKEN = "tok"
PORTAL = 5151
CREATE = "POST /crm/v3/objects/notes"
LIST = "GET /crm/v4/objects/contacts/{contact_id}/associations/notes"
T0 = datetime(2026, 4, 2, 15, 0, tzinfo=UTC)


@pytest.fixture
def app() -> FastAPI:
    return create_hubspot_sandbox(tokens={TOKEN: PORTAL})


@pytest.fixture
def sandbox(app: FastAPI) -> HubSpotSandbox:
    return sandbox_of(app)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[HubSpotClient]:
    async def no_sleep(_: float) -> None:
        return None

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
        yield HubSpotClient(
            http,
            base_url=BASE,
            access_token=TOKEN,
            portal_id=PORTAL,
            rate_limiter=InProcessRateLimiter(1000),
            sleep=no_sleep,
        )


def contact(sandbox: HubSpotSandbox, email: str = "ann@example.com") -> str:
    return sandbox.portal(PORTAL).seed_contact(SeedContact(email=email)).id


def attendance(contact_id: str, key: str = "zoom-att-81234567890-abc") -> Activity:
    return Activity(
        ActivityKind.ATTENDANCE,
        key,
        contact_id,
        T0,
        {
            "webinar_id": "81234567890",
            "webinar_name": "Q&A <live>",
            "webinar_date": T0,
            "join_time": T0,
            "leave_time": T0.replace(hour=16),
            "attendance_duration_seconds": 3540,
            "attendance_percent": 98.3333,
        },
    )


def row(database: Database, key: str) -> HubSpotNote | None:
    with Session(database.engine) as session:
        return session.exec(
            select(HubSpotNote).where(HubSpotNote.portal_id == PORTAL, HubSpotNote.activity_key == key)
        ).first()


def requests(sandbox: HubSpotSandbox, route: str) -> int:
    return sandbox.portal(PORTAL).stats.requests[route]


async def test_a_note_carries_the_facts_escaped_and_is_created_once(
    database: Database, sandbox: HubSpotSandbox, client: HubSpotClient
) -> None:
    ann = contact(sandbox)
    activity = attendance(ann)
    writer = NotesWriter(database.engine, PORTAL)

    assert await writer.write(client, [activity]) == {activity.key: DONE}
    assert await writer.write(client, [activity]) == {activity.key: DONE}  # a re-run: nothing sent

    [note] = sandbox.portal(PORTAL).notes_of(ann)
    body = note.properties["hs_note_body"]
    assert body == note_body(activity)
    assert "Q&amp;A &lt;live&gt;" in body and "<live>" not in body  # Zoom's topic is escaped
    assert "81234567890" in body and "2026-04-02 15:00 UTC" in body and "2026-04-02 16:00 UTC" in body
    assert "3540 seconds (0:59:00)" in body and "98.3%" in body
    assert note_marker(activity.key) in body
    assert note.properties["hs_timestamp"] == "2026-04-02T15:00:00.000Z"
    stored = row(database, activity.key)
    assert stored is not None and stored.note_id == note.id and stored.attempted_at is not None
    assert requests(sandbox, CREATE) == 1 and requests(sandbox, LIST) == 0


async def test_a_lost_answer_is_found_by_its_marker_not_created_again(
    database: Database, sandbox: HubSpotSandbox, client: HubSpotClient
) -> None:
    ann = contact(sandbox)
    other = attendance(ann, key="zoom-att-1-other")  # another activity's note on the same contact
    activity = attendance(ann)
    writer = NotesWriter(database.engine, PORTAL)
    assert await writer.write(client, [other]) == {other.key: DONE}
    sandbox.faults.drop_answer_route = CREATE
    sandbox.faults.drop_answer_after_apply = 1  # HubSpot makes the note, its answer is lost

    [lost] = (await writer.write(client, [activity])).values()
    assert lost.verdict is Verdict.RETRY and lost.retryable  # a 504: tried again later, not failed
    stored = row(database, activity.key)
    assert stored is not None and stored.attempted_at is not None and stored.note_id is None
    assert len(sandbox.portal(PORTAL).notes_of(ann)) == 2

    assert await writer.write(client, [activity]) == {activity.key: DONE}  # found, adopted
    assert await writer.write(client, [activity]) == {activity.key: DONE}  # a re-run: nothing sent
    notes = sandbox.portal(PORTAL).notes_of(ann)
    assert len(notes) == 2, [n.properties for n in notes]
    [mine] = [n for n in notes if note_marker(activity.key) in n.properties["hs_note_body"]]
    stored = row(database, activity.key)
    assert stored is not None and stored.note_id == mine.id
    assert requests(sandbox, CREATE) == 2 and requests(sandbox, LIST) == 1


async def test_a_crash_before_the_create_went_out_creates_it_after_looking(
    database: Database, sandbox: HubSpotSandbox, client: HubSpotClient
) -> None:
    ann = contact(sandbox)
    activity = attendance(ann)
    with unit_of_work(database.engine) as session:  # the intent was committed, then the process died
        session.add(HubSpotNote(portal_id=PORTAL, activity_key=activity.key, contact_id=ann, attempted_at=T0))

    assert await NotesWriter(database.engine, PORTAL).write(client, [activity]) == {activity.key: DONE}
    assert len(sandbox.portal(PORTAL).notes_of(ann)) == 1
    assert requests(sandbox, LIST) == 1 and requests(sandbox, CREATE) == 1


async def test_a_refused_create_leaves_nothing_to_look_for(
    database: Database, sandbox: HubSpotSandbox, client: HubSpotClient
) -> None:
    activity = attendance("999999")  # no such contact: HubSpot refuses (404), surely made nothing

    [refused] = (await NotesWriter(database.engine, PORTAL).write(client, [activity])).values()
    assert refused.verdict is Verdict.RETRY and not refused.retryable
    assert refused.reason == "timeline_event_failed"
    stored = row(database, activity.key)
    assert stored is not None and stored.attempted_at is None and stored.note_id is None
    assert sandbox.portal(PORTAL).notes == {}
