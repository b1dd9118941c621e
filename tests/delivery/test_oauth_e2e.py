"""An OAuth portal's life, end to end against the fake HubSpot: install → a webinar syncs → the access
token expires (refreshed, the sync goes on) → the app is uninstalled (the refresh is refused, the
portal waits for a re-install, new work is parked: pending, no attempt, nothing failed) → re-install →
the parked work completes. No token is ever in an answer or a log line."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from sqlmodel import col, select

from app.db import unit_of_work, utcnow
from app.delivery import hubspot_credentials, hubspot_gateway
from app.models import HubSpotPortal, OutboxOp, OutboxState
from app.sandbox.hubspot import create_hubspot_sandbox, sandbox_of
from app.sandbox.hubspot_state import HubSpotSandbox
from app.sandbox.zoom_webhooks import WebinarScenario
from tests.fixtures.databases import Database
from tests.fixtures.delivery import wait_all_done
from tests.fixtures.e2e import APP_ID
from tests.fixtures.oauth import (
    APP_SECRET_KEY,
    CLIENT_SECRET,
    OAUTH_PORTAL,
    install,
    oauth_settings,
    sandbox_kwargs,
)
from tests.fixtures.scenarios import deliver
from tests.fixtures.service import ACCOUNT_ID, ADMIN, AppClient, running_app

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

T0 = datetime(2026, 5, 4, 15, 0, tzinfo=UTC)


def registrations(webinar_id: str, *emails: str) -> list[dict[str, Any]]:
    s = WebinarScenario(
        account_id=ACCOUNT_ID,
        webinar_id=webinar_id,
        host_id="hostO",
        host_email="host@hostco.com",
        topic=f"OAuth webinar {webinar_id}",
        start=T0,
        duration_minutes=60,
        seed=int(webinar_id[-3:]),
    )
    s.created(at=T0 - timedelta(days=5))
    for email in emails:
        s.register(email, email.split("@")[0].title(), "Tester", at=T0 - timedelta(days=3))
    return [dict(e) for e in s.envelopes]


def contact_emails(sandbox: HubSpotSandbox) -> set[str]:
    contacts = sandbox.portal(OAUTH_PORTAL).snapshot()["contacts"]
    return {c["properties"].get("email") for c in contacts}


async def status(client: AppClient) -> dict[str, Any]:
    body: dict[str, Any] = (await client.get("/api/v1/status", headers=ADMIN)).json()
    return body


async def wait_needs_reinstall(client: AppClient, timeout_s: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        body = await status(client)
        if body["portals"][str(OAUTH_PORTAL)]["needs_reinstall"]:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"portal not marked after {timeout_s}s: {body}")
        await asyncio.sleep(0.05)


def pending_ops(db: Database) -> list[OutboxOp]:
    with unit_of_work(db.engine) as session:
        return list(
            session.exec(
                select(OutboxOp).where(
                    col(OutboxOp.portal_id) == OAUTH_PORTAL, col(OutboxOp.state) == OutboxState.PENDING
                )
            ).all()
        )


def issued(sandbox: HubSpotSandbox) -> set[str]:
    return {*sandbox.oauth.access, *sandbox.oauth.refresh}


async def test_oauth_portal_install_refresh_uninstall_reinstall(
    database: Database,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Every look at a portal's credentials reads the database (no 5 s caches): the steps are exact.
    monkeypatch.setattr(hubspot_gateway, "CREDENTIALS_RECHECK_S", 0.0)
    monkeypatch.setattr(hubspot_credentials, "TOKEN_RECHECK_S", 0.0)
    caplog.set_level(logging.DEBUG)
    sandbox_app = create_hubspot_sandbox(tokens={"unused-static-token": 1}, app_id=APP_ID, **sandbox_kwargs())
    sandbox = sandbox_of(sandbox_app)
    sandbox.oauth.update({"install_portal": OAUTH_PORTAL})
    transport = httpx.ASGITransport(app=sandbox_app)
    settings = oauth_settings(
        database,
        run_worker=True,
        worker_poll_interval_s=0.05,
        hubspot_portal_id=None,  # no env portal: the install makes the connection
        hubspot_app_id=APP_ID,
        hubspot_rate_limit_per_10s=1000,
        dispatch_retry_base_s=0.05,
        hubspot_retry_base_s=0.05,
    )
    secrets: set[str] = set()
    answers: list[str] = []
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://hubspot.test") as hs,
        running_app(settings, hubspot_transport=transport) as client,
    ):
        # Install: the portal is connected to the env Zoom account at once.
        page = await install(client, hs)
        assert page.status_code == 200, page.text
        answers.append(page.text)
        secrets |= issued(sandbox)
        r = await client.patch(
            f"/api/v1/portals/{OAUTH_PORTAL}/settings", headers=ADMIN, json={"webinar_sync_enabled": True}
        )
        assert r.status_code == 200, r.text
        first = await status(client)
        assert first["portals"][str(OAUTH_PORTAL)]["auth_mode"] == "oauth"
        assert first["portals"][str(OAUTH_PORTAL)]["needs_reinstall"] is False

        # A webinar syncs.
        await deliver(client, registrations("85000000101", "ann@example.com"))
        done = await wait_all_done(client)
        assert done["failed"] == 0
        assert "ann@example.com" in contact_emails(sandbox)

        # HubSpot's clock passes the token's life: the next call gets a 401, the token is refreshed
        # once and the sync goes on.
        sandbox.oauth.advance(3600)
        await deliver(client, registrations("85000000102", "bob@example.com"))
        done = await wait_all_done(client)
        assert done["failed"] == 0
        assert "bob@example.com" in contact_emails(sandbox)
        assert sandbox.oauth.snapshot()["requests"]["refresh_token /oauth/2026-03/token"] == 1
        secrets |= issued(sandbox)

        # Uninstalled; half an hour later the token runs out and its refresh is refused.
        sandbox.oauth.uninstall(OAUTH_PORTAL)
        with unit_of_work(database.engine) as session:
            session.execute(
                update(HubSpotPortal)
                .where(col(HubSpotPortal.portal_id) == OAUTH_PORTAL)
                .values(access_expires_at=utcnow() - timedelta(minutes=1))
            )
        await deliver(client, registrations("85000000103", "carol@example.com"))
        parked_status = await wait_needs_reinstall(client)
        portal = parked_status["portals"][str(OAUTH_PORTAL)]
        assert portal["auth_mode"] == "oauth"
        assert "install the app again" in portal["reinstall_reason"]
        assert "timeline_backend" in portal
        answers.append(str(parked_status))
        # More work while parked: it waits too.
        await deliver(client, registrations("85000000104", "dave@example.com"))
        await asyncio.sleep(0.5)  # a few worker rounds
        parked = pending_ops(database)
        assert parked, "the new work should be waiting"
        assert [op.attempts for op in parked] == [0] * len(parked)
        after = await status(client)
        assert after["failed"] == 0 and after["outbox"]["failed"] == 0
        assert "carol@example.com" not in contact_emails(sandbox)
        refused = sandbox.oauth.snapshot()["refused"]
        assert refused == {"BAD_REFRESH_TOKEN": 1}  # asked once; the parked portal is not asked again

        # Re-installed: the parked work completes at once.
        page = await install(client, hs)
        assert page.status_code == 200, page.text
        answers.append(page.text)
        secrets |= issued(sandbox)
        done = await wait_all_done(client)
        assert done["failed"] == 0
        assert {"carol@example.com", "dave@example.com"} <= contact_emails(sandbox)
        portal = done["portals"][str(OAUTH_PORTAL)]
        assert (portal["needs_reinstall"], portal["reinstall_reason"]) == (False, None)
        answers.append(str(done))
        with unit_of_work(database.engine) as session:
            row = session.get(HubSpotPortal, OAUTH_PORTAL)
            assert row is not None and row.token_version == 3  # install, refresh, re-install

    secrets |= {CLIENT_SECRET, APP_SECRET_KEY}
    assert len(secrets) >= 6
    for text in answers:
        assert not any(secret in text for secret in secrets)
    logged = capsys.readouterr().err + "\n".join(
        f"{record.getMessage()} {record.__dict__}" for record in caplog.records
    )
    assert "HubSpot access token refreshed" in logged  # the logs were captured
    leaked = [secret for secret in secrets if secret in logged]
    assert leaked == []
