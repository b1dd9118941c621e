"""Hostile input to the admin API (issue 12 §3): never a 5xx, never a traceback in the log.

Invalid input answers 422 naming the field (`loc`), an unknown portal, webinar, Zoom user or job 404:
- a `portal_id` path parameter outside HubSpot's range (1 .. 2**63-1, the BIGINT column) on every
  route that takes one (PostgreSQL answered "bigint out of range", SQLite "int too large");
- NUL and other malformed `webinar_id` / `zoom_user_id` / `job_id` path parameters;
- NUL, other control characters and lone surrogates in any string of a settings PATCH;
- malformed pagination (`cursor` smuggling NUL or deep nesting, `after_id` beyond int64).
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlmodel import Session

from app.db import unit_of_work
from app.models import Webinar, ZoomUser
from tests.fixtures.databases import Database
from tests.fixtures.service import ACCOUNT_ID, ADMIN, PORTAL_ID, make_settings, running_app

pytestmark = pytest.mark.anyio

WEBINAR_ID = "81234567890"
ZOOM_USER_ID = "hostileHost01"
JOB_ID = "0123456789abcdef0123456789abcdef"
INT64_MAX = 2**63 - 1

# Every admin route with a `{portal_id}`, as (method, path template, body valid once the ids are).
PORTAL_ROUTES: list[tuple[str, str, Any]] = [
    ("GET", "/api/v1/portals/{p}/settings", None),
    ("PATCH", "/api/v1/portals/{p}/settings", {"recording_sync": "all"}),
    ("GET", "/api/v1/portals/{p}/zoom-users", None),
    ("PATCH", "/api/v1/portals/{p}/zoom-users/{u}", {"sync_recordings": True}),
    ("GET", "/api/v1/portals/{p}/webinars", None),
    ("GET", "/api/v1/portals/{p}/webinars/{w}", None),
    ("PATCH", "/api/v1/portals/{p}/webinars/{w}", {"sync_enabled": True}),
    ("GET", "/api/v1/portals/{p}/webinars/{w}/audit-log", None),
    ("GET", "/api/v1/portals/{p}/webinars/{w}/excluded-emails", None),
    ("POST", "/api/v1/portals/{p}/webinars/{w}/sync", None),
    ("POST", "/api/v1/portals/{p}/backfill", {"from": "2026-01-01", "to": "2026-01-31"}),
    ("GET", "/api/v1/portals/{p}/sync-jobs/{j}", None),
]
ROUTE_IDS = [f"{m} {t.removeprefix('/api/v1/portals/{p}')}" for m, t, _ in PORTAL_ROUTES]

BAD_PORTAL_IDS = [str(10**20), str(-(10**20)), str(2**63), "0", "-1"]


def _url(
    template: str, *, p: object = PORTAL_ID, w: str = WEBINAR_ID, u: str = ZOOM_USER_ID, j: str = JOB_ID
) -> str:
    return template.format(p=p, w=w, u=u, j=j)


@pytest.fixture
async def api(database: Database, caplog: pytest.LogCaptureFixture) -> AsyncIterator[httpx.AsyncClient]:
    """The real app with one known webinar and Zoom user; fails the test if anything logged a traceback."""
    with unit_of_work(database.engine) as session:
        session.add(
            Webinar(zoom_account_id=ACCOUNT_ID, webinar_id=WEBINAR_ID, host_id=ZOOM_USER_ID, topic="T")
        )
        session.add(ZoomUser(zoom_account_id=ACCOUNT_ID, zoom_user_id=ZOOM_USER_ID, email="host@example.com"))
    caplog.set_level(logging.INFO)
    async with running_app(make_settings(database)) as client:
        yield client
    tracebacks = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not tracebacks, [f"{r.name}: {r.getMessage()}" for r in tracebacks]


async def _send(client: httpx.AsyncClient, method: str, url: str, body: Any = None) -> httpx.Response:
    return await client.request(method, url, headers=ADMIN, json=body)


def _assert_422(r: httpx.Response, loc: list[Any]) -> None:
    assert r.status_code == 422, (r.status_code, r.text)
    locs = [e["loc"] for e in r.json()["detail"]]
    assert any(found[: len(loc)] == loc for found in locs), (loc, locs)


# ---------------------------------------------------------------------------------------------
# 1. portal_id beyond int64 (and not a HubSpot portal id at all)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "template", "body"), PORTAL_ROUTES, ids=ROUTE_IDS)
async def test_portal_id_out_of_range_is_422_on_every_route(
    api: httpx.AsyncClient, method: str, template: str, body: Any
) -> None:
    for bad in BAD_PORTAL_IDS:
        r = await _send(api, method, _url(template, p=bad), body)
        _assert_422(r, ["path", "portal_id"])


async def test_portal_id_range_is_documented_once_in_the_openapi(api: httpx.AsyncClient) -> None:
    spec = (await api.get("/openapi.json")).json()
    seen = 0
    for path, item in spec["paths"].items():
        for operation in item.values():
            for param in operation.get("parameters", []):
                if param["name"] == "portal_id":
                    seen += 1
                    schema = param["schema"]
                    assert (schema["minimum"], schema["maximum"]) == (1, INT64_MAX), (path, schema)
    assert seen == len(PORTAL_ROUTES)


async def test_largest_portal_id_is_a_plain_404(api: httpx.AsyncClient) -> None:
    r = await _send(api, "GET", _url("/api/v1/portals/{p}/settings", p=INT64_MAX))
    assert r.status_code == 404, r.text


# ---------------------------------------------------------------------------------------------
# 2. NUL and other malformed ids in the path
# ---------------------------------------------------------------------------------------------

WEBINAR_ROUTES = [(m, t, b) for m, t, b in PORTAL_ROUTES if "{w}" in t]
BAD_WEBINAR_IDS = ["%00", "1%002", "8123456789%00", "1" * 21, "abc", "12%2034", "%E2%91%A0"]


@pytest.mark.parametrize(
    ("method", "template", "body"),
    WEBINAR_ROUTES,
    ids=[f"{m} {t.split('{w}')[1] or '/'}" for m, t, _ in WEBINAR_ROUTES],
)
async def test_malformed_webinar_id_is_422(
    api: httpx.AsyncClient, method: str, template: str, body: Any
) -> None:
    for bad in BAD_WEBINAR_IDS:
        r = await _send(api, method, _url(template, w=bad), body)
        _assert_422(r, ["path", "webinar_id"])
    # A well-formed id that is not there is still a 404.
    r = await _send(api, method, _url(template, w="99999999999"), body)
    assert r.status_code == 404, r.text


@pytest.mark.parametrize("bad", ["%00", "a%00b", "x" * 33, "a%20b", "a.b", "%E2%80%8B"])
async def test_malformed_job_id_is_422(api: httpx.AsyncClient, bad: str) -> None:
    r = await _send(api, "GET", _url("/api/v1/portals/{p}/sync-jobs/{j}", j=bad))
    _assert_422(r, ["path", "job_id"])


async def test_well_formed_unknown_job_id_is_404(api: httpx.AsyncClient) -> None:
    for job_id in (JOB_ID, "nope"):
        r = await _send(api, "GET", _url("/api/v1/portals/{p}/sync-jobs/{j}", j=job_id))
        assert r.status_code == 404, r.text


@pytest.mark.parametrize("bad", ["%00", "a%00b", "x" * 65, "%01", "%7F"])
async def test_malformed_zoom_user_id_is_422(api: httpx.AsyncClient, bad: str) -> None:
    r = await _send(
        api, "PATCH", _url("/api/v1/portals/{p}/zoom-users/{u}", u=bad), {"sync_recordings": True}
    )
    _assert_422(r, ["path", "zoom_user_id"])


async def test_known_ids_still_answer(api: httpx.AsyncClient) -> None:
    r = await _send(api, "PATCH", _url("/api/v1/portals/{p}/zoom-users/{u}"), {"sync_recordings": True})
    assert r.status_code == 200, r.text
    r = await _send(api, "GET", _url("/api/v1/portals/{p}/webinars/{w}"))
    assert (r.status_code, r.json()["webinar_id"]) == (200, WEBINAR_ID)


# ---------------------------------------------------------------------------------------------
# 3. NUL (and other unstorable characters) in the strings of a settings PATCH
# ---------------------------------------------------------------------------------------------

STRING_LIST_FIELDS = [
    "recording_sync_users",
    "exclusion_domains",
    "recording_exclusion_domains",
    "contact_exclusion_domains",
]
BAD_STRINGS = ["x\u0000y", "\u0000", "acme.com\u0000", "a\u0007b", "a\u007fb", "a\u0085b", "\ud800"]


def _raw_json(field: str, value: str) -> bytes:
    # json.dumps escapes NUL as \u0000 and a lone surrogate as \ud800, exactly what a client sends.
    return json.dumps({field: ["ok@example.com" if "users" in field else "ok.example.com", value]}).encode()


@pytest.mark.parametrize("field", STRING_LIST_FIELDS)
async def test_unstorable_characters_in_settings_are_422(
    api: httpx.AsyncClient, database: Database, field: str
) -> None:
    url = _url("/api/v1/portals/{p}/settings")
    for bad in BAD_STRINGS:
        r = await api.patch(
            url, headers={**ADMIN, "content-type": "application/json"}, content=_raw_json(field, bad)
        )
        _assert_422(r, ["body", field])
    settings = (await _send(api, "GET", url)).json()
    assert settings[field] == [], settings  # nothing was stored


async def test_recording_sync_users_keep_accepting_ids_and_emails(api: httpx.AsyncClient) -> None:
    users = ["KDcuGIm1QgePTO8WbOqwIQ", "Host@Example.com", "with.dots-and_underscores"]
    r = await _send(api, "PATCH", _url("/api/v1/portals/{p}/settings"), {"recording_sync_users": users})
    assert r.status_code == 200, r.text
    assert r.json()["recording_sync_users"] == ["KDcuGIm1QgePTO8WbOqwIQ", "host@example.com", users[2]]


# ---------------------------------------------------------------------------------------------
# 4. Pagination parameters
# ---------------------------------------------------------------------------------------------


def _cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


@pytest.mark.parametrize(
    "cursor",
    [
        _cursor(["2026-01-01T00:00:00+00:00", ACCOUNT_ID + "\u0000", "1"]),
        _cursor(["2026-01-01T00:00:00+00:00", ACCOUNT_ID, "1\u0000"]),
        _cursor(["2026-01-01T00:00:00", ACCOUNT_ID, "1"]),  # naive: the UTC column refuses it
        _cursor(["0001-01-01T00:00:00+14:00", ACCOUNT_ID, "1"]),  # overflows when made UTC
        _cursor(["2026-01-01T00:00:00+00:00", ACCOUNT_ID, "\ud800"]),
        _cursor({"a": 1, "b": 2, "c": 3}),
        _cursor("[" * 5000),
        base64.urlsafe_b64encode(b"[" * 3000).decode(),
        "!!!",
    ],
    ids=["nul-account", "nul-webinar", "naive", "overflow", "surrogate", "dict", "string", "deep", "not-b64"],
)
async def test_malformed_cursor_is_422(api: httpx.AsyncClient, cursor: str) -> None:
    r = await api.get(_url("/api/v1/portals/{p}/webinars"), headers=ADMIN, params={"cursor": cursor})
    _assert_422(r, ["query", "cursor"])


async def test_after_id_beyond_the_id_column_is_422(api: httpx.AsyncClient) -> None:
    # audit_entry.id is a 32-bit INTEGER on PostgreSQL ("integer out of range"); SQLite overflows at 2**63.
    url = _url("/api/v1/portals/{p}/webinars/{w}/audit-log")
    for bad in (str(2**31), str(2**63), str(10**30)):
        r = await api.get(url, headers=ADMIN, params={"after_id": bad})
        _assert_422(r, ["query", "after_id"])


async def test_pagination_still_works(api: httpx.AsyncClient, database: Database) -> None:
    with Session(database.engine) as session:
        for n in range(3):
            session.add(Webinar(zoom_account_id=ACCOUNT_ID, webinar_id=f"8200000000{n}"))
        session.commit()
    url = _url("/api/v1/portals/{p}/webinars")
    seen: list[str] = []
    cursor = None
    for _ in range(5):
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await api.get(url, headers=ADMIN, params=params)).json()
        seen += [w["webinar_id"] for w in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted([WEBINAR_ID, "82000000000", "82000000001", "82000000002"])


async def test_largest_after_id_is_just_not_in_the_log(api: httpx.AsyncClient) -> None:
    url = _url("/api/v1/portals/{p}/webinars/{w}/audit-log")
    for anchor in (str(2**31 - 1),):
        r = await api.get(url, headers=ADMIN, params={"after_id": anchor})
        _assert_422(r, ["query", "after_id"])
        assert "no audit entry" in r.json()["detail"][0]["msg"]


# ---------------------------------------------------------------------------------------------
# 5. Bodies whose 422 must still be writable, and the other string inputs
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "template", "raw"),
    [
        ("PATCH", "/api/v1/portals/{p}/settings", b'{"\\ud800": true}'),
        ("PATCH", "/api/v1/portals/{p}/settings", b'{"recording_sync": "\\udfff"}'),
        ("PATCH", "/api/v1/portals/{p}/zoom-users/{u}", b'{"sync_recordings": "\\ud800"}'),
        ("PATCH", "/api/v1/portals/{p}/webinars/{w}", b'{"sync_enabled": "\\ud800"}'),
        ("POST", "/api/v1/portals/{p}/backfill", b'{"from": "\\ud800", "to": "2026-01-01"}'),
    ],
    ids=["extra-key", "settings-enum", "zoom-user", "webinar", "backfill"],
)
async def test_lone_surrogates_in_a_body_are_422(
    api: httpx.AsyncClient, method: str, template: str, raw: bytes
) -> None:
    # Python's JSON parser accepts a lone surrogate; the 422 that echoes it back must still encode.
    headers = {**ADMIN, "content-type": "application/json"}
    r = await api.request(method, _url(template), headers=headers, content=raw)
    assert r.status_code == 422, (r.status_code, r.text)
    assert r.json()["detail"][0]["loc"][0] == "body"


@pytest.mark.parametrize("bad", ["x\u0000y", "\ud800", "a\u0007b"])
async def test_backfill_users_refuse_unstorable_characters(api: httpx.AsyncClient, bad: str) -> None:
    raw = json.dumps({"from": "2026-01-01", "to": "2026-01-31", "users": [bad]}).encode()
    headers = {**ADMIN, "content-type": "application/json"}
    r = await api.post(_url("/api/v1/portals/{p}/backfill"), headers=headers, content=raw)
    _assert_422(r, ["body", "users"])


async def test_non_ascii_bearer_token_is_401(api: httpx.AsyncClient) -> None:
    # Headers arrive as latin-1: a token of non-ASCII characters is a wrong token, not a TypeError.
    r = await api.get("/api/v1/status", headers=[(b"authorization", b"Bearer t\xe9st-\xff")])
    assert r.status_code == 401, r.text
