"""Zoom credentials per connection: the stored app of the account, else the environment's."""

from __future__ import annotations

import base64

import pytest
import respx
from sqlmodel import select

from app.db import unit_of_work, utcnow
from app.delivery import zoom_gateway
from app.delivery.zoom_gateway import ZoomGateway
from app.models import Connection
from app.secret_box import SecretBox
from tests.fixtures.databases import Database
from tests.fixtures.service import ACCOUNT_ID, PORTAL_ID, make_settings

pytestmark = pytest.mark.anyio

KEY = "zoom-gateway-test-key"
OTHER_ACCOUNT = "acct_other"


def _connect(db: Database, account: str, portal_id: int, client_id: str, secret: str, key: str = KEY) -> None:
    with unit_of_work(db.engine) as session:
        session.add(
            Connection(
                portal_id=portal_id,
                zoom_account_id=account,
                zoom_client_id=client_id,
                zoom_client_secret=SecretBox(key).encrypt(secret),
            )
        )


def _change(db: Database, account: str, client_id: str, secret: str) -> None:
    with unit_of_work(db.engine) as session:
        for conn in session.exec(select(Connection).where(Connection.zoom_account_id == account)):
            conn.zoom_client_id = client_id
            conn.zoom_client_secret = SecretBox(KEY).encrypt(secret)
            conn.updated_at = utcnow()


async def _basic(gateway: ZoomGateway, account: str) -> str:
    """The client id and secret the account's client sends to Zoom's token endpoint."""
    client = gateway.client_for(account)
    if client is None:
        raise AssertionError("no client")
    with respx.mock() as mock:
        token = mock.post("https://zoom.us/oauth/token").respond(
            200, json={"access_token": f"tok-{account}", "expires_in": 3600}
        )
        mock.get(url__regex=r"https://api\.zoom\.us/v2/users/me").respond(
            200, json={"id": "u", "email": "h@x.io"}
        )
        await client.get_user("me")
    header = str(token.calls.last.request.headers["authorization"])
    assert f"account_id={account}" in str(token.calls.last.request.url)
    return base64.b64decode(header.removeprefix("Basic ")).decode()


async def test_each_account_its_own_app_and_env_fallback(database: Database) -> None:
    settings = make_settings(
        database, zoom_client_id="env-client", zoom_client_secret="env-secret", app_secret_key=KEY
    )
    gateway = ZoomGateway(settings, engine=database.engine)
    try:
        assert await _basic(gateway, ACCOUNT_ID) == "env-client:env-secret"
        assert gateway.client_for(OTHER_ACCOUNT) is None
        _connect(database, OTHER_ACCOUNT, 900, "other-client", "other-secret")
        gateway._checked_at.clear()  # as if CREDENTIALS_RECHECK_S had passed
        env_client = gateway.client_for(ACCOUNT_ID)
        assert await _basic(gateway, OTHER_ACCOUNT) == "other-client:other-secret"
        assert gateway.client_for(ACCOUNT_ID) is env_client  # unchanged: its token stays cached
    finally:
        await gateway.aclose()


async def test_changed_credentials_are_picked_up(database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(zoom_gateway, "CREDENTIALS_RECHECK_S", 0.0)
    gateway = ZoomGateway(make_settings(database, app_secret_key=KEY), engine=database.engine)
    try:
        _connect(database, OTHER_ACCOUNT, 900, "c1", "s1")
        _connect(database, OTHER_ACCOUNT, PORTAL_ID, "c1", "s1")  # the same account for a second portal
        assert await _basic(gateway, OTHER_ACCOUNT) == "c1:s1"
        _change(database, OTHER_ACCOUNT, "c2", "s2")
        assert await _basic(gateway, OTHER_ACCOUNT) == "c2:s2"
        with unit_of_work(database.engine) as session:
            for conn in session.exec(select(Connection).where(Connection.zoom_account_id == OTHER_ACCOUNT)):
                session.delete(conn)
        assert gateway.client_for(OTHER_ACCOUNT) is None
    finally:
        await gateway.aclose()


async def test_unreadable_secret_means_no_client(database: Database) -> None:
    _connect(database, OTHER_ACCOUNT, 900, "c1", "s1", key="another-key")
    for settings in (make_settings(database, app_secret_key=KEY), make_settings(database)):
        gateway = ZoomGateway(settings, engine=database.engine)
        try:
            assert gateway.client_for(OTHER_ACCOUNT) is None
        finally:
            await gateway.aclose()


async def test_without_database_only_the_env_account(database: Database) -> None:
    _connect(database, OTHER_ACCOUNT, 900, "c1", "s1")
    settings = make_settings(
        database, zoom_client_id="env-client", zoom_client_secret="env-secret", app_secret_key=KEY
    )
    gateway = ZoomGateway(settings)
    try:
        assert gateway.client_for(OTHER_ACCOUNT) is None
        assert await _basic(gateway, ACCOUNT_ID) == "env-client:env-secret"
    finally:
        await gateway.aclose()
