"""`ensure_hubspot_setup` against the HubSpot sandbox (in-process), on SQLite and PostgreSQL, and the
`setup` CLI command against the sandbox served by uvicorn in its own process."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from app.db import make_engine, unit_of_work
from app.integrations.hubspot import (
    EventTemplate,
    EventTemplateToken,
    HubSpotClient,
    InProcessRateLimiter,
    PropertyDefinition,
    PropertyGroup,
)
from app.integrations.hubspot.setup import ensure_hubspot_setup
from app.integrations.hubspot.setup_properties import CONTACT_PROPERTIES, PROPERTY_GROUP
from app.integrations.hubspot.setup_report import ItemKind, ItemStatus, SetupReport
from app.integrations.hubspot.setup_store import store_created, stored_template_ids, stored_timeline_backend
from app.integrations.hubspot.setup_templates import (
    EVENT_TEMPLATES,
    TEMPLATE_ATTENDANCE,
    TEMPLATE_RECORDABLE_EVENT,
    TEMPLATE_REGISTRATION,
    TEMPLATE_TOKENS,
    encode_tokens,
)
from app.migrations import upgrade_to_head
from app.models import AuthMode, HubSpotPortal, HubSpotSetupItem, TimelineBackend
from app.sandbox.hubspot import create_hubspot_sandbox, sandbox_of
from tests.fixtures.databases import Database

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
BASE = "http://hubspot.test"
TOKEN = "tok"
PORTAL = 5151
APP_ID = "1001"

# CONTRACT §4, written out here rather than taken from the module under test.
CONTRACT_PROPERTIES = {
    "zoom_webinar_average_attendance_percent": "number",
    "zoom_last_registered_webinar_url": "string",
    "zoom_webinar_registration_count": "number",
    "zoom_webinar_attendance_count": "number",
}
CONTRACT_TEMPLATES = {
    "Zoom webinar registration": ["webinar_id", "webinar_name"],
    "Zoom webinar attendance": [
        "webinar_id",
        "webinar_name",
        "webinar_date",
        "join_time",
        "leave_time",
        "attendance_duration_seconds",
        "attendance_percent",
    ],
    "Zoom: recordable event": ["topic", "start_time", "recording_url"],
}

GROUP_CREATE = "POST /crm/v3/properties/contacts/groups"
PROPERTY_CREATE = "POST /crm/v3/properties/contacts"
TEMPLATE_CREATE = "POST /integrators/timeline/v3/{app_id}/event-templates"
TEMPLATE_LIST = "GET /integrators/timeline/v3/{app_id}/event-templates"


# --- fixtures and helpers -------------------------------------------------------------------------


@pytest.fixture
def sandbox() -> FastAPI:
    return create_hubspot_sandbox(tokens={TOKEN: PORTAL}, app_id=APP_ID)


@pytest.fixture
async def http(sandbox: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sandbox), base_url=BASE) as client:
        yield client


def make_client(http: httpx.AsyncClient, token: str = TOKEN) -> HubSpotClient:
    async def no_sleep(_: float) -> None:
        return None

    return HubSpotClient(
        http,
        base_url=BASE,
        access_token=token,
        portal_id=PORTAL,
        rate_limiter=InProcessRateLimiter(100),
        sleep=no_sleep,
    )


@pytest.fixture
def hubspot(http: httpx.AsyncClient) -> HubSpotClient:
    return make_client(http)


def creates(sandbox: FastAPI) -> dict[str, int]:
    requests = sandbox_of(sandbox).stats.requests
    return {key: requests[key] for key in (GROUP_CREATE, PROPERTY_CREATE, TEMPLATE_CREATE)}


async def sandbox_state(http: httpx.AsyncClient) -> dict[str, Any]:
    response = await http.get("/_sandbox/state", params={"portal": PORTAL})
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def stored_rows(database: Database, scope: str) -> dict[str, str]:
    # SQLModel's types declare no __table__ on table models (it exists at runtime).
    table = HubSpotSetupItem.__table__  # type: ignore[attr-defined]
    with unit_of_work(database.engine) as session:
        rows = session.execute(select(table.c.name, table.c.external_id).where(table.c.scope == scope)).all()
    return dict(rows)


async def run(hubspot: HubSpotClient, database: Database, app_id: str | None = APP_ID) -> SetupReport:
    return await ensure_hubspot_setup(hubspot, database.engine, portal_id=PORTAL, app_id=app_id)


def statuses(report: SetupReport) -> dict[str, ItemStatus]:
    return {item.name: item.status for item in report.items}


# --- the constants --------------------------------------------------------------------------------


def test_constants_match_the_contract() -> None:
    assert PROPERTY_GROUP == "zoom_webinars"
    assert {p.name: p.type for p in CONTACT_PROPERTIES} == CONTRACT_PROPERTIES
    assert all(p.group_name == "zoom_webinars" for p in CONTACT_PROPERTIES)
    # A 0-100 value must not use HubSpot's fraction-based percentage display.
    assert all(p.number_display_hint != "percentage" for p in CONTACT_PROPERTIES)
    assert {t.name: [tok.name for tok in t.tokens] for t in EVENT_TEMPLATES} == CONTRACT_TEMPLATES
    assert {name: [s.name for s in specs] for name, specs in TEMPLATE_TOKENS.items()} == CONTRACT_TEMPLATES
    for template in EVENT_TEMPLATES:
        assert template.object_type == "contacts"
        shown = (template.header_template or "") + (template.detail_template or "")
        assert template.header_template and template.detail_template
        for token in template.tokens:  # every token is shown somewhere
            assert token.name in shown, (template.name, token.name)


def test_encode_tokens() -> None:
    start = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    tokens = encode_tokens(
        TEMPLATE_ATTENDANCE,
        {
            "webinar_id": "81234567890",
            "webinar_name": "Launch",
            "webinar_date": start,
            "join_time": start.astimezone(timezone(timedelta(hours=2))) + timedelta(minutes=5),
            "leave_time": None,
            "attendance_duration_seconds": 1799.6,
            "attendance_percent": 87.54,
        },
    )
    assert tokens == {
        "webinar_id": "81234567890",
        "webinar_name": "Launch",
        "webinar_date": 1714557600000,
        "join_time": 1714557900000,
        "attendance_duration_seconds": 1800,
        "attendance_percent": 87.5,
    }
    with pytest.raises(ValueError, match="email"):
        encode_tokens(TEMPLATE_REGISTRATION, {"webinar_id": "1", "email": "a@b.com"})
    with pytest.raises(TypeError):
        encode_tokens(TEMPLATE_RECORDABLE_EVENT, {"start_time": datetime(2024, 5, 1, 10, 0)})  # naive
    with pytest.raises(TypeError):
        encode_tokens(TEMPLATE_ATTENDANCE, {"attendance_percent": "87.5"})


# --- ensure_hubspot_setup against the sandbox -----------------------------------------------------


async def test_first_run_creates_everything(
    database: Database, hubspot: HubSpotClient, http: httpx.AsyncClient, sandbox: FastAPI
) -> None:
    report = await run(hubspot, database)

    assert report.ok and not report.problems and not report.skipped
    assert len(report.created) == 1 + 4 + 3 and not report.found
    assert creates(sandbox) == {GROUP_CREATE: 1, PROPERTY_CREATE: 4, TEMPLATE_CREATE: 3}

    state = await sandbox_state(http)
    groups = {g["name"]: g for g in state["property_groups"]}
    assert groups["zoom_webinars"]["label"] == "Zoom webinars"
    properties = {p["name"]: p for p in state["properties"]}
    assert {name: p["type"] for name, p in properties.items()} == CONTRACT_PROPERTIES
    for prop in properties.values():
        assert prop["groupName"] == "zoom_webinars"
        assert prop["fieldType"] == ("number" if prop["type"] == "number" else "text")
        assert prop["label"] and prop["description"]
    templates = {t["name"]: t for t in state["event_templates"]}
    assert {name: [tok["name"] for tok in t["tokens"]] for name, t in templates.items()} == CONTRACT_TEMPLATES
    for template in templates.values():
        assert template["objectType"] == "contacts"
        assert "{{" in template["headerTemplate"] and "{{" in template["detailTemplate"]
    attendance = {tok["name"]: tok["type"] for tok in templates["Zoom webinar attendance"]["tokens"]}
    assert attendance == {
        "webinar_id": "string",
        "webinar_name": "string",
        "webinar_date": "date",
        "join_time": "date",
        "leave_time": "date",
        "attendance_duration_seconds": "number",
        "attendance_percent": "number",
    }

    template_ids = {name: t["id"] for name, t in templates.items()}
    assert stored_template_ids(database.engine, APP_ID) == template_ids
    assert report.template_ids == template_ids
    assert stored_rows(database, f"portal:{PORTAL}") == {
        name: name for name in ("zoom_webinars", *CONTRACT_PROPERTIES)
    }


async def test_second_run_creates_nothing(
    database: Database, hubspot: HubSpotClient, http: httpx.AsyncClient, sandbox: FastAPI
) -> None:
    first = await run(hubspot, database)
    ids = stored_template_ids(database.engine, APP_ID)
    before = creates(sandbox)

    second = await run(hubspot, database)

    assert creates(sandbox) == before
    assert second.ok and not second.created
    assert len(second.found) == 8
    assert {item.name: item.external_id for item in second.items} == {
        item.name: item.external_id for item in first.items
    }
    assert stored_template_ids(database.engine, APP_ID) == ids
    state = await sandbox_state(http)
    assert len(state["event_templates"]) == 3
    assert len(state["properties"]) == 4


async def test_existing_items_are_found_not_recreated(
    database: Database, hubspot: HubSpotClient, sandbox: FastAPI
) -> None:
    await hubspot.create_property_group(PropertyGroup(name="zoom_webinars", label="Zoom (ours)"))
    await hubspot.create_contact_property(
        PropertyDefinition(
            name="zoom_webinar_attendance_count",
            label="Attendances",
            type="number",
            field_type="number",
            group_name="zoom_webinars",
        )
    )
    registration = await hubspot.create_event_template(
        APP_ID,
        EventTemplate(
            name="Zoom webinar registration",
            header_template="Registered: {{webinar_name}}",
            tokens=[
                EventTemplateToken(name="webinar_id", label="Id", type="string"),
                EventTemplateToken(name="webinar_name", label="Name", type="string"),
                EventTemplateToken(name="source", label="Source", type="string"),  # extra is fine
            ],
        ),
    )
    assert creates(sandbox) == {GROUP_CREATE: 1, PROPERTY_CREATE: 1, TEMPLATE_CREATE: 1}

    report = await run(hubspot, database)

    assert report.ok
    assert creates(sandbox) == {GROUP_CREATE: 1, PROPERTY_CREATE: 4, TEMPLATE_CREATE: 3}
    by_name = {item.name: item for item in report.items}
    assert by_name["zoom_webinars"].status is ItemStatus.FOUND
    assert "Zoom (ours)" in (by_name["zoom_webinars"].detail or "")  # left as is, but said
    assert by_name["zoom_webinar_attendance_count"].status is ItemStatus.FOUND
    assert by_name["Zoom webinar registration"].status is ItemStatus.FOUND
    assert by_name["Zoom webinar registration"].external_id == registration.id
    assert len(report.created) == 5
    assert stored_template_ids(database.engine, APP_ID)["Zoom webinar registration"] == registration.id


async def test_incompatible_existing_items_are_reported_not_changed(
    database: Database, hubspot: HubSpotClient, http: httpx.AsyncClient, sandbox: FastAPI
) -> None:
    await hubspot.create_contact_property(
        PropertyDefinition(
            name="zoom_webinar_registration_count",
            label="Registrations (text)",
            type="string",
            field_type="text",
            group_name="contactinformation",
        )
    )
    await hubspot.create_event_template(
        APP_ID,
        EventTemplate(
            name="Zoom webinar attendance",
            tokens=[
                EventTemplateToken(name="webinar_id", label="Id", type="number"),
                EventTemplateToken(name="webinar_name", label="Name", type="string"),
            ],
        ),
    )

    report = await run(hubspot, database)

    assert not report.ok
    problems = {item.name: item for item in report.problems}
    assert set(problems) == {"zoom_webinar_registration_count", "Zoom webinar attendance"}
    assert problems["zoom_webinar_registration_count"].kind is ItemKind.CONTACT_PROPERTY
    assert "'string'" in (problems["zoom_webinar_registration_count"].detail or "")
    template_problem = problems["Zoom webinar attendance"].detail or ""
    assert "join_time" in template_problem and "webinar_id" in template_problem
    # Everything else was set up; nothing existing was touched or duplicated.
    assert {item.name for item in report.created} == {
        "zoom_webinars",
        "zoom_webinar_average_attendance_percent",
        "zoom_last_registered_webinar_url",
        "zoom_webinar_attendance_count",
        "Zoom webinar registration",
        "Zoom: recordable event",
    }
    state = await sandbox_state(http)
    existing = next(p for p in state["properties"] if p["name"] == "zoom_webinar_registration_count")
    assert (existing["type"], existing["groupName"]) == ("string", "contactinformation")
    assert len(state["event_templates"]) == 3
    # Unusable items are not recorded as usable.
    assert "zoom_webinar_registration_count" not in stored_rows(database, f"portal:{PORTAL}")
    assert "Zoom webinar attendance" not in stored_template_ids(database.engine, APP_ID)
    assert "problem" in report.render().lower()


async def test_without_app_id_templates_are_skipped(
    database: Database, hubspot: HubSpotClient, http: httpx.AsyncClient, sandbox: FastAPI
) -> None:
    report = await run(hubspot, database, app_id=None)

    assert report.ok and report.templates_skipped
    skipped = report.skipped
    assert {item.name for item in skipped} == set(CONTRACT_TEMPLATES)
    assert all(item.kind is ItemKind.EVENT_TEMPLATE for item in skipped)
    assert "HUBSPOT_APP_ID" in (skipped[0].detail or "")
    # Without an app id there are no classic templates: activities are written as notes (CONTRACT §4.2).
    assert "Timeline activities: notes" in report.render()
    assert report.timeline_backend is TimelineBackend.NOTES
    assert stored_timeline_backend(database.engine, PORTAL) is TimelineBackend.NOTES
    assert len(report.created) == 5
    requests = sandbox_of(sandbox).stats.requests
    assert requests[TEMPLATE_LIST] == 0 and requests[TEMPLATE_CREATE] == 0
    assert (await sandbox_state(http))["event_templates"] == []
    assert stored_template_ids(database.engine, APP_ID) == {}


async def test_unknown_app_is_a_problem(database: Database, hubspot: HubSpotClient) -> None:
    report = await run(hubspot, database, app_id="777")

    assert not report.ok
    assert {item.name for item in report.problems} == set(CONTRACT_TEMPLATES)
    assert all("777" in (item.detail or "") for item in report.problems)
    assert len(report.created) == 5  # the portal's properties are set up regardless


async def test_invalid_token_is_reported_not_raised(
    database: Database, http: httpx.AsyncClient, sandbox: FastAPI
) -> None:
    report = await run(make_client(http, token="not-a-token"), database)

    assert not report.ok
    assert len(report.problems) == 8
    assert all("401" in (item.detail or "") for item in report.problems)
    assert creates(sandbox) == {GROUP_CREATE: 0, PROPERTY_CREATE: 0, TEMPLATE_CREATE: 0}
    # The portal section stops at the first authentication failure instead of trying every item.
    assert sandbox_of(sandbox).stats.requests["GET /crm/v3/properties/contacts/{name}"] == 0
    assert stored_rows(database, f"portal:{PORTAL}") == {}


async def test_concurrent_runs_leave_one_of_each(
    database: Database, hubspot: HubSpotClient, http: httpx.AsyncClient
) -> None:
    first, second = await asyncio.gather(run(hubspot, database), run(hubspot, database))

    assert first.ok and second.ok, (first.render(), second.render())
    for name in ("zoom_webinars", *CONTRACT_PROPERTIES, *CONTRACT_TEMPLATES):
        outcomes = sorted([statuses(first)[name], statuses(second)[name]])
        assert outcomes == [ItemStatus.CREATED, ItemStatus.FOUND], name
    state = await sandbox_state(http)
    assert [g["name"] for g in state["property_groups"]].count("zoom_webinars") == 1
    assert sorted(p["name"] for p in state["properties"]) == sorted(CONTRACT_PROPERTIES)
    assert sorted(t["name"] for t in state["event_templates"]) == sorted(CONTRACT_TEMPLATES)
    template_ids = {t["name"]: t["id"] for t in state["event_templates"]}
    assert stored_template_ids(database.engine, APP_ID) == template_ids
    assert first.template_ids == second.template_ids == template_ids
    assert len(stored_rows(database, f"portal:{PORTAL}")) == 5


async def test_stale_stored_template_id_is_replaced(database: Database, hubspot: HubSpotClient) -> None:
    store_created(database.engine, f"app:{APP_ID}", "Zoom webinar registration", "999", None)

    report = await run(hubspot, database)

    created = next(item for item in report.items if item.name == "Zoom webinar registration")
    assert created.status is ItemStatus.CREATED and created.external_id != "999"
    assert stored_template_ids(database.engine, APP_ID)["Zoom webinar registration"] == created.external_id


def test_store_created_keeps_the_first_writer(database: Database) -> None:
    scope, name = "app:42", "Zoom webinar attendance"
    assert store_created(database.engine, scope, name, "100", None) == "100"
    # A concurrent run that created its own template loses: everyone uses the first id.
    assert store_created(database.engine, scope, name, "200", None) == "100"
    # Only the stale id seen before creating is replaced.
    assert store_created(database.engine, scope, name, "300", "555") == "100"
    assert store_created(database.engine, scope, name, "300", "100") == "300"
    assert stored_template_ids(database.engine, "42") == {name: "300"}


# --- the `setup` command --------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def sandbox_server() -> Iterator[str]:
    """The sandbox in its own process (`python -m app.sandbox.hubspot PORT --token tok=PORTAL`)."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.sandbox.hubspot", str(port), "--token", f"{TOKEN}={PORTAL}"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"sandbox exited: {proc.stderr.read().decode() if proc.stderr else ''}")
            try:
                if httpx.get(f"{base}/_sandbox/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("sandbox did not start within 30 s")
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def live_sandbox(sandbox_server: str) -> str:
    assert httpx.post(f"{sandbox_server}/_sandbox/reset", timeout=5).status_code == 200
    return sandbox_server


def _migrated_sqlite(path: Path) -> str:
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    upgrade_to_head(engine, url)
    engine.dispose()
    return url


def _run_cli(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("HUBSPOT_", "ZOOM_", "DATABASE_URL", "ADMIN_API_TOKEN"))
    }
    clean["PYTHONPATH"] = str(ROOT)
    clean.update(env)
    # cwd is an empty directory, so no `.env` file can add settings.
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "setup"],
        cwd=tmp_path,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_cli_setup_against_sandbox_process(live_sandbox: str, tmp_path: Path) -> None:
    url = _migrated_sqlite(tmp_path / "cli.db")
    env = {
        "HUBSPOT_API_BASE_URL": live_sandbox,
        "HUBSPOT_ACCESS_TOKEN": TOKEN,
        "HUBSPOT_PORTAL_ID": str(PORTAL),
        "HUBSPOT_APP_ID": APP_ID,
        "DATABASE_URL": url,
    }

    first = _run_cli(tmp_path, **env)

    assert first.returncode == 0, first.stdout + first.stderr
    assert "Created (8)" in first.stdout
    for name in ("zoom_webinars", *CONTRACT_PROPERTIES, *CONTRACT_TEMPLATES):
        assert name in first.stdout
    state = httpx.get(f"{live_sandbox}/_sandbox/state", params={"portal": PORTAL}, timeout=5).json()
    assert sorted(t["name"] for t in state["event_templates"]) == sorted(CONTRACT_TEMPLATES)
    engine = make_engine(url)
    try:
        assert stored_template_ids(engine, APP_ID) == {t["name"]: t["id"] for t in state["event_templates"]}
    finally:
        engine.dispose()

    second = _run_cli(tmp_path, **env)

    assert second.returncode == 0, second.stdout + second.stderr
    assert "Created (0)" in second.stdout and "Already there (8)" in second.stdout
    again = httpx.get(f"{live_sandbox}/_sandbox/state", params={"portal": PORTAL}, timeout=5).json()
    assert again["stats"]["requests"].get(PROPERTY_CREATE) == 4


