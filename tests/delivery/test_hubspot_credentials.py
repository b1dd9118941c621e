"""A portal's token comes from `hubspot_portal` (encrypted) before the environment's."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest
import respx

from app.config import Settings
from app.db import unit_of_work, utcnow
from app.delivery import hubspot_gateway
from app.delivery.hubspot_gateway import HubSpotGateway
from app.delivery.hubspot_install import record_install
from app.integrations.hubspot import HubSpotAuthError, HubSpotClient, HubSpotError
from app.integrations.hubspot.oauth import HubSpotRefreshRefused, OAuthTokens
from app.models import AuthMode, HubSpotPortal
from app.secret_box import SecretBox, SecretKeyMissing
from tests.fixtures.databases import Database
from tests.fixtures.service import PORTAL_ID, make_settings

pytestmark = pytest.mark.anyio

KEY = "test-app-secret-key"
OTHER_PORTAL = 777


def _store(db: Database, portal_id: int, token: str, *, needs_reinstall: bool = False) -> None:
    with unit_of_work(db.engine) as session:
        session.merge(
            HubSpotPortal(
                portal_id=portal_id,
                access_token=SecretBox(KEY).encrypt(token),
                needs_reinstall=needs_reinstall,
            )
        )


async def _authorization(gateway: HubSpotGateway, portal_id: int) -> str:
    client = gateway.client_for(portal_id)
    if client is None:
        raise AssertionError("no client")
    with respx.mock(base_url="https://api.hubapi.com") as mock:
        route = mock.get("/crm/v3/properties/contacts/groups/zoom_webinars").respond(404, json={})
        await client.get_property_group("zoom_webinars")
    return str(route.calls.last.request.headers["authorization"])


async def test_stored_token_wins_over_env_and_others_need_one(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hubspot_gateway, "CREDENTIALS_RECHECK_S", 0.0)
    settings = make_settings(database, hubspot_access_token="env-token", app_secret_key=KEY)
    gateway = HubSpotGateway(settings, database.engine)
    try:
        assert await _authorization(gateway, PORTAL_ID) == "Bearer env-token"
        assert gateway.client_for(OTHER_PORTAL) is None  # nothing stored, not the env portal
        _store(database, OTHER_PORTAL, "other-token")
        _store(database, PORTAL_ID, "stored-token")
        assert await _authorization(gateway, OTHER_PORTAL) == "Bearer other-token"
        assert await _authorization(gateway, PORTAL_ID) == "Bearer stored-token"
        _store(database, OTHER_PORTAL, "other-token", needs_reinstall=True)
        assert gateway.client_for(OTHER_PORTAL) is None  # parked until re-installed
    finally:
        await gateway.aclose()


async def test_stored_token_without_key_is_a_clear_error(database: Database) -> None:
    _store(database, OTHER_PORTAL, "other-token")
    gateway = HubSpotGateway(make_settings(database), database.engine)
    try:
        with pytest.raises(SecretKeyMissing):
            gateway.client_for(OTHER_PORTAL)
    finally:
        await gateway.aclose()


async def test_db_row_is_encrypted(database: Database) -> None:
    _store(database, OTHER_PORTAL, "plain-token-value")
    with database.engine.connect() as conn:
        raw = conn.exec_driver_sql("SELECT access_token FROM hubspot_portal").scalar_one()
    assert "plain-token-value" not in raw


# --- OAuth portals: refresh before expiry, once across processes; a refused refresh parks the portal ---

OAUTH_PORTAL = 5151
TOKEN_ROUTE = "/oauth/2026-03/token"
GROUP_ROUTE = "/crm/v3/properties/contacts/groups/zoom_webinars"


def _oauth_settings(database: Database, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "app_secret_key": KEY,
        "hubspot_client_id": "cid",
        "hubspot_client_secret": "csecret",
        "hubspot_retry_base_s": 0.001,
    }
    values.update(overrides)
    return make_settings(database, **values)


def _store_oauth(db: Database, *, access: str, refresh: str, expires_in_s: float, version: int = 1) -> None:
    box = SecretBox(KEY)
    with unit_of_work(db.engine) as session:
        session.merge(
            HubSpotPortal(
                portal_id=OAUTH_PORTAL,
                auth_mode=AuthMode.OAUTH,
                access_token=box.encrypt(access),
                refresh_token=box.encrypt(refresh),
                access_expires_at=utcnow() + timedelta(seconds=expires_in_s),
                token_version=version,
            )
        )


def _row(db: Database) -> HubSpotPortal:
    with unit_of_work(db.engine) as session:
        row = session.get(HubSpotPortal, OAUTH_PORTAL)
        if row is None:
            raise AssertionError("no row")
        return row


def _client(gateway: HubSpotGateway) -> HubSpotClient:
    client = gateway.client_for(OAUTH_PORTAL)
    if client is None:
        raise AssertionError("no client")
    return client


def _new_tokens(n: int) -> dict[str, object]:
    return {
        "access_token": f"new-access-{n}",
        "refresh_token": "refresh-1",
        "expires_in": 1800,
        "hub_id": 5151,
    }


async def test_two_processes_refresh_an_expiring_token_once(database: Database) -> None:
    _store_oauth(database, access="old-access", refresh="refresh-1", expires_in_s=60)  # < 5 min left
    first = HubSpotGateway(_oauth_settings(database), database.engine)
    second = HubSpotGateway(_oauth_settings(database), database.engine)
    refreshes = 0

    async def token_answer(request: httpx.Request) -> httpx.Response:
        nonlocal refreshes
        refreshes += 1
        await asyncio.sleep(0.3)  # a slow refresh: the other process finds the lease taken
        return httpx.Response(200, json=_new_tokens(refreshes))

    try:
        with respx.mock(base_url="https://api.hubapi.com") as mock:
            token = mock.post(TOKEN_ROUTE).mock(side_effect=token_answer)
            api = mock.get(GROUP_ROUTE).respond(404, json={})
            await asyncio.gather(
                _client(first).get_property_group("zoom_webinars"),
                _client(second).get_property_group("zoom_webinars"),
            )
        assert token.call_count == 1
        assert {str(call.request.headers["authorization"]) for call in api.calls} == {"Bearer new-access-1"}
        row = _row(database)
        assert (row.token_version, row.refresh_lease_until, row.needs_reinstall) == (2, None, False)
        assert SecretBox(KEY).decrypt(row.access_token or "") == "new-access-1"
        assert row.access_expires_at is not None and row.access_expires_at > utcnow() + timedelta(minutes=25)
    finally:
        await first.aclose()
        await second.aclose()


async def test_a_refused_refresh_parks_the_portal(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hubspot_gateway, "CREDENTIALS_RECHECK_S", 0.0)
    _store_oauth(database, access="old-access", refresh="revoked", expires_in_s=10)
    gateway = HubSpotGateway(_oauth_settings(database), database.engine)
    try:
        client = _client(gateway)
        with respx.mock(base_url="https://api.hubapi.com", assert_all_called=False) as mock:
            token = mock.post(TOKEN_ROUTE).respond(
                400, json={"status": "BAD_REFRESH_TOKEN", "message": "missing or unknown refresh token"}
            )
            api = mock.get(GROUP_ROUTE).respond(404, json={})
            with pytest.raises(HubSpotRefreshRefused):
                await gateway.setup_for(client, OAUTH_PORTAL)  # the round's pre-flight
            with pytest.raises(HubSpotRefreshRefused):
                await client.get_property_group("zoom_webinars")
        assert token.call_count == 1  # the second call saw the portal parked: HubSpot not asked again
        assert api.call_count == 0
        row = _row(database)
        assert (
            row.needs_reinstall and row.reinstall_reason and "install the app again" in row.reinstall_reason
        )
        assert row.refresh_lease_until is None and row.token_version == 1
        assert gateway.client_for(OAUTH_PORTAL) is None  # its work now waits (no attempt counted)
    finally:
        await gateway.aclose()


async def test_an_outage_during_refresh_leaves_the_portal_as_it_was(database: Database) -> None:
    _store_oauth(database, access="old-access", refresh="refresh-1", expires_in_s=10)
    gateway = HubSpotGateway(_oauth_settings(database), database.engine)
    try:
        with respx.mock(base_url="https://api.hubapi.com") as mock:
            mock.post(TOKEN_ROUTE).respond(503, text="down")
            with pytest.raises(HubSpotError) as caught:
                await _client(gateway).get_property_group("zoom_webinars")
        assert caught.value.retryable and not isinstance(caught.value, HubSpotRefreshRefused)
        row = _row(database)
        assert (row.needs_reinstall, row.refresh_lease_until, row.token_version) == (False, None, 1)
    finally:
        await gateway.aclose()


async def test_a_401_forces_one_refresh_and_one_more_try(database: Database) -> None:
    _store_oauth(database, access="revoked-early", refresh="refresh-1", expires_in_s=1500)  # looks fresh
    gateway = HubSpotGateway(_oauth_settings(database), database.engine)
    try:
        with respx.mock(base_url="https://api.hubapi.com") as mock:
            token = mock.post(TOKEN_ROUTE).respond(200, json=_new_tokens(1))
            api = mock.get(GROUP_ROUTE)
            api.side_effect = [httpx.Response(401, json={"message": "expired"}), httpx.Response(404, json={})]
            await _client(gateway).get_property_group("zoom_webinars")
            assert token.call_count == 1
            assert [str(c.request.headers["authorization"]) for c in api.calls] == [
                "Bearer revoked-early",
                "Bearer new-access-1",
            ]
            # Still 401 after the refresh: one retry only, then HubSpot's answer stands.
            api.side_effect = None
            api.respond(401, json={"message": "no"})
            token.respond(200, json=_new_tokens(2))
            with pytest.raises(HubSpotAuthError):
                await _client(gateway).get_property_group("zoom_webinars")
            assert token.call_count == 2 and api.call_count == 4
    finally:
        await gateway.aclose()


async def test_a_static_token_refused_with_401_is_not_retried(database: Database) -> None:
    gateway = HubSpotGateway(make_settings(database, hubspot_access_token="env-token"), database.engine)
    try:
        client = gateway.client_for(PORTAL_ID)
        if client is None:
            raise AssertionError("no client")
        with respx.mock(base_url="https://api.hubapi.com") as mock:
            api = mock.get(GROUP_ROUTE).respond(401, json={"message": "bad token"})
            with pytest.raises(HubSpotAuthError):
                await client.get_property_group("zoom_webinars")
        assert api.call_count == 1
    finally:
        await gateway.aclose()


def test_storing_tokens_without_a_key_is_a_clear_error_and_stores_nothing(database: Database) -> None:
    settings = make_settings(database)  # no APP_SECRET_KEY
    tokens = OAuthTokens(access_token="a", refresh_token="r", expires_in=1800, hub_id=OAUTH_PORTAL)
    with pytest.raises(SecretKeyMissing, match="APP_SECRET_KEY"):
        record_install(
            database.engine, settings, portal_id=OAUTH_PORTAL, tokens=tokens, app_id=None, now=utcnow()
        )
    with unit_of_work(database.engine) as session:
        assert session.get(HubSpotPortal, OAUTH_PORTAL) is None
