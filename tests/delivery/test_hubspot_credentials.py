"""A portal's token comes from `hubspot_portal` (encrypted) before the environment's."""

from __future__ import annotations

import pytest
import respx

from app.db import unit_of_work
from app.delivery import hubspot_gateway
from app.delivery.hubspot_gateway import HubSpotGateway
from app.models import HubSpotPortal
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