@pytest.mark.slow
def test_cli_setup_exits_non_zero_on_problems(live_sandbox: str, tmp_path: Path) -> None:
    result = _run_cli(
        tmp_path,
        HUBSPOT_API_BASE_URL=live_sandbox,
        HUBSPOT_ACCESS_TOKEN=TOKEN,
        HUBSPOT_PORTAL_ID=str(PORTAL),
        HUBSPOT_APP_ID="777",  # not the sandbox's app
        DATABASE_URL=_migrated_sqlite(tmp_path / "cli.db"),
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Problems (3)" in result.stdout


@pytest.mark.slow
def test_cli_setup_without_app_id_warns(live_sandbox: str, tmp_path: Path) -> None:
    result = _run_cli(
        tmp_path,
        HUBSPOT_API_BASE_URL=live_sandbox,
        HUBSPOT_ACCESS_TOKEN=TOKEN,
        HUBSPOT_PORTAL_ID=str(PORTAL),
        DATABASE_URL=_migrated_sqlite(tmp_path / "cli.db"),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Skipped (3)" in result.stdout
    assert "HUBSPOT_APP_ID" in result.stderr


@pytest.mark.slow
def test_cli_setup_missing_credentials(tmp_path: Path) -> None:
    url = _migrated_sqlite(tmp_path / "cli.db")

    no_token = _run_cli(tmp_path, HUBSPOT_PORTAL_ID=str(PORTAL), DATABASE_URL=url)
    assert no_token.returncode == 2
    assert "HUBSPOT_ACCESS_TOKEN is not set" in no_token.stderr
    assert "HUBSPOT_PORTAL_ID" not in no_token.stderr

    no_portal = _run_cli(tmp_path, HUBSPOT_ACCESS_TOKEN=TOKEN, DATABASE_URL=url)
    assert no_portal.returncode == 2
    assert "HUBSPOT_PORTAL_ID is not set" in no_portal.stderr

    bad_portal = _run_cli(tmp_path, HUBSPOT_ACCESS_TOKEN=TOKEN, HUBSPOT_PORTAL_ID="abc", DATABASE_URL=url)
    assert bad_portal.returncode == 2
    assert "HUBSPOT_PORTAL_ID is invalid" in bad_portal.stderr
    assert "Traceback" not in bad_portal.stderr


@pytest.mark.slow
def test_cli_setup_refuses_a_schema_that_is_behind(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    result = _run_cli(
        tmp_path,
        HUBSPOT_ACCESS_TOKEN=TOKEN,
        HUBSPOT_PORTAL_ID=str(PORTAL),
        DATABASE_URL=f"sqlite:///{empty}",
    )
    assert result.returncode == 2
    assert "alembic upgrade head" in result.stderr
    # Nothing was migrated.
    engine = make_engine(f"sqlite:///{empty}")
    try:
        with engine.connect() as conn:
            tables = conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type='table'").all()
        assert tables == []
    finally:
        engine.dispose()


# --- the timeline writer (CONTRACT §4.2) ------------------------------------------------------------

EVENT_TYPES = {"registration": "zoom_reg", "attendance": "zoom_att", "recording": "zoom_rec"}


async def run_timeline(
    hubspot: HubSpotClient, database: Database, backend: str = "auto", *, event_types: bool = False
) -> SetupReport:
    return await ensure_hubspot_setup(
        hubspot,
        database.engine,
        portal_id=PORTAL,
        app_id=APP_ID,
        timeline_backend=backend,
        app_event_types=EVENT_TYPES if event_types else None,
    )


def oauth_portal(database: Database) -> None:
    with unit_of_work(database.engine) as session:
        session.add(
            HubSpotPortal(
                portal_id=PORTAL, auth_mode=AuthMode.OAUTH, access_token="sealed", refresh_token="r"
            )
        )


async def test_auto_with_templates_refused_for_a_new_app_writes_notes_and_is_not_blocked(
    database: Database, hubspot: HubSpotClient, sandbox: FastAPI
) -> None:
    sandbox_of(sandbox).activities.classic_closed = True

    report = await run_timeline(hubspot, database)

    assert report.ok, report.render()  # delivery is not held back: notes go instead
    assert report.timeline_backend is TimelineBackend.NOTES
    templates = [item for item in report.items if item.kind is ItemKind.EVENT_TEMPLATE]
    assert {item.status for item in templates} == {ItemStatus.SKIPPED}
    assert all("403" in (item.detail or "") and "note" in (item.detail or "") for item in templates)
    assert "Timeline activities: notes (HubSpot refused classic timeline templates" in report.render()
    assert stored_timeline_backend(database.engine, PORTAL) is TimelineBackend.NOTES
    assert creates(sandbox)[TEMPLATE_CREATE] == 1  # the first refusal stops the section
    assert sandbox_of(sandbox).templates == {}


async def test_forced_classic_refused_for_a_new_app_is_a_problem(
    database: Database, hubspot: HubSpotClient, sandbox: FastAPI
) -> None:
    sandbox_of(sandbox).activities.classic_closed = True

    report = await run_timeline(hubspot, database, "classic")

    assert not report.ok
    assert report.timeline_backend is TimelineBackend.CLASSIC
    kinds = {item.kind for item in report.problems}
    assert kinds == {ItemKind.EVENT_TEMPLATE, ItemKind.TIMELINE}
    [timeline] = [item for item in report.problems if item.kind is ItemKind.TIMELINE]
    assert "HUBSPOT_TIMELINE_BACKEND=classic cannot work" in (timeline.detail or "")


async def test_the_closed_flag_spares_an_app_that_already_has_templates(
    database: Database, hubspot: HubSpotClient, sandbox: FastAPI
) -> None:
    assert (await run_timeline(hubspot, database)).timeline_backend is TimelineBackend.CLASSIC
    sandbox_of(sandbox).activities.classic_closed = True

    again = await run_timeline(hubspot, database)

    assert again.ok and again.timeline_backend is TimelineBackend.CLASSIC
    assert {item.status for item in again.items if item.kind is ItemKind.EVENT_TEMPLATE} == {ItemStatus.FOUND}


async def test_auto_picks_app_events_for_an_oauth_portal_and_keeps_its_tokens(
    database: Database, hubspot: HubSpotClient, sandbox: FastAPI
) -> None:
    oauth_portal(database)

    report = await run_timeline(hubspot, database, event_types=True)

    assert report.ok and report.timeline_backend is TimelineBackend.APP_EVENTS
    assert sandbox_of(sandbox).stats.requests[TEMPLATE_LIST] == 0  # no classic templates asked for
    with unit_of_work(database.engine) as session:
        row = session.get(HubSpotPortal, PORTAL)
        assert row is not None
        assert (row.timeline_backend, row.auth_mode) == (TimelineBackend.APP_EVENTS, AuthMode.OAUTH)
        assert (row.access_token, row.refresh_token) == ("sealed", "r")  # only the one column changed


async def test_forced_app_events_on_a_static_portal_is_a_problem(
    database: Database, hubspot: HubSpotClient, sandbox: FastAPI
) -> None:
    report = await run_timeline(hubspot, database, "app_events", event_types=True)

    assert not report.ok
    [problem] = report.problems
    assert problem.kind is ItemKind.TIMELINE and "static" in (problem.detail or "")
    assert stored_timeline_backend(database.engine, PORTAL) is TimelineBackend.APP_EVENTS
    assert sandbox_of(sandbox).stats.requests[TEMPLATE_LIST] == 0


@pytest.mark.parametrize("backend", ["notes", "off"])
async def test_forced_notes_or_off_is_stored_and_shown(
    database: Database, hubspot: HubSpotClient, sandbox: FastAPI, backend: str
) -> None:
    report = await run_timeline(hubspot, database, backend)

    assert report.ok and report.timeline_backend is TimelineBackend(backend)
    assert f"Timeline activities: {backend} (HUBSPOT_TIMELINE_BACKEND={backend}" in report.render()
    assert stored_timeline_backend(database.engine, PORTAL) is TimelineBackend(backend)
    assert sandbox_of(sandbox).stats.requests[TEMPLATE_LIST] == 0
