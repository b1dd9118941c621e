"""`/api/v1/connections` (CONTRACT.md §7): list, create, change, delete; never a secret in an answer."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from sqlmodel import Session, select

from app.models import AuthMode, Connection, HubSpotPortal, InboxEvent, PortalSettings, Webinar
from app.secret_box import SecretBox
from tests.fixtures.databases import Database
from tests.fixtures.service import ACCOUNT_ID, ADMIN, PORTAL_ID, make_settings, running_app

pytestmark = pytest.mark.anyio

URL = "/api/v1/connections"
SECRET_KEY = "connections-test-key-0123456789"
ZOOM_SECRET = "zoom-s2s-secret-value"
HUBSPOT_TOKEN = "pat-na1-very-secret-token"
OTHER_PORTAL = 5151
OTHER_ACCOUNT = "acct_other_02"


def new_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "zoom_account_id": OTHER_ACCOUNT,
        "hubspot_portal_id": OTHER_PORTAL,
        "zoom_client_id": "client-02",
        "zoom_client_secret": ZOOM_SECRET,
        "hubspot_access_token": HUBSPOT_TOKEN,
        "hubspot_rate_limit_per_10s": 7,
    }
    body.update(overrides)
    return body


def assert_no_secret(response: httpx.Response) -> None:
    assert ZOOM_SECRET not in response.text
    assert HUBSPOT_TOKEN not in response.text


@pytest.fixture
async def keyed(database: Database) -> Any:
    async with running_app(make_settings(database, app_secret_key=SECRET_KEY)) as client:
        yield client


async def _create(client: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    r = await client.post(URL, json=new_body(**overrides), headers=ADMIN)
    assert r.status_code == 201, r.text
    assert_no_secret(r)
    body: dict[str, Any] = r.json()
    return body


class TestList:
    async def test_env_connection_listed_with_settings_secrets(self, database: Database) -> None:
        settings = make_settings(
            database,
            zoom_client_id="env-client",
            zoom_client_secret="env-secret",
            hubspot_access_token="env-tok",
        )
        async with running_app(settings) as client:
            r = await client.get(URL, headers=ADMIN)
        assert r.status_code == 200, r.text
        assert "env-secret" not in r.text and "env-tok" not in r.text
        [env] = r.json()
        assert env["source"] == "env"
        assert (env["zoom_account_id"], env["hubspot_portal_id"]) == (ACCOUNT_ID, PORTAL_ID)
        assert env["zoom_client_id"] == "env-client"
        assert env["zoom_client_secret_set"] is True
        assert env["hubspot_access_token_set"] is True
        assert env["primary"] is True and env["business_unit_id"] == 0
        assert env["hubspot_rate_limit_per_10s"] == settings.hubspot_rate_limit_per_10s

    async def test_env_connection_without_secrets(self, client: httpx.AsyncClient) -> None:
        [env] = (await client.get(URL, headers=ADMIN)).json()
        assert env["zoom_client_secret_set"] is False
        assert env["hubspot_access_token_set"] is False

    async def test_needs_token(self, client: httpx.AsyncClient) -> None:
        assert (await client.get(URL)).status_code == 401


class TestCreate:
    async def test_created_encrypted_and_listed(self, keyed: httpx.AsyncClient, database: Database) -> None:
        made = await _create(keyed)
        assert made["source"] == "api"
        assert made["zoom_client_secret_set"] is True and made["hubspot_access_token_set"] is True
        assert made["auth_mode"] == "static" and made["needs_reinstall"] is False
        assert made["hubspot_rate_limit_per_10s"] == 7
        assert (made["business_unit_id"], made["primary"]) == (0, True)
        listed = (await keyed.get(URL, headers=ADMIN)).json()
        assert [c["source"] for c in listed] == ["env", "api"]
        assert listed[1] == made

        box = SecretBox(SECRET_KEY)
        with Session(database.engine) as session:
            conn = session.get(Connection, made["id"])
            assert conn is not None and conn.zoom_client_secret is not None
            assert ZOOM_SECRET not in conn.zoom_client_secret
            assert box.decrypt(conn.zoom_client_secret) == ZOOM_SECRET
            portal = session.get(HubSpotPortal, OTHER_PORTAL)
            assert portal is not None and portal.access_token is not None
            assert box.decrypt(portal.access_token) == HUBSPOT_TOKEN
            assert portal.auth_mode == AuthMode.STATIC and portal.rate_limit_per_10s == 7
            assert session.get(PortalSettings, OTHER_PORTAL) is not None

    async def test_without_hubspot_token_or_budget(self, keyed: httpx.AsyncClient) -> None:
        body = new_body()
        del body["hubspot_access_token"], body["hubspot_rate_limit_per_10s"]
        r = await keyed.post(URL, json=body, headers=ADMIN)
        assert r.status_code == 201, r.text
        assert r.json()["hubspot_access_token_set"] is False
        assert r.json()["hubspot_rate_limit_per_10s"] == 100  # the default

    async def test_duplicate_pair_409(self, keyed: httpx.AsyncClient) -> None:
        await _create(keyed)
        r = await keyed.post(URL, json=new_body(), headers=ADMIN)
        assert r.status_code == 409
        assert (
            r.json()["detail"]
            == f"HubSpot portal {OTHER_PORTAL} is already connected to Zoom account {OTHER_ACCOUNT}"
        )
        env_pair = new_body(zoom_account_id=ACCOUNT_ID, hubspot_portal_id=PORTAL_ID)
        assert (await keyed.post(URL, json=env_pair, headers=ADMIN)).status_code == 409

    async def test_one_account_two_portals_and_two_accounts_one_portal(
        self, keyed: httpx.AsyncClient
    ) -> None:
        await _create(keyed)
        await _create(keyed, hubspot_portal_id=OTHER_PORTAL + 1)
        await _create(keyed, zoom_account_id="acct_third")
        assert len((await keyed.get(URL, headers=ADMIN)).json()) == 4

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("zoom_account_id", ""),
            ("zoom_account_id", "has space"),
            ("zoom_account_id", "x" * 65),
            ("hubspot_portal_id", 0),
            ("hubspot_portal_id", -3),
            ("hubspot_portal_id", "abc"),
            ("hubspot_portal_id", 2**63),
            ("business_unit_id", -1),
            ("zoom_client_id", ""),
            ("zoom_client_id", "   "),
            ("zoom_client_secret", ""),
            ("zoom_client_secret", "a\x00b"),
            ("hubspot_access_token", " "),
            ("hubspot_rate_limit_per_10s", 0),
            ("hubspot_rate_limit_per_10s", "many"),
            ("primary", "maybe"),
        ],
    )
    async def test_invalid_field_422_names_it(self, keyed: httpx.AsyncClient, field: str, value: Any) -> None:
        r = await keyed.post(URL, json=new_body(**{field: value}), headers=ADMIN)
        assert r.status_code == 422, r.text
        assert any(item["loc"][-1] == field for item in r.json()["detail"]), r.text
        assert ZOOM_SECRET not in r.text

    @pytest.mark.parametrize(
        "field", ["zoom_account_id", "hubspot_portal_id", "zoom_client_id", "zoom_client_secret"]
    )
    async def test_missing_required_422(self, keyed: httpx.AsyncClient, field: str) -> None:
        body = new_body()
        del body[field]
        r = await keyed.post(URL, json=body, headers=ADMIN)
        assert r.status_code == 422
        assert r.json()["detail"][0]["loc"][-1] == field

    async def test_unknown_field_422(self, keyed: httpx.AsyncClient) -> None:
        r = await keyed.post(URL, json=new_body(refresh_token="x"), headers=ADMIN)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "refresh_token"

    async def test_secret_without_key_503_nothing_stored(
        self, client: httpx.AsyncClient, database: Database
    ) -> None:
        r = await client.post(URL, json=new_body(), headers=ADMIN)
        assert r.status_code == 503
        assert "APP_SECRET_KEY is not set" in r.json()["detail"]
        assert_no_secret(r)
        with Session(database.engine) as session:
            assert (
                session.exec(select(Connection).where(Connection.portal_id == OTHER_PORTAL)).first() is None
            )
            assert session.get(HubSpotPortal, OTHER_PORTAL) is None

    async def test_known_webinars_of_the_account_are_planned_again(
        self, keyed: httpx.AsyncClient, database: Database
    ) -> None:
        with Session(database.engine) as session:
            session.add(Webinar(zoom_account_id=OTHER_ACCOUNT, webinar_id="9001"))
            session.commit()
        await _create(keyed)
        with Session(database.engine) as session:
            replans = session.exec(select(InboxEvent).where(InboxEvent.event == "internal.replan")).all()
        assert [json.loads(r.raw_body) for r in replans] == [
            {"account_id": OTHER_ACCOUNT, "webinar_id": "9001"}
        ]


class TestPatchDelete:
    async def test_patch_changes_and_reencrypts(self, keyed: httpx.AsyncClient, database: Database) -> None:
        made = await _create(keyed)
        r = await keyed.patch(
            f"{URL}/{made['id']}",
            json={
                "business_unit_id": 12,
                "primary": False,
                "zoom_client_id": "client-03",
                "zoom_client_secret": "new-zoom-secret",
                "hubspot_access_token": "new-hubspot-token",
                "hubspot_rate_limit_per_10s": 3,
            },
            headers=ADMIN,
        )
        assert r.status_code == 200, r.text
        assert "new-zoom-secret" not in r.text and "new-hubspot-token" not in r.text
        out = r.json()
        assert (out["business_unit_id"], out["primary"], out["zoom_client_id"]) == (12, False, "client-03")
        assert out["hubspot_rate_limit_per_10s"] == 3
        assert out["updated_at"] >= made["updated_at"]
        box = SecretBox(SECRET_KEY)
        with Session(database.engine) as session:
            conn = session.get(Connection, made["id"])
            portal = session.get(HubSpotPortal, OTHER_PORTAL)
            assert conn is not None and conn.zoom_client_secret is not None
            assert box.decrypt(conn.zoom_client_secret) == "new-zoom-secret"
            assert portal is not None and portal.access_token is not None
            assert box.decrypt(portal.access_token) == "new-hubspot-token"
            assert portal.token_version == 2

    async def test_patch_budget_null_back_to_default(self, keyed: httpx.AsyncClient) -> None:
        made = await _create(keyed)
        r = await keyed.patch(f"{URL}/{made['id']}", json={"hubspot_rate_limit_per_10s": None}, headers=ADMIN)
        assert r.status_code == 200 and r.json()["hubspot_rate_limit_per_10s"] == 100

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"zoom_account_id": "acct_x"}, "zoom_account_id"),
            ({"hubspot_portal_id": 7}, "hubspot_portal_id"),
            ({"business_unit_id": None}, "business_unit_id"),
            ({"zoom_client_secret": ""}, "zoom_client_secret"),
            ({"hubspot_rate_limit_per_10s": 0}, "hubspot_rate_limit_per_10s"),
        ],
    )
    async def test_patch_invalid_422(
        self, keyed: httpx.AsyncClient, body: dict[str, Any], field: str
    ) -> None:
        made = await _create(keyed)
        r = await keyed.patch(f"{URL}/{made['id']}", json=body, headers=ADMIN)
        assert r.status_code == 422, r.text
        assert r.json()["detail"][0]["loc"][-1] == field

    async def test_unknown_404(self, keyed: httpx.AsyncClient) -> None:
        r = await keyed.patch(f"{URL}/999", json={"primary": False}, headers=ADMIN)
        assert r.status_code == 404 and r.json()["detail"] == "unknown connection 999"
        assert (await keyed.delete(f"{URL}/999", headers=ADMIN)).status_code == 404
        assert (await keyed.delete(f"{URL}/abc", headers=ADMIN)).status_code == 422
        assert (await keyed.delete(f"{URL}/{2**31}", headers=ADMIN)).status_code == 422  # INTEGER column

    async def test_env_connection_409(self, keyed: httpx.AsyncClient) -> None:
        [env] = (await keyed.get(URL, headers=ADMIN)).json()
        for r in (
            await keyed.patch(f"{URL}/{env['id']}", json={"primary": False}, headers=ADMIN),
            await keyed.delete(f"{URL}/{env['id']}", headers=ADMIN),
        ):
            assert r.status_code == 409
            assert "configured by the environment" in r.json()["detail"]

    async def test_patch_secret_without_key_503(self, database: Database) -> None:
        async with running_app(make_settings(database, app_secret_key=SECRET_KEY)) as keyed:
            made = await _create(keyed)
        async with running_app(make_settings(database)) as client:
            r = await client.patch(f"{URL}/{made['id']}", json={"zoom_client_secret": "other"}, headers=ADMIN)
            assert r.status_code == 503 and "APP_SECRET_KEY" in r.json()["detail"]
            # Changes without a secret need no key.
            r = await client.patch(f"{URL}/{made['id']}", json={"business_unit_id": 4}, headers=ADMIN)
            assert r.status_code == 200, r.text

    async def test_delete_keeps_portal_data_and_tokens(
        self, keyed: httpx.AsyncClient, database: Database
    ) -> None:
        made = await _create(keyed)
        r = await keyed.delete(f"{URL}/{made['id']}", headers=ADMIN)
        assert r.status_code == 204 and r.content == b""
        assert [c["source"] for c in (await keyed.get(URL, headers=ADMIN)).json()] == ["env"]
        with Session(database.engine) as session:
            portal = session.get(HubSpotPortal, OTHER_PORTAL)
            assert portal is not None and portal.access_token is not None
            assert session.get(PortalSettings, OTHER_PORTAL) is not None
        # Connecting again works (the pair is free again).
        await _create(keyed)
