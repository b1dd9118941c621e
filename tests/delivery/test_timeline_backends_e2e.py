"""One webinar (three registrants, two attendees, a cloud recording) played end to end once per
timeline backend (CONTRACT §4.2): classic v3 events, 2026-03 app events (an OAuth portal with event
types), notes (under `auto`, for an app HubSpot refuses classic templates to), and off.

Whatever the backend, HubSpot ends with the same contacts, contact properties and marketing-event
states; only the activities differ, each in its own form (and none when off)."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

import pytest
from sqlmodel import select

from app.db import unit_of_work
from app.integrations.hubspot.setup_store import stored_timeline_backend
from app.models import AuthMode, HubSpotNote, HubSpotPortal, TimelineBackend
from tests.fixtures.databases import Database
from tests.fixtures.e2e import HS_TOKEN, Harness, harness
from tests.fixtures.recordings import ABSENT, ATTENDEES, TOPIC, play_webinar, record, zoom_recording
from tests.fixtures.service import PORTAL_ID

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

EVENT_TYPES = {"registration": "zoom_reg", "attendance": "zoom_att", "recording": "zoom_rec"}
TEMPLATE_KINDS = {
    "Zoom webinar registration": "registration",
    "Zoom webinar attendance": "attendance",
    "Zoom: recordable event": "recording",
}
EMAILS = sorted([*ATTENDEES, ABSENT[0]])
NOTE_CREATE = "POST /crm/v3/objects/notes"
NOTE_LIST = "GET /crm/v4/objects/contacts/{contact_id}/associations/notes"

# What HubSpot holds about the people and the webinar, exactly, in every mode.
LINK = "<the webinar's registration link>"
EXPECTED_VIEW = {
    "contacts": {
        "ann@example.com": {
            "firstname": "Ann",
            "lastname": "Attendee",
            "zoom_webinar_registration_count": "1",
            "zoom_webinar_attendance_count": "1",
            "zoom_webinar_average_attendance_percent": "90.0",
            "zoom_last_registered_webinar_url": LINK,
        },
        "bob@example.com": {
            "firstname": "Bob",
            "lastname": "Rejoiner",
            "zoom_webinar_registration_count": "1",
            "zoom_webinar_attendance_count": "1",
            "zoom_webinar_average_attendance_percent": "63.3",
            "zoom_last_registered_webinar_url": LINK,
        },
        "nina@example.com": {
            "firstname": "Nina",
            "lastname": "Noshow",
            "zoom_webinar_registration_count": "1",
            "zoom_webinar_attendance_count": "0",
            "zoom_last_registered_webinar_url": LINK,
        },
    },
    "marketing_events": [
        {
            "externalEventId": "{w}",
            "eventName": TOPIC,
            "completed": True,
            "counts": {"registrants": 3, "attendees": 2, "cancellations": 0, "noShows": 1},
            "states": {
                "ann@example.com": "attend",
                "bob@example.com": "attend",
                "nina@example.com": "register",
            },
        }
    ],
}


def _generic(name: str, value: Any, webinar_id: str) -> Any:
    if name == "zoom_last_registered_webinar_url":
        return LINK if str(value).startswith("https://us06web.zoom.us/webinar/register/") else value
    return value.replace(webinar_id, "{w}") if isinstance(value, str) else value


def core_view(h: Harness, webinar_id: str) -> dict[str, Any]:
    """Contacts (names and every zoom_ property) and marketing events (fields, counts, states), by email."""
    state = h.portal_state()
    by_id = {c["id"]: c["properties"].get("email") for c in state["contacts"]}
    contacts = {
        c["properties"]["email"]: {
            name: _generic(name, value, webinar_id)
            for name, value in c["properties"].items()
            if name in ("firstname", "lastname") or name.startswith("zoom_")
        }
        for c in state["contacts"]
    }
    events = [
        {
            "externalEventId": _generic("externalEventId", m["externalEventId"], webinar_id),
            "eventName": m.get("eventName"),
            "completed": m["completedAt"] is not None,
            "counts": {k: m[k] for k in ("registrants", "attendees", "cancellations", "noShows")},
            "states": {by_id[cid]: a["state"] for cid, a in m["attendance"].items()},
        }
        for m in state["marketing_events"]
    ]
    return {"contacts": contacts, "marketing_events": events}


def ids_by_email(h: Harness) -> dict[str, str]:
    return {c["properties"]["email"]: c["id"] for c in h.portal_state()["contacts"]}


def classic_activities(h: Harness) -> dict[tuple[str, str], tuple[str, dict[str, str]]]:
    names = {t.id: t.name for t in h.hubspot.templates.values()}
    return {
        (TEMPLATE_KINDS[names[e["eventTemplateId"]]], e["id"]): (e["objectId"], e["tokens"])
        for e in h.portal_state()["timeline_events"]
    }


def app_event_activities(h: Harness) -> dict[tuple[str, str], tuple[str, dict[str, str]]]:
    kinds = {name: kind for kind, name in EVENT_TYPES.items()}
    return {
        (kinds[e["eventTypeName"]], e["id"]): (e["objectId"], e["properties"])
        for e in h.portal_state()["app_events"]
    }


async def run(database: Database, backend: str) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if backend == "app_events":
        # An OAuth-installed portal (the env token stands for its access token here) with event types.
        with unit_of_work(database.engine) as session:
            session.add(HubSpotPortal(portal_id=PORTAL_ID, auth_mode=AuthMode.OAUTH))
        overrides["hubspot_app_event_types"] = ",".join(f"{k}={v}" for k, v in EVENT_TYPES.items())
    if backend == "off":
        overrides["hubspot_timeline_backend"] = "off"
    async with harness(database, **overrides) as h:
        if backend == "app_events":
            h.hubspot.activities.app_event_types = set(EVENT_TYPES.values())
            h.hubspot.activities.oauth_tokens = {HS_TOKEN}
        if backend == "notes":
            h.hubspot.activities.classic_closed = True  # a new app: auto falls back to notes
        played = await play_webinar(h)
        await record(h, played)
        status = await h.wait_done()
        assert status["failed"] == 0, status
        view = core_view(h, played.webinar_id)
        ids = ids_by_email(h)
        state = h.portal_state()
        result: dict[str, Any] = {
            "view": view,
            "ids": ids,
            "played": played,
            "share_url": zoom_recording(h, played.webinar_id)["share_url"],
            "classic": classic_activities(h),
            "app_events": app_event_activities(h),
            "notes": state["notes"],
            "templates": len(h.hubspot.templates),
            "calls": len(state["calls"]),
        }
    result["stored_backend"] = stored_timeline_backend(database.engine, PORTAL_ID)
    with unit_of_work(database.engine) as session:
        result["note_rows"] = [(r.activity_key, r.note_id) for r in session.exec(select(HubSpotNote)).all()]
    return result


def expected_keys(ids: dict[str, str]) -> dict[str, set[str]]:
    """Which contacts get which activity: registration for all three, the rest for the two attendees."""
    return {
        "registration": {ids[e] for e in EMAILS},
        "attendance": {ids[e] for e in ATTENDEES},
        "recording": {ids[e] for e in ATTENDEES},
    }


def by_kind(activities: dict[tuple[str, str], tuple[str, dict[str, str]]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {"registration": set(), "attendance": set(), "recording": set()}
    for (kind, _), (object_id, _) in activities.items():
        out[kind].add(object_id)
    return out


def assert_core(result: dict[str, Any]) -> None:
    assert result["view"] == EXPECTED_VIEW
    assert result["calls"] == 1  # the recording's call record, in every mode


@pytest.mark.parametrize("backend", ["classic", "app_events", "notes", "off"])
async def test_same_hubspot_state_in_every_backend_with_activities_in_its_form(
    database: Database, backend: str
) -> None:
    result = await run(database, backend)
    assert_core(result)
    assert result["stored_backend"] is TimelineBackend(backend)
    ids = result["ids"]
    classic, app_events, notes = result["classic"], result["app_events"], result["notes"]
    if backend == "classic":
        assert by_kind(classic) == expected_keys(ids)
        assert (app_events, notes) == ({}, [])
        [reg_tokens] = [
            t for (k, _), (o, t) in classic.items() if k == "registration" and o == ids[ABSENT[0]]
        ]
        assert reg_tokens["webinar_name"] == TOPIC
    elif backend == "app_events":
        assert by_kind(app_events) == expected_keys(ids)
        assert (classic, notes) == ({}, [])
        assert result["templates"] == 0  # no classic templates were made for an app-events portal
        for (kind, _), (_, properties) in app_events.items():
            assert all(isinstance(v, str) for v in properties.values())
            if kind == "recording":
                assert properties["recording_url"] == result["share_url"]
                assert properties["topic"] == TOPIC
            if kind == "attendance":
                assert properties["webinar_name"] == TOPIC and float(properties["attendance_percent"]) > 0
    elif backend == "notes":
        assert (classic, app_events) == ({}, {})
        assert result["templates"] == 0  # HubSpot refused them; delivery went on with notes
        assert_notes(notes, ids, result)
    else:
        assert (classic, app_events, notes) == ({}, {}, [])
        assert result["note_rows"] == []


def assert_notes(notes: list[dict[str, Any]], ids: dict[str, str], result: dict[str, Any]) -> None:
    out: dict[str, set[str]] = {"registration": set(), "attendance": set(), "recording": set()}
    for note in notes:
        [contact] = [a["id"] for a in note["associations"]["contacts"]["results"]]
        body = note["properties"]["hs_note_body"]
        marker = re.search(r"zoom-activity:(zoom-(reg|att|rec)-\S+?)<", body)
        assert marker is not None, body
        kind = {"reg": "registration", "att": "attendance", "rec": "recording"}[marker.group(2)]
        out[kind].add(contact)
        text = unescape(body)
        if kind == "recording":
            assert TOPIC in text and result["share_url"] in text
        else:
            assert TOPIC in text and result["played"].webinar_id in text
        if kind == "attendance":
            assert "Share of the webinar attended" in text and "Time attended" in text
        assert note["properties"]["hs_timestamp"]
    assert out == expected_keys(ids)
    assert len(notes) == 7  # one per activity, none twice
    rows = result["note_rows"]
    assert len(rows) == 7 and all(note_id for _, note_id in rows)
    assert {note_id for _, note_id in rows} == {n["id"] for n in notes}


async def test_notes_are_created_once_when_answers_are_lost(database: Database) -> None:
    """HubSpot makes three notes but their answers are lost (504): the service finds each among the
    contact's notes by its marker and creates none twice."""
    async with harness(database, hubspot_timeline_backend="notes") as h:
        h.hubspot.faults.drop_answer_route = NOTE_CREATE
        h.hubspot.faults.drop_answer_after_apply = 3
        played = await play_webinar(h)
        await record(h, played)
        status = await h.wait_done()
        assert status["failed"] == 0, status
        assert h.hubspot.faults.drop_answer_after_apply == 0, "the fault never fired"
        state = h.portal_state()
        stats = state["stats"]
        assert stats["requests"][NOTE_CREATE] == 7 and stats["statuses"]["504"] == 3, stats
        assert stats["requests"][NOTE_LIST] >= 3, stats
        assert_core({"view": core_view(h, played.webinar_id), "calls": len(state["calls"])})
        ids = ids_by_email(h)
        share_url = zoom_recording(h, played.webinar_id)["share_url"]
    with unit_of_work(database.engine) as session:
        rows = [(r.activity_key, r.note_id) for r in session.exec(select(HubSpotNote)).all()]
    assert_notes(state["notes"], ids, {"played": played, "share_url": share_url, "note_rows": rows})
