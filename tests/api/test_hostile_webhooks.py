"""POST /webhooks/zoom under hostile input: every request gets a clear 4xx (or is stored and
processed without a traceback), never a 5xx.

The bodies are hand-made; where the point is the body they carry a valid signature, so they get
past the signature check and reach the parsing and the storage.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from app.db import unit_of_work
from app.models import InboxEvent, PortalSettings, Registration, Webinar
from app.sandbox.zoom_webhooks import sign
from app.sync.inbox_processor import InboxProcessor, ProcessorConfig
from tests.fixtures.databases import Database
from tests.fixtures.factories import joined_event
from tests.fixtures.service import ACCOUNT_ID, PORTAL_ID, ZOOM_SECRET

pytestmark = pytest.mark.anyio

WEBINAR_ID = "89412345678"


def _nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = {"x": value}
    return value


def _updated(**object_fields: Any) -> dict[str, Any]:
    return {
        "event": "webinar.updated",
        "event_ts": 1718899320000,
        "payload": {
            "account_id": ACCOUNT_ID,
            "object": {"id": WEBINAR_ID, "topic": "T"} | object_fields,
        },
    }


def _registration(**registrant: Any) -> dict[str, Any]:
    return {
        "event": "webinar.registration_created",
        "event_ts": 1718899320000,
        "payload": {
            "account_id": ACCOUNT_ID,
            "object": {
                "id": WEBINAR_ID,
                "uuid": "Zt5p8bQ2Rx6m0yS1aK9wVg==",
                "host_id": "h0StUsErId00000001",
                "topic": "Q3 Product Webinar",
                "type": 5,
                "start_time": "2024-06-20T16:00:05Z",
                "duration": 60,
                "registrant": {
                    "id": "reg-nul-1",
                    "email": "ada@example.com",
                    "first_name": "Ada",
                    "last_name": "Lovelace",
                    "status": "approved",
                    "join_url": "https://zoom.us/w/1?tk=a",
                }
                | registrant,
            },
        },
    }


def _with(env: dict[str, Any], change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    copy: dict[str, Any] = json.loads(json.dumps(env))
    change(copy)
    return copy


def _set_event(name: str) -> Callable[[dict[str, Any]], None]:
    return lambda env: env.__setitem__("event", name)


def _set_payload(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda env: env["payload"].__setitem__(key, value)


def _set_object(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda env: env["payload"]["object"].__setitem__(key, value)


@dataclass(frozen=True)
class Case:
    name: str
    body: bytes
    status: int
    detail: str | None  # a part of the 4xx reason; None for a 200
    # Header values as raw bytes (httpx sends them as they are; the app decodes them as latin-1).
    headers: dict[str, bytes] = field(default_factory=dict)
    signed: bool = True


def _json(env: Any) -> bytes:
    return json.dumps(env).encode()  # ensure_ascii: NUL and lone surrogates travel as \\u escapes


JOINED = joined_event()
CASES = [
    # 1. Header values outside ASCII.
    Case(
        "signature with non-ASCII bytes",
        _json(JOINED),
        401,
        "does not match",
        headers={"x-zm-signature": b"v0=" + b"\xff" * 64},
    ),
    Case(
        "timestamp of superscript digits",
        _json(JOINED),
        401,
        "whole seconds",
        headers={"x-zm-request-timestamp": "¹²³".encode("latin-1")},
    ),
    Case(
        "timestamp of other non-ASCII bytes",
        _json(JOINED),
        401,
        "whole seconds",
        headers={"x-zm-request-timestamp": b"17\xff"},
    ),
    # 2. Nesting and numbers that json / recursive code cannot take.
    Case(
        "webinar object nested 600 levels", _json(_updated(settings=_nested(600))), 400, "nested too deeply"
    ),
    Case("ignored event nested 600 levels", _json({"event": "x", "payload": _nested(600)}), 400, "nested"),
    Case(
        "body nested 100000 levels (json.loads' own limit)",
        b'{"event":"webinar.updated","payload":{"object":' + b"[" * 100_000 + b"]" * 100_000 + b"}}",
        400,
        "nested too deeply",
    ),
    Case(
        "integer of 5000 digits",
        b'{"event":"webinar.updated","payload":{},"event_ts":' + b"9" * 5000 + b"}",
        400,
        "not valid JSON",
    ),
    # 4. Text no database can store in the inbox row's columns: refused, not 503 "retry later".
    Case("NUL in event", _json(_with(JOINED, _set_event("webinar.participant_joined\x00"))), 400, "NUL"),
    Case("NUL in an ignored event", _json(_with(JOINED, _set_event("meeting.\x00x"))), 400, "'event'"),
    Case(
        "NUL in account_id",
        _json(_with(JOINED, _set_payload("account_id", "acct\x00"))),
        400,
        "payload.account_id contains a NUL",
    ),
    Case(
        "NUL in the webinar id",
        _json(_with(JOINED, _set_object("id", "894\x0012345678"))),
        400,
        "payload.object.id contains a NUL",
    ),
    Case(
        "lone surrogate in event",
        _json(_with(JOINED, _set_event("webinar.\ud800"))),
        400,
        "'event' is not valid Unicode",
    ),
    Case(
        "lone surrogate in account_id",
        _json(_with(JOINED, _set_payload("account_id", "\udfff"))),
        400,
        "payload.account_id is not valid Unicode",
    ),
    Case(
        "lone surrogate in plainToken",
        _json({"event": "endpoint.url_validation", "payload": {"plainToken": "ab\ud800"}}),
        400,
        "plainToken",
    ),
    # Accepted and stored: the worker deals with these (see the end-to-end test below).
    Case("NUL in the registrant's first name", _json(_registration(first_name="A\x00da")), 200, None),
    Case("NUL deep inside an accepted event", _json(_updated(agenda="a\x00b")), 200, None),
]


def _request(case: Case) -> tuple[bytes, dict[str, Any]]:
    ts = int(time.time())
    headers: dict[str, Any] = {"content-type": "application/json"}
    if case.signed:
        headers |= {"x-zm-request-timestamp": str(ts), "x-zm-signature": sign(ZOOM_SECRET, ts, case.body)}
    return case.body, headers | case.headers


def _stored(db: Database) -> int:
    with db.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(InboxEvent)).scalar_one())


def _tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_hostile_request_gets_a_clear_answer(
    case: Case, client: httpx.AsyncClient, database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    body, headers = _request(case)
    r = await client.post("/webhooks/zoom", content=body, headers=headers)
    assert r.status_code < 500, r.text
    assert r.status_code == case.status, r.text
    if case.detail is not None:
        assert case.detail in r.json()["detail"]
        assert _stored(database) == 0
    else:
        assert r.json()["status"] == "accepted"
        assert _stored(database) == 1
    assert _tracebacks(caplog) == []


def _drain(processor: InboxProcessor) -> None:
    for _ in range(20):
        if processor.run_once().claimed == 0:
            return
        time.sleep(0.02)  # retries are due after retry_base_s


async def test_nul_in_registrant_fields_ends_cleanly_without_tracebacks(
    client: httpx.AsyncClient, database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """A NUL in a display name is dropped and the registration processed; a NUL in the email (which
    identifies the contact) makes the event dead with the field named. No raw SQL error, no
    traceback, no retries."""
    with unit_of_work(database.engine) as session:  # the app made the connection at start
        settings = session.get(PortalSettings, PORTAL_ID) or PortalSettings(portal_id=PORTAL_ID)
        settings.webinar_sync_enabled = True
        session.add(settings)
    named = _registration(first_name="A\x00da", last_name="Love\x00lace\ud800")
    emailed = _registration(id="reg-nul-2", email="bob\x00@example.com", first_name="Bob")
    for env in (named, emailed):
        body = _json(env)
        ts = int(time.time())
        headers = {
            "content-type": "application/json",
            "x-zm-request-timestamp": str(ts),
            "x-zm-signature": sign(ZOOM_SECRET, ts, body),
        }
        r = await client.post("/webhooks/zoom", content=body, headers=headers)
        assert (r.status_code, r.json()) == (200, {"status": "accepted"})

    processor = InboxProcessor(database.engine, ProcessorConfig(max_attempts=3, retry_base_s=0.01))
    _drain(processor)

    with Session(database.engine) as session:
        rows = {row.raw_body: row for row in session.scalars(select(InboxEvent))}
        named_row, emailed_row = rows[_json(named)], rows[_json(emailed)]
        assert (named_row.state, named_row.attempts, named_row.last_error) == ("done", 0, None)
        assert (emailed_row.state, emailed_row.attempts) == ("dead", 0)
        assert emailed_row.last_error == (
            "BadEventError: webinar.registration_created: registrant.email contains a NUL character"
        )
        [registration] = session.scalars(select(Registration)).all()
        assert (registration.registrant_id, registration.first_name, registration.last_name) == (
            "reg-nul-1",
            "Ada",
            "Lovelace?",
        )
    assert _tracebacks(caplog) == []
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [w for w in warnings if "NUL" in w or "failed" in w], warnings


async def test_out_of_range_numbers_in_webinar_fields_are_treated_as_absent(
    client: httpx.AsyncClient, database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """duration / type feed 32-bit columns: 10^12 or "²" are garbage, not a database error per retry."""
    env = _updated(duration=10**12, type="²", topic="Big numbers")
    body = _json(env)
    ts = int(time.time())
    headers = {
        "content-type": "application/json",
        "x-zm-request-timestamp": str(ts),
        "x-zm-signature": sign(ZOOM_SECRET, ts, body),
    }
    assert (await client.post("/webhooks/zoom", content=body, headers=headers)).status_code == 200
    _drain(InboxProcessor(database.engine, ProcessorConfig(max_attempts=3, retry_base_s=0.01)))
    with Session(database.engine) as session:
        row = session.scalars(select(InboxEvent)).one()
        assert (row.state, row.attempts, row.last_error) == ("done", 0, None)
        webinar = session.get(Webinar, (ACCOUNT_ID, WEBINAR_ID))
        assert webinar is not None
        assert (webinar.topic, webinar.duration_minutes, webinar.webinar_type) == ("Big numbers", None, None)
    assert _tracebacks(caplog) == []
