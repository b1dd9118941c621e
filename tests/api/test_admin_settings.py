"""Admin REST API (CONTRACT.md §3): auth, portal settings, Zoom users, status, and the open endpoints."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from sqlmodel import Session

from app.models import ZoomUser
from app.sandbox.zoom_webhooks import make_delivery
from tests.fixtures.databases import Database
from tests.fixtures.factories import joined_event
from tests.fixtures.service import (
    ACCOUNT_ID,
    ADMIN,
    ADMIN_TOKEN,
    PORTAL_ID,
    ZOOM_SECRET,
    make_settings,
    running_app,
)

pytestmark = pytest.mark.anyio

SETTINGS_URL = f"/api/v1/portals/{PORTAL_ID}/settings"
USERS_URL = f"/api/v1/portals/{PORTAL_ID}/zoom-users"
UNKNOWN_PORTAL = 999_999

# Every admin endpoint this file covers, with a body that is valid when authorised.
ADMIN_ENDPOINTS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", SETTINGS_URL, None),
    ("PATCH", SETTINGS_URL, {}),
    ("GET", USERS_URL, None),
    ("GET", "/api/v1/status", None),
]
ENDPOINT_IDS = ["get-settings", "patch-settings", "get-zoom-users", "get-status"]


async def _call(
    client: httpx.AsyncClient, method: str, url: str, body: dict[str, Any] | None, headers: dict[str, str]
) -> httpx.Response:
    if method == "PATCH":
        return await client.patch(url, json=body, headers=headers)
    return await client.get(url, headers=headers)


async def _patch(client: httpx.AsyncClient, body: dict[str, Any], url: str = SETTINGS_URL) -> httpx.Response:
    return await client.patch(url, json=body, headers=ADMIN)


async def _get_settings(client: httpx.AsyncClient) -> dict[str, Any]:
    r = await client.get(SETTINGS_URL, headers=ADMIN)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def _post_delivery(client: httpx.AsyncClient, envelope: dict[str, Any]) -> httpx.Response:
    d = make_delivery(ZOOM_SECRET, envelope)
    return await client.post("/webhooks/zoom", content=d.body, headers=d.headers)


def _seed_zoom_user(database: Database, **values: Any) -> None:
    with Session(database.engine) as session:
        session.add(ZoomUser(**values))
        session.commit()


def _loc_names(response: httpx.Response) -> set[str]:
    detail = response.json()["detail"]
    assert isinstance(detail, list) and detail, detail
    return {str(part) for err in detail for part in err["loc"]}


# --------------------------------------------------------------------------------------------------
# Auth
# --------------------------------------------------------------------------------------------------


class TestAuth:
    @pytest.mark.parametrize(("method", "url", "body"), ADMIN_ENDPOINTS, ids=ENDPOINT_IDS)
    async def test_no_header(
        self, client: httpx.AsyncClient, method: str, url: str, body: dict[str, Any] | None
    ) -> None:
        r = await _call(client, method, url, body, {})
        assert r.status_code == 401, r.text
        assert r.headers.get("www-authenticate", "").lower().startswith("bearer")
        assert r.json()["detail"]

    @pytest.mark.parametrize(("method", "url", "body"), ADMIN_ENDPOINTS, ids=ENDPOINT_IDS)
    async def test_wrong_token(
        self, client: httpx.AsyncClient, method: str, url: str, body: dict[str, Any] | None
    ) -> None:
        r = await _call(client, method, url, body, {"Authorization": f"Bearer {ADMIN_TOKEN}x"})
        assert r.status_code == 401, r.text

    @pytest.mark.parametrize(("method", "url", "body"), ADMIN_ENDPOINTS, ids=ENDPOINT_IDS)
    async def test_basic_scheme(
        self, client: httpx.AsyncClient, method: str, url: str, body: dict[str, Any] | None
    ) -> None:
        r = await _call(client, method, url, body, {"Authorization": f"Basic {ADMIN_TOKEN}"})
        assert r.status_code == 401, r.text

    @pytest.mark.parametrize(("method", "url", "body"), ADMIN_ENDPOINTS, ids=ENDPOINT_IDS)
    async def test_right_token(
        self, client: httpx.AsyncClient, method: str, url: str, body: dict[str, Any] | None
    ) -> None:
        r = await _call(client, method, url, body, ADMIN)
        assert r.status_code == 200, r.text

    @pytest.mark.parametrize(("method", "url", "body"), ADMIN_ENDPOINTS, ids=ENDPOINT_IDS)
    async def test_disabled_without_configured_token(
        self, database: Database, method: str, url: str, body: dict[str, Any] | None
    ) -> None:
        async with running_app(make_settings(database, admin_api_token=None)) as client:
            # Even a request carrying a bearer token is refused: there is nothing to compare it to.
            r = await _call(client, method, url, body, ADMIN)
        assert r.status_code == 503, r.text
        assert "admin API disabled" in r.json()["detail"]

    async def test_open_endpoints_need_no_token(self, client: httpx.AsyncClient) -> None:
        for path in ("/healthz", "/readyz", "/metrics"):
            r = await client.get(path)
            assert r.status_code == 200, (path, r.text)


# --------------------------------------------------------------------------------------------------
# Portal settings
# --------------------------------------------------------------------------------------------------


class TestUnknownPortal:
    async def test_get_settings(self, client: httpx.AsyncClient) -> None:
        r = await client.get(f"/api/v1/portals/{UNKNOWN_PORTAL}/settings", headers=ADMIN)
        assert r.status_code == 404, r.text
        assert "detail" in r.json()

    async def test_patch_settings(self, client: httpx.AsyncClient) -> None:
        r = await _patch(client, {"global_sync_enabled": False}, f"/api/v1/portals/{UNKNOWN_PORTAL}/settings")
        assert r.status_code == 404, r.text

    async def test_zoom_users(self, client: httpx.AsyncClient) -> None:
        r = await client.get(f"/api/v1/portals/{UNKNOWN_PORTAL}/zoom-users", headers=ADMIN)
        assert r.status_code == 404, r.text

    async def test_patch_zoom_user(self, client: httpx.AsyncClient, database: Database) -> None:
        _seed_zoom_user(database, zoom_account_id=ACCOUNT_ID, zoom_user_id="u1")
        r = await _patch(client, {"sync_recordings": True}, f"/api/v1/portals/{UNKNOWN_PORTAL}/zoom-users/u1")
        assert r.status_code == 404, r.text


class TestSettings:
    async def test_defaults(self, client: httpx.AsyncClient) -> None:
        body = await _get_settings(client)
        expected = {
            "global_sync_enabled": True,
            "webinar_sync_enabled": False,
            "recording_sync": "none",
            "recording_sync_users": [],
            "exclusion_domains": [],
            "recording_exclusion_domains": [],
            "contact_exclusion_domains": [],
        }
        assert {k: body[k] for k in expected} == expected

    async def test_partial_update_persists(self, client: httpx.AsyncClient) -> None:
        r = await _patch(client, {"recording_sync": "all"})
        assert r.status_code == 200, r.text
        assert r.json()["recording_sync"] == "all"
        r = await _patch(client, {"exclusion_domains": ["corp.example"]})
        assert r.status_code == 200, r.text
        after = await _get_settings(client)
        # The second PATCH touched only its own field: the first one's change is still there.
        assert after["recording_sync"] == "all"
        assert after["exclusion_domains"] == ["corp.example"]
        assert after["global_sync_enabled"] is True
        assert after["webinar_sync_enabled"] is False
        assert after["contact_exclusion_domains"] == []

    async def test_persists_across_restart(self, database: Database) -> None:
        async with running_app(make_settings(database)) as client:
            assert (await _patch(client, {"contact_exclusion_domains": ["acme.com"]})).status_code == 200
        async with running_app(make_settings(database)) as client:
            assert (await _get_settings(client))["contact_exclusion_domains"] == ["acme.com"]

    @pytest.mark.parametrize(
        "field", ["exclusion_domains", "recording_exclusion_domains", "contact_exclusion_domains"]
    )
    async def test_domains_normalised(self, client: httpx.AsyncClient, field: str) -> None:
        r = await _patch(client, {field: ["@Acme.COM", "acme.com", " Other.Example ", "@other.example"]})
        assert r.status_code == 200, r.text
        assert r.json()[field] == ["acme.com", "other.example"]
        assert (await _get_settings(client))[field] == ["acme.com", "other.example"]

    @pytest.mark.parametrize(
        "field", ["exclusion_domains", "recording_exclusion_domains", "contact_exclusion_domains"]
    )
    @pytest.mark.parametrize("bad", ["not a domain", "localhost", "acme..com", "-acme.com", ""])
    async def test_bad_domain_is_422_naming_the_field(
        self, client: httpx.AsyncClient, field: str, bad: str
    ) -> None:
        r = await _patch(client, {field: ["good.example", bad]})
        assert r.status_code == 422, r.text
        assert field in _loc_names(r)
        assert (await _get_settings(client))[field] == []

    async def test_unknown_field_is_422(self, client: httpx.AsyncClient) -> None:
        r = await _patch(client, {"global_sync_enabled": False, "sync_everything": True})
        assert r.status_code == 422, r.text
        assert "sync_everything" in _loc_names(r)
        # Nothing from the rejected body was applied.
        assert (await _get_settings(client))["global_sync_enabled"] is True

    async def test_bad_recording_sync_is_422(self, client: httpx.AsyncClient) -> None:
        r = await _patch(client, {"recording_sync": "sometimes"})
        assert r.status_code == 422, r.text
        assert "recording_sync" in _loc_names(r)
        assert (await _get_settings(client))["recording_sync"] == "none"

    @pytest.mark.parametrize("mode", ["none", "all", "selected"])
    async def test_every_recording_sync_mode_accepted(self, client: httpx.AsyncClient, mode: str) -> None:
        r = await _patch(client, {"recording_sync": mode})
        assert r.status_code == 200, r.text
        assert (await _get_settings(client))["recording_sync"] == mode

    async def test_webinar_sync_needs_global_sync(self, client: httpx.AsyncClient) -> None:
        assert (await _patch(client, {"global_sync_enabled": False})).status_code == 200
        before = await _get_settings(client)
        r = await _patch(client, {"webinar_sync_enabled": True, "recording_sync": "all"})
        assert r.status_code == 409, r.text
        assert r.json()["detail"] == "enable global sync first"
        after = await _get_settings(client)
        assert after == before
        assert after["webinar_sync_enabled"] is False
        assert after["recording_sync"] == "none"

    async def test_webinar_sync_on_and_global_off_in_one_patch_is_409(
        self, client: httpx.AsyncClient
    ) -> None:
        r = await _patch(client, {"global_sync_enabled": False, "webinar_sync_enabled": True})
        assert r.status_code == 409, r.text
        assert r.json()["detail"] == "enable global sync first"
        after = await _get_settings(client)
        assert (after["global_sync_enabled"], after["webinar_sync_enabled"]) == (True, False)

    async def test_both_on_in_one_patch(self, client: httpx.AsyncClient) -> None:
        assert (await _patch(client, {"global_sync_enabled": False})).status_code == 200
        r = await _patch(client, {"global_sync_enabled": True, "webinar_sync_enabled": True})
        assert r.status_code == 200, r.text
        after = await _get_settings(client)
        assert (after["global_sync_enabled"], after["webinar_sync_enabled"]) == (True, True)

    async def test_webinar_sync_on_while_global_on(self, client: httpx.AsyncClient) -> None:
        r = await _patch(client, {"webinar_sync_enabled": True})
        assert r.status_code == 200, r.text
        assert (await _get_settings(client))["webinar_sync_enabled"] is True

    async def test_recording_sync_users_normalised(self, client: httpx.AsyncClient) -> None:
        users = ["Ada@Example.COM", " ada@example.com", "KdYKjnimT4KPd8FFgQt9FQ", "kdykjnimt4kpd8ffgqt9fq"]
        r = await _patch(client, {"recording_sync": "selected", "recording_sync_users": users})
        assert r.status_code == 200, r.text
        expected = ["ada@example.com", "KdYKjnimT4KPd8FFgQt9FQ", "kdykjnimt4kpd8ffgqt9fq"]
        assert r.json()["recording_sync_users"] == expected
        assert (await _get_settings(client))["recording_sync_users"] == expected

    @pytest.mark.parametrize("bad", ["", "   ", "two words"])
    async def test_bad_recording_sync_user_is_422(self, client: httpx.AsyncClient, bad: str) -> None:
        r = await _patch(client, {"recording_sync_users": [bad]})
        assert r.status_code == 422, r.text
        assert "recording_sync_users" in _loc_names(r)

    async def test_lists_can_be_emptied(self, client: httpx.AsyncClient) -> None:
        assert (await _patch(client, {"exclusion_domains": ["a.example"]})).status_code == 200
        assert (await _patch(client, {"exclusion_domains": []})).status_code == 200
        assert (await _get_settings(client))["exclusion_domains"] == []


# --------------------------------------------------------------------------------------------------
# Zoom users
# --------------------------------------------------------------------------------------------------


class TestZoomUsers:
    async def test_lists_seeded_user_with_defaults(
        self, client: httpx.AsyncClient, database: Database
    ) -> None:
        _seed_zoom_user(
            database,
            zoom_account_id=ACCOUNT_ID,
            zoom_user_id="KdYKjnimT4KPd8FFgQt9FQ",
            email="host@hostco.com",
        )
        r = await client.get(USERS_URL, headers=ADMIN)
        assert r.status_code == 200, r.text
        users = r.json()
        assert len(users) == 1
        user = users[0]
        assert user["zoom_user_id"] == "KdYKjnimT4KPd8FFgQt9FQ"
        assert user["zoom_account_id"] == ACCOUNT_ID
        assert user["email"] == "host@hostco.com"
        assert user["sync_new_webinars_by_default"] is True
        assert user["sync_recordings"] is False

    async def test_empty_list(self, client: httpx.AsyncClient) -> None:
        r = await client.get(USERS_URL, headers=ADMIN)
        assert r.status_code == 200, r.text
        assert r.json() == []

    async def test_patch_changes_user(self, client: httpx.AsyncClient, database: Database) -> None:
        _seed_zoom_user(database, zoom_account_id=ACCOUNT_ID, zoom_user_id="u1")
        r = await _patch(
            client, {"sync_new_webinars_by_default": False, "sync_recordings": True}, f"{USERS_URL}/u1"
        )
        assert r.status_code == 200, r.text
        assert (r.json()["sync_new_webinars_by_default"], r.json()["sync_recordings"]) == (False, True)
        listed = (await client.get(USERS_URL, headers=ADMIN)).json()
        assert [
            (u["zoom_user_id"], u["sync_new_webinars_by_default"], u["sync_recordings"]) for u in listed
        ] == [("u1", False, True)]
        # A partial PATCH leaves the other field alone.
        r = await _patch(client, {"sync_recordings": False}, f"{USERS_URL}/u1")
        assert r.status_code == 200, r.text
        assert (r.json()["sync_new_webinars_by_default"], r.json()["sync_recordings"]) == (False, False)

    async def test_patch_unknown_user(self, client: httpx.AsyncClient, database: Database) -> None:
        _seed_zoom_user(database, zoom_account_id=ACCOUNT_ID, zoom_user_id="u1")
        r = await _patch(client, {"sync_recordings": True}, f"{USERS_URL}/nobody")
        assert r.status_code == 404, r.text

    async def test_patch_unknown_field_is_422(self, client: httpx.AsyncClient, database: Database) -> None:
        _seed_zoom_user(database, zoom_account_id=ACCOUNT_ID, zoom_user_id="u1")
        r = await _patch(client, {"email": "x@example.com"}, f"{USERS_URL}/u1")
        assert r.status_code == 422, r.text
        assert "email" in _loc_names(r)

    async def test_other_accounts_users_are_invisible(
        self, client: httpx.AsyncClient, database: Database
    ) -> None:
        _seed_zoom_user(database, zoom_account_id=ACCOUNT_ID, zoom_user_id="mine")
        _seed_zoom_user(database, zoom_account_id="acct_other_99", zoom_user_id="theirs")
        r = await client.get(USERS_URL, headers=ADMIN)
        assert r.status_code == 200, r.text
        assert [u["zoom_user_id"] for u in r.json()] == ["mine"]
        # Nor can this portal change it.
        r = await _patch(client, {"sync_recordings": True}, f"{USERS_URL}/theirs")
        assert r.status_code == 404, r.text
        with Session(database.engine) as session:
            theirs = session.get(ZoomUser, ("acct_other_99", "theirs"))
            assert theirs is not None and theirs.sync_recordings is False


# --------------------------------------------------------------------------------------------------
# Status, health, metrics, docs
# --------------------------------------------------------------------------------------------------


class TestStatus:
    async def test_empty(self, client: httpx.AsyncClient) -> None:
        r = await client.get("/api/v1/status", headers=ADMIN)
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["pending"], body["failed"], body["dead"]) == (0, 0, 0)

    async def test_counts_pending_deliveries(self, client: httpx.AsyncClient) -> None:
        for i in range(3):
            r = await _post_delivery(client, joined_event(i))
            assert r.json() == {"status": "accepted"}, r.text
        # A duplicate is not new work.
        assert (await _post_delivery(client, joined_event(0))).json()["status"] == "duplicate"
        r = await client.get("/api/v1/status", headers=ADMIN)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["pending"] == 3
        assert (body["failed"], body["dead"]) == (0, 0)


def _metric_value(text: str, name: str, labels: dict[str, str]) -> float:
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', line[line.index("{") : line.index("}")]))
        if all(got.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


class TestOpenEndpoints:
    async def test_healthz(self, client: httpx.AsyncClient) -> None:
        r = await client.get("/healthz")
        assert r.status_code == 200
        assert r.json() == {"status": "ok"}

    async def test_readyz(self, client: httpx.AsyncClient) -> None:
        r = await client.get("/readyz")
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "ready"

    async def test_metrics_count_webhook_deliveries(self, client: httpx.AsyncClient) -> None:
        labels = {"event": "webinar.participant_joined", "outcome": "accepted"}
        before = _metric_value((await client.get("/metrics")).text, "zoom_webhook_deliveries_total", labels)
        assert (await _post_delivery(client, joined_event(7))).status_code == 200
        r = await client.get("/metrics")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/plain")
        assert "# TYPE zoom_webhook_deliveries_total counter" in r.text
        assert 'event="webinar.participant_joined"' in r.text
        after = _metric_value(r.text, "zoom_webhook_deliveries_total", labels)
        assert after == before + 1

    async def test_docs_and_openapi(self, client: httpx.AsyncClient) -> None:
        r = await client.get("/docs")
        assert r.status_code == 200
        assert "text/html" in r.headers["content-type"]
        assert "swagger" in r.text.lower()
        r = await client.get("/openapi.json")
        assert r.status_code == 200
        paths = r.json()["paths"]
        for path in (
            "/api/v1/portals/{portal_id}/settings",
            "/api/v1/portals/{portal_id}/zoom-users",
            "/api/v1/portals/{portal_id}/zoom-users/{zoom_user_id}",
            "/api/v1/status",
            "/webhooks/zoom",
        ):
            assert path in paths, path
