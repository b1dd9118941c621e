"""The one-command demo (issue 7, item 5): the demo app run headless, in-process, and its outcome checked
in the HubSpot sandbox, the admin API and the printed summary; plus when `serve` picks the demo."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from typer.testing import CliRunner

from app import cli as cli_module
from app.config import Settings
from app.demo import (
    ACCOUNT_ID,
    PORTAL_ID,
    TOPIC,
    ZOOM_WEBHOOK_SECRET,
    DemoRun,
    create_demo_app,
    demo_database_url,
    demo_of,
    demo_wanted,
)
from app.integrations.hubspot.setup import TEMPLATE_RECORDABLE_EVENT
from app.main import create_app
from app.sandbox.zoom_webhooks import make_delivery

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

TOKEN = "demo-test-admin-token"
BASE_URL = "http://127.0.0.1:8123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CREDENTIALS = ("HUBSPOT_ACCESS_TOKEN", "ZOOM_ACCOUNT_ID", "ZOOM_CLIENT_ID", "ZOOM_CLIENT_SECRET")
EXCLUDED = {
    ("alex@northwind-agency.example", "hubspot_user"),
    ("sam@ourco.example", "excluded_domain"),
    ("g.hopper@alumni.example", "secondary_email"),
    ("old.lead@example.com", "deleted_contact"),
    ("jane..doe@example.com", "invalid_email"),
    (None, "no_email"),
}
# email: (registrations, attendances, average attendance %)
EXPECTED_CONTACTS = {
    "ann@example.com": ("1", "1", 90.0),  # 1..55 of 60 minutes
    "bob@example.com": ("1", "1", 80.0),  # 2..20 and 30..60: rejoined
    "cara@example.com": ("0", "0", None),  # cancelled
    "dan@example.com": ("1", "0", None),  # no-show
}


def base_settings(tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None, database_url=f"sqlite:///{tmp_path / 'zoom_hubspot.db'}", admin_api_token=TOKEN
    )


@asynccontextmanager
async def demo(tmp_path: Path) -> AsyncIterator[tuple[DemoRun, httpx.AsyncClient]]:
    """The demo app with its lifespan, until its scenario finished; a client to the service."""
    app = create_demo_app(base_settings(tmp_path), base_url=BASE_URL)
    async with app.router.lifespan_context(app):
        run = demo_of(app)
        await asyncio.wait_for(run.done.wait(), timeout=45)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL, headers=AUTH) as client:
            yield run, client


def by_email(state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["properties"]["email"]: c for c in state["contacts"]}


async def test_the_demo_plays_a_webinar_into_hubspot_and_prints_where_to_look(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with demo(tmp_path) as (run, client):
        assert run.error is None, run.error
        wid = run.webinar_id
        assert wid is not None
        status = (await client.get("/api/v1/status")).json()
        assert (status["pending"], status["failed"], status["dead"]) == (0, 0, 0), status

        # What landed in HubSpot, read through the mounted sandbox like a newcomer would.
        r = await client.get("/sandbox/hubspot/_sandbox/state", params={"portal": PORTAL_ID})
        assert r.status_code == 200, r.text
        state = r.json()
        contacts = by_email(state)
        live = {e for e, c in contacts.items() if not c.get("archived")}
        assert live == {*EXPECTED_CONTACTS, "grace@example.com"}  # no excluded email became a contact
        assert contacts["old.lead@example.com"]["archived"] is True  # R4: not re-created
        registration_url = run.zoom.webinar(wid).registration_url
        for email, (registrations, attendances, average) in EXPECTED_CONTACTS.items():
            props = contacts[email]["properties"]
            assert props["zoom_webinar_registration_count"] == registrations, (email, props)
            assert props["zoom_webinar_attendance_count"] == attendances, (email, props)
            if average is None:
                assert not props.get("zoom_webinar_average_attendance_percent"), (email, props)
            else:
                assert float(props["zoom_webinar_average_attendance_percent"]) == pytest.approx(average)
            assert props["zoom_last_registered_webinar_url"] == registration_url
        grace = contacts["grace@example.com"]["properties"]  # R3: her secondary email registered
        assert not any(k.startswith("zoom_") and v for k, v in grace.items()), grace

        ids = {email: c["id"] for email, c in contacts.items()}
        templates = {t["id"]: t["name"] for t in state["event_templates"]}
        events: dict[str, set[str]] = {}
        for e in state["timeline_events"]:
            events.setdefault(templates[e["eventTemplateId"]], set()).add(e["objectId"])
        attendees = {ids["ann@example.com"], ids["bob@example.com"]}
        assert events["Zoom webinar registration"] >= {
            ids["ann@example.com"],
            ids["bob@example.com"],
            ids["dan@example.com"],
        }
        assert events["Zoom webinar registration"] <= {ids[e] for e in EXPECTED_CONTACTS}
        assert events["Zoom webinar attendance"] == attendees
        assert events[TEMPLATE_RECORDABLE_EVENT] == attendees

        [marketing] = state["marketing_events"]
        assert (marketing["externalAccountId"], marketing["externalEventId"]) == (ACCOUNT_ID, wid)
        assert marketing["eventCompleted"] is True
        states = {cid: a["state"] for cid, a in marketing["attendance"].items()}
        assert states == {
            ids["ann@example.com"]: "attend",
            ids["bob@example.com"]: "attend",
            ids["cara@example.com"]: "cancel",
            ids["dan@example.com"]: "register",
        }

        [call] = state["calls"]
        assert f"Welcome everyone to {TOPIC}." in call["properties"]["hs_call_body"]
        assert call["properties"]["hs_call_title"] == TOPIC
        assert {a["id"] for a in call["associations"]["contacts"]["results"]} == attendees

        # The audit log and the excluded-email list (A1, A3).
        webinar = f"/api/v1/portals/{PORTAL_ID}/webinars/{wid}"
        audit = (await client.get(f"{webinar}/audit-log")).json()
        by_code = {a["code"]: a for a in audit}
        assert by_code["emails_excluded"]["details"]["counts"] == {
            "hubspot_user": 1,
            "excluded_domain": 1,
            "secondary_email": 1,
            "deleted_contact": 1,
            "invalid_email": 1,
        }
        assert by_code["participants_not_synced"]["details"]["counts"] == {"no_email": 1}
        assert by_code["recording_synced"]["status"] == "success"
        assert by_code["transcript_synced"]["status"] == "success"
        assert not [a for a in audit if a["status"] == "error"], audit
        excluded = (await client.get(f"{webinar}/excluded-emails")).json()
        assert {(e["email"], e["reason"]) for e in excluded} == EXCLUDED

        # The Zoom sandbox is browsable too, and every webhook it sent was accepted.
        r = await client.get(f"/sandbox/zoom/_sandbox/webinars/{wid}")
        assert r.status_code == 200 and r.json()["status"] == "ended", r.text
        assert (await client.get("/sandbox/hubspot/_sandbox/docs")).status_code == 200
        assert run.zoom.deliveries and all(d.ok for d in run.zoom.deliveries)

    # The summary, printed once everything was done.
    summary = run.summary
    assert summary is not None
    assert summary in capsys.readouterr().err
    auth = f"curl -H 'Authorization: Bearer {TOKEN}' {BASE_URL}"
    for line in (
        f"{auth}/api/v1/status",
        f"{auth}/api/v1/portals/{PORTAL_ID}/webinars",
        f"{auth}/api/v1/portals/{PORTAL_ID}/webinars/{wid}/audit-log",
        f"{auth}/api/v1/portals/{PORTAL_ID}/webinars/{wid}/excluded-emails",
        f"curl '{BASE_URL}/sandbox/hubspot/_sandbox/state?portal={PORTAL_ID}'",
        f"{BASE_URL}/docs",
    ):
        assert line in summary, line
    normalized = " ".join(summary.split())
    for fragment in (
        "ann@example.com 1 1 90.0%",
        "bob@example.com 1 1 80.0%",
        "2 x Zoom webinar attendance, 4 x Zoom webinar registration, 2 x Zoom: recordable event",
        "cara@example.com cancel",
        "deleted_contact 1, excluded_domain 1, hubspot_user 1, invalid_email 1, secondary_email 1",
        "(guest, no email) no_email",
        "(pending 0, failed 0)",
    ):
        assert fragment in normalized, fragment


async def test_the_demo_starts_afresh_and_leaves_the_real_database_alone(tmp_path: Path) -> None:
    for _ in range(2):
        async with demo(tmp_path) as (run, _client):
            assert run.error is None, run.error
            contacts = by_email(run.hubspot.snapshot(PORTAL_ID))
            assert contacts["ann@example.com"]["properties"]["zoom_webinar_registration_count"] == "1"
    assert (tmp_path / "zoom_hubspot-demo.db").exists()
    assert not (tmp_path / "zoom_hubspot.db").exists()


def test_demo_wanted_only_without_credentials_on_sqlite(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*CREDENTIALS, "ZOOM_HUBSPOT_DEMO"):
        monkeypatch.delenv(name, raising=False)

    def settings(**values: Any) -> Settings:
        return Settings(_env_file=None, **values)

    assert demo_wanted(settings())
    assert not demo_wanted(settings(database_url="postgresql+psycopg://u@h/db"))
    assert not demo_wanted(settings(hubspot_access_token="pat-real"))
    assert not demo_wanted(settings(zoom_account_id="acct"))
    assert not demo_wanted(settings(zoom_client_id="id"))
    assert not demo_wanted(settings(zoom_client_secret="secret"))
    # A half-way set-up (a webhook secret and a portal, no token yet) is a real one: never the demo.
    half_way = {
        "zoom_webhook_secret_token": "zoom-secret",
        "admin_api_token": "admin",
        "hubspot_portal_id": 123,
        "hubspot_client_secret": "hs-secret",
    }
    assert not demo_wanted(settings(**half_way))
    for name in ("zoom_webhook_secret_token", "hubspot_portal_id", "hubspot_client_secret", "hubspot_app_id"):
        assert not demo_wanted(settings(**{name: 7 if name == "hubspot_portal_id" else "x"})), name
    assert demo_wanted(settings(admin_api_token="admin"))  # the demo uses the admin token
    monkeypatch.setenv("ZOOM_HUBSPOT_DEMO", "1")  # asked for explicitly
    assert demo_wanted(settings(**half_way))
    monkeypatch.setenv("ZOOM_HUBSPOT_DEMO", "0")
    assert not demo_wanted(settings())
    assert demo_database_url("sqlite:///./data/zoom_hubspot.db") == "sqlite:///data/zoom_hubspot-demo.db"
    assert demo_database_url("sqlite://") == "sqlite:///./data/zoom_hubspot-demo.db"


@pytest.mark.parametrize("credentials", [False, True])
def test_serve_runs_the_demo_without_credentials(
    credentials: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in (*CREDENTIALS, "ZOOM_HUBSPOT_DEMO", "ADMIN_API_TOKEN", "ZOOM_HUBSPOT_DEMO_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'data' / 'zoom_hubspot.db'}")
    if credentials:
        monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", "pat-real")
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: calls.append((a, kw)))
    result = CliRunner().invoke(cli_module.cli, ["serve", "--port", "8123"])
    assert result.exit_code == 0, result.output
    [(args, kwargs)] = calls
    token = (tmp_path / "data" / "admin-token").read_text().strip()
    assert token in result.output
    if credentials:
        assert args == ("app.main:app",)
        assert "demo mode" not in result.output
    else:
        assert args == ("app.demo:create_demo_app",) and kwargs["factory"] is True
        assert "DEMO MODE: no Zoom or HubSpot setting is configured" in result.output
        assert "WITHOUT AUTH" in result.output
        assert os.environ["ZOOM_HUBSPOT_DEMO_URL"] == "http://127.0.0.1:8123"


async def test_a_half_way_setup_runs_the_plain_service_with_no_sandbox_routes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The set-up seen half-way (webhook secret, admin token, portal, client secret; no HubSpot token
    or Zoom OAuth yet): `serve` starts the real service, on the configured database, where the
    configured Zoom secret verifies deliveries and no sandbox route exists."""
    monkeypatch.chdir(tmp_path)
    for name in (*CREDENTIALS, "ZOOM_HUBSPOT_DEMO", "ZOOM_HUBSPOT_DEMO_URL"):
        monkeypatch.delenv(name, raising=False)
    database = f"sqlite:///{tmp_path / 'data' / 'zoom_hubspot.db'}"
    env = {
        "DATABASE_URL": database,
        "ZOOM_WEBHOOK_SECRET_TOKEN": "configured-zoom-secret",
        "ADMIN_API_TOKEN": "configured-admin-token",
        "HUBSPOT_PORTAL_ID": "4242",
        "HUBSPOT_CLIENT_SECRET": "configured-hs-secret",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: calls.append(a))
    result = CliRunner().invoke(cli_module.cli, ["serve", "--port", "8124"])
    assert result.exit_code == 0, result.output
    assert calls == [("app.main:app",)]
    assert "DEMO MODE" not in result.output and "demo mode" not in result.output

    app = create_app(Settings(_env_file=None, auto_migrate=True, run_worker=False))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            for path in (
                "/sandbox/hubspot/_sandbox/state",
                "/sandbox/zoom/_sandbox/faults",
                "/sandbox/hubspot/",
            ):
                assert (await client.get(path)).status_code == 404, path
                assert (await client.post(path, json={"down": True})).status_code in (404, 405), path
            envelope = {
                "event": "webinar.created",
                "event_ts": 1,
                "payload": {"account_id": "a", "object": {"id": 81000000001}},
            }
            signed = make_delivery("configured-zoom-secret", envelope)
            r = await client.post("/webhooks/zoom", content=signed.body, headers=signed.headers)
            assert r.status_code == 200, r.text
            demo_signed = make_delivery(ZOOM_WEBHOOK_SECRET, envelope)
            r = await client.post("/webhooks/zoom", content=demo_signed.body, headers=demo_signed.headers)
            assert r.status_code == 401, r.text
    assert (tmp_path / "data" / "zoom_hubspot.db").exists()
    assert not (tmp_path / "data" / "zoom_hubspot-demo.db").exists()
