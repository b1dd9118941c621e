"""Token and size checks happen before a body is read (app.api.request_guard)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.fixtures.databases import Database
from tests.fixtures.service import ADMIN, PORTAL_ID, make_settings, running_app

pytestmark = pytest.mark.anyio

CHUNK = b"x" * 65536


class Flood:
    """A chunked body of `total` bytes that counts how much of it the service pulled."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.sent < self.total:
            self.sent += len(CHUNK)
            yield CHUNK


@pytest.mark.parametrize(
    ("method", "path", "headers", "status"),
    [
        ("PATCH", f"/api/v1/portals/{PORTAL_ID}/settings", {}, 401),  # no token: 401, not a 422 after reading
        ("PATCH", f"/api/v1/portals/{PORTAL_ID}/settings", ADMIN, 413),  # admin bodies are small
        ("POST", "/hubspot/actions/add-to-webinar", {}, 413),  # unsigned: cut off at 1 MiB
        ("PUT", "/api/v1/portals/1/nothing-here", ADMIN, 404),  # no route: answered unread
    ],
)
async def test_a_flood_is_refused_before_it_is_read(
    database: Database, method: str, path: str, headers: dict[str, str], status: int
) -> None:
    settings = make_settings(database, hubspot_client_secret="hs-secret")
    async with running_app(settings) as client:
        flood = Flood(64 * 1024 * 1024)
        r = await client.request(
            method, path, content=flood, headers={**headers, "content-type": "application/json"}
        )
        assert r.status_code == status, r.text
        assert "detail" in r.json()
        # Read at most the limit (1 MiB) and a chunk, never the 64 MiB flood.
        assert flood.sent <= 1024 * 1024 + 2 * len(CHUNK), flood.sent


async def test_a_declared_oversized_body_is_refused_at_once(database: Database) -> None:
    async with running_app(make_settings(database)) as client:
        r = await client.post(
            "/hubspot/actions/add-to-webinar",
            content=b"{}",
            headers={"content-length": str(512 * 1024 * 1024), "content-type": "application/json"},
        )
        assert r.status_code == 413, r.text


async def test_oversized_headers_get_431(database: Database) -> None:
    async with running_app(make_settings(database)) as client:
        r = await client.get("/api/v1/status", headers={**ADMIN, "x-padding": "p" * 20000})
        assert r.status_code == 431, r.text
        ok = await client.get("/api/v1/status", headers=ADMIN)
        assert ok.status_code == 200


async def test_admin_api_still_answers_normally(database: Database) -> None:
    async with running_app(make_settings(database)) as client:
        body: dict[str, Any] = {"webinar_sync_enabled": True}
        r = await client.patch(f"/api/v1/portals/{PORTAL_ID}/settings", headers=ADMIN, json=body)
        assert r.status_code == 200, r.text
        r = await client.get(
            f"/api/v1/portals/{PORTAL_ID}/settings", headers={"Authorization": "Bearer nope"}
        )
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    async with running_app(make_settings(database, admin_api_token=None)) as client:
        r = await client.get("/api/v1/status")
        assert r.status_code == 503 and "ADMIN_API_TOKEN" in r.json()["detail"]
