"""`GET /oauth/hubspot/install` and its callback (CONTRACT.md §7), against the fake HubSpot."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlmodel import select

from app.api.oauth_state import new_nonce, sign_state
from app.db import unit_of_work, utcnow
from app.integrations.hubspot.oauth import OAUTH_SCOPES
from app.models import AuthMode, Connection, HubSpotPortal, OAuthState, PortalSettings
from app.sandbox.hubspot import create_hubspot_sandbox, sandbox_of
from app.sandbox.hubspot_state import HubSpotSandbox
from app.secret_box import SecretBox
from tests.fixtures.databases import Database
from tests.fixtures.oauth import (
    APP_SECRET_KEY,
    CLIENT_ID,
    CLIENT_SECRET,
    OAUTH_PORTAL,
    PUBLIC_BASE_URL,
    consent,
    install,
    oauth_settings,
    sandbox_kwargs,
)
from tests.fixtures.service import ACCOUNT_ID, AppClient, running_app

pytestmark = pytest.mark.anyio


@dataclass
class Setup:
    service: AppClient
    hubspot: httpx.AsyncClient
    sandbox: HubSpotSandbox


@asynccontextmanager
async def serving(db: Database, **overrides: Any) -> AsyncIterator[Setup]:
    sandbox_app = create_hubspot_sandbox(tokens={"unused-static-token": 1}, **sandbox_kwargs())
    sandbox = sandbox_of(sandbox_app)
    sandbox.oauth.update({"install_portal": OAUTH_PORTAL})
    transport = httpx.ASGITransport(app=sandbox_app)
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://hubspot.test") as hubspot,
        running_app(oauth_settings(db, **overrides), hubspot_transport=transport) as service,
    ):
        yield Setup(service, hubspot, sandbox)


def _portal(db: Database) -> HubSpotPortal | None:
    with unit_of_work(db.engine) as session:
        return session.get(HubSpotPortal, OAUTH_PORTAL)


def _secrets(sandbox: HubSpotSandbox) -> list[str]:
    return [*sandbox.oauth.access, *sandbox.oauth.refresh, CLIENT_SECRET, APP_SECRET_KEY]


async def test_install_redirects_to_hubspot_with_a_stored_state(database: Database) -> None:
    async with serving(database) as s:
        r = await s.service.get("/oauth/hubspot/install")
    assert r.status_code == 302
    url = urlsplit(r.headers["location"])
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert url.path == "/oauth/authorize"
    assert query["client_id"] == CLIENT_ID
    assert query["redirect_uri"] == PUBLIC_BASE_URL + "/oauth/hubspot/callback"
    assert query["scope"].split() == list(OAUTH_SCOPES) and query["optional_scope"]
    nonce = query["state"].split(".")[0]
    with unit_of_work(database.engine) as session:
        stored = session.get(OAuthState, nonce)
    assert stored is not None and stored.expires_at > utcnow()


@pytest.mark.parametrize("missing", ["hubspot_client_id", "hubspot_client_secret", "app_secret_key"])
async def test_install_without_configuration_is_a_503_naming_the_variable(
    database: Database, missing: str
) -> None:
    async with serving(database, **{missing: None}) as s:
        install_answer = await s.service.get("/oauth/hubspot/install")
        callback_answer = await s.service.get("/oauth/hubspot/callback", params={"code": "c", "state": "s"})
    for r in (install_answer, callback_answer):
        assert r.status_code == 503
        assert missing.upper() in r.json()["detail"]


async def test_callback_installs_the_portal(database: Database) -> None:
    async with serving(database, hubspot_portal_id=None, hubspot_app_id="1001") as s:
        r = await install(s.service, s.hubspot)
        secrets = _secrets(s.sandbox)
        state = s.sandbox.oauth.snapshot()
    assert r.status_code == 200, r.text
    assert f"Connected HubSpot portal {OAUTH_PORTAL}" in r.text
    assert "HubSpot set-up: done." in r.text
    assert not any(secret in r.text for secret in secrets)
    assert state["requests"] == {"authorization_code /oauth/2026-03/token": 1}
    row = _portal(database)
    assert row is not None
    assert (row.auth_mode, row.needs_reinstall, row.token_version) == (AuthMode.OAUTH, False, 1)
    assert row.installed_at is not None and row.access_expires_at is not None
    assert row.access_expires_at > utcnow() + timedelta(minutes=25)
    box = SecretBox(APP_SECRET_KEY)
    assert box.decrypt(row.access_token or "") in secrets and box.decrypt(row.refresh_token or "") in secrets
    assert not any(secret in (row.access_token or "") + (row.refresh_token or "") for secret in secrets)
    with unit_of_work(database.engine) as session:
        assert session.get(PortalSettings, OAUTH_PORTAL) is not None
        connections = session.exec(select(Connection).where(Connection.portal_id == OAUTH_PORTAL)).all()
    assert [(c.zoom_account_id, c.business_unit_id, c.is_primary) for c in connections] == [
        (ACCOUNT_ID, 0, True)
    ]


async def test_callback_learns_the_portal_from_token_info_and_falls_back_to_the_legacy_route(
    database: Database,
) -> None:
    async with serving(database) as s:
        s.sandbox.oauth.update({"omit_hub_id": True, "dated_token_route_gone": True})
        r = await install(s.service, s.hubspot)
        state = s.sandbox.oauth.snapshot()
    assert r.status_code == 200, r.text
    assert f"Connected HubSpot portal {OAUTH_PORTAL}" in r.text
    assert state["requests"] == {"authorization_code /oauth/v1/token": 1}
    assert _portal(database) is not None


async def test_a_reused_state_is_refused_and_stores_nothing_new(database: Database) -> None:
    async with serving(database) as s:
        callback = await consent(s.service, s.hubspot)
        assert (await s.service.get(callback)).status_code == 200
        again = await s.service.get(callback)
        state = s.sandbox.oauth.snapshot()
    assert again.status_code == 400
    assert "already used" in again.text
    assert state["requests"] == {"authorization_code /oauth/2026-03/token": 1}  # the code was not sent again
    row = _portal(database)
    assert row is not None and row.token_version == 1


def _callback_with_state(code: str, state: str) -> dict[str, str]:
    return {"code": code, "state": state}


async def test_bad_states_are_refused_and_store_nothing(database: Database) -> None:
    async with serving(database) as s:
        callback = await consent(s.service, s.hubspot)
        query = {k: v[0] for k, v in parse_qs(urlsplit(callback).query).items()}
        nonce, expires, signature = query["state"].split(".")
        now = utcnow()
        expired_nonce = new_nonce()
        with unit_of_work(database.engine) as session:
            session.add(
                OAuthState(nonce=expired_nonce, created_at=now, expires_at=now - timedelta(minutes=1))
            )
        bad_states = [
            f"{nonce}.{expires}.{'x' + signature[1:]}",  # tampered signature
            f"{nonce}.{int(expires) + 60}.{signature}",  # tampered expiry
            sign_state("not-our-key", nonce, now + timedelta(minutes=5)),  # signed by someone else
            sign_state(APP_SECRET_KEY, expired_nonce, now - timedelta(minutes=1)),  # expired
            sign_state(APP_SECRET_KEY, new_nonce(), now + timedelta(minutes=5)),  # never issued
            "garbage",
        ]
        answers = [
            await s.service.get("/oauth/hubspot/callback", params=_callback_with_state(query["code"], bad))
            for bad in bad_states
        ]
        missing_code = await s.service.get("/oauth/hubspot/callback", params={"state": query["state"]})
        state = s.sandbox.oauth.snapshot()
        # The real state still works afterwards: nothing above consumed it.
        good = await s.service.get(callback)
    assert [a.status_code for a in answers] == [400] * len(bad_states)
    assert missing_code.status_code == 400
    assert state["requests"] == {}  # HubSpot was never asked
    assert good.status_code == 200


async def test_hubspots_error_is_shown_escaped(database: Database) -> None:
    async with serving(database) as s:
        r = await s.service.get(
            "/oauth/hubspot/callback",
            params={"error": "access_denied", "error_description": "<script>alert(1)</script>"},
        )
    assert r.status_code == 400
    assert "access_denied" in r.text
    assert "<script>" not in r.text and "&lt;script&gt;" in r.text
    assert _portal(database) is None


async def test_a_refused_code_is_a_400_and_hubspot_down_a_502(database: Database) -> None:
    async with serving(database) as s:
        callback = await consent(s.service, s.hubspot)
        query = {k: v[0] for k, v in parse_qs(urlsplit(callback).query).items()}
        s.sandbox.oauth.codes.clear()  # the code is gone (used elsewhere, expired)
        refused = await s.service.get(callback)
        s.sandbox.oauth.update({"token_route_down": True})
        down = await s.service.get(await consent(s.service, s.hubspot))
    assert refused.status_code == 400 and "did not accept" in refused.text
    assert query["code"] not in refused.text
    assert down.status_code == 502
    assert _portal(database) is None
