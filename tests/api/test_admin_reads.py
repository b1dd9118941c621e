"""Admin GETs only read (CONTRACT.md §3): read-only sessions, no writes, and what they show.

- the audit log is ordered by the `at` it shows (then id), aggregated entries included;
- no GET writes: settings are read with their defaults, aggregated audit entries are left to the
  worker, and a write through a GET's session fails on both databases;
- on SQLite every admin GET answers while another connection holds the write lock;
- a webinar's `sync_state` (off, waiting, syncing, synced, error) with its reason.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session, select

from app.api import deps
from app.db import unit_of_work
from app.models import AuditStatus, Connection, Registration, RegistrationStatus, Webinar
from app.sandbox.zoom_webhooks import WebinarScenario
from app.sync.audit import add_audit_event, refresh_webinar_audit
from app.sync.inbox_processor import InboxProcessor
from tests.fixtures.databases import Database
from tests.fixtures.e2e import harness
from tests.fixtures.scenarios import deliver
from tests.fixtures.service import ACCOUNT_ID, ADMIN, PORTAL_ID, AppClient, make_settings, running_app

pytestmark = pytest.mark.anyio

BASE = f"/api/v1/portals/{PORTAL_ID}"
T0 = datetime(2026, 4, 14, 16, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


def scenario(webinar_id: str, *, host_email: str = "host@hostco.com", seed: int = 3) -> WebinarScenario:
    return WebinarScenario(
        account_id=ACCOUNT_ID,
        webinar_id=webinar_id,
        host_id=f"host{webinar_id[-2:]}",
        host_email=host_email,
        topic=f"Webinar {webinar_id}",
        start=T0,
        seed=seed,
    )


def drain(engine: Engine) -> None:
    """Run the worker until the inbox is idle (its idle round refreshes the aggregated audit)."""
    processor = InboxProcessor(engine)
    for _ in range(100):
        if processor.run_once().claimed == 0:
            return
    raise AssertionError("the inbox never became idle")


@asynccontextmanager
async def service(database: Database) -> AsyncIterator[AppClient]:
    """The app without its background worker: the test decides when the worker runs."""
    async with running_app(make_settings(database, run_worker=False)) as client:
        yield client


async def get(client: httpx.AsyncClient, url: str, **params: Any) -> Any:
    r = await client.get(url, headers=ADMIN, params=params)
    assert r.status_code == 200, (url, r.status_code, r.text)
    return r.json()


async def patch(client: httpx.AsyncClient, url: str, body: Mapping[str, Any]) -> Any:
    r = await client.patch(url, headers=ADMIN, json=body)
    assert r.status_code == 200, (url, r.status_code, r.text)
    return r.json()


async def enable_sync(client: httpx.AsyncClient, **more: Any) -> None:
    await patch(client, f"{BASE}/settings", {"webinar_sync_enabled": True, **more})


def rows(engine: Engine, sql: str) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql)).all()]


def execute(engine: Engine, sql: str, **params: Any) -> None:
    with engine.begin() as conn:
        conn.execute(text(sql), params)


def audit_table(engine: Engine) -> list[tuple[Any, ...]]:
    return rows(
        engine,
        "SELECT id, portal_id, zoom_account_id, webinar_id, at, status, code, message, details, "
        "aggregate_key FROM audit_entry ORDER BY id",
    )


def load_webinar(engine: Engine, webinar_id: str) -> Webinar:
    with Session(engine, expire_on_commit=False) as session:
        return session.exec(select(Webinar).where(Webinar.webinar_id == webinar_id)).one()


def add_registration(engine: Engine, webinar_id: str, email: str) -> None:
    """A registration stored in the local model, as the worker does before it refreshes the audit."""
    with unit_of_work(engine) as session:
        session.add(
            Registration(
                zoom_account_id=ACCOUNT_ID,
                webinar_id=webinar_id,
                registrant_id=f"r-{email}",
                email=email,
                raw_email=email,
                first_name="Late",
                last_name="Comer",
                status=RegistrationStatus.APPROVED,
            )
        )


def add_event_entry(engine: Engine, webinar_id: str, code: str) -> None:
    """A plain (not aggregated) audit entry, the kind Sync now and delivery failures add."""
    with unit_of_work(engine) as session:
        [conn] = session.exec(select(Connection).where(Connection.portal_id == PORTAL_ID)).all()
        add_audit_event(
            session,
            conn,
            webinar_id,
            code=code,
            status=AuditStatus.SUCCESS,
            message=f"{code} happened",
            details={},
        )


def at_id(entries: Iterable[Mapping[str, Any]]) -> list[tuple[datetime, int]]:
    return [(datetime.fromisoformat(e["at"]), int(e["id"])) for e in entries]


# --------------------------------------------------------------------------------------------------
# 1. The audit log is ordered by the `at` it shows, then by id
# --------------------------------------------------------------------------------------------------


async def test_audit_log_is_oldest_first_by_the_at_it_shows(database: Database) -> None:
    wid = "84000000001"
    s = scenario(wid)
    s.created(at=T0 - 7 * 24 * 60 * MIN)
    s.register("ann@example.com", "Ann", "A", at=T0 - 2 * 24 * 60 * MIN)
    async with service(database) as client:
        await enable_sync(client)
        await deliver(client, s.pop_envelopes())
        drain(database.engine)  # the aggregated `webinar_synced` entry: the oldest id
        add_event_entry(database.engine, wid, "zoom_pulled")
        add_event_entry(database.engine, wid, "zoom_pulled_again")
        s.register("bob@example.com", "Bob", "B", at=T0 - 24 * 60 * MIN)
        await deliver(client, s.pop_envelopes())
        drain(database.engine)  # its counts change: its `at` moves past the two events

        entries = await get(client, f"{BASE}/webinars/{wid}/audit-log")
        codes = [e["code"] for e in entries]
        assert codes == ["zoom_pulled", "zoom_pulled_again", "webinar_synced"], entries
        synced = entries[-1]
        assert synced["details"]["registrants"] == 2
        assert synced["id"] < entries[0]["id"]  # older by id, newer by content
        assert at_id(entries) == sorted(at_id(entries))

        # Entries with the same `at` come in id order.
        execute(
            database.engine,
            "UPDATE audit_entry SET at = (SELECT min(at) FROM audit_entry) WHERE code LIKE 'zoom_pulled%'",
        )
        same = await get(client, f"{BASE}/webinars/{wid}/audit-log")
        assert [e["code"] for e in same] == codes
        assert same[0]["at"] == same[1]["at"] and same[0]["id"] < same[1]["id"]

        # Pages (`after_id` = the last entry seen) follow the same order.
        paged: list[dict[str, Any]] = []
        after: dict[str, Any] = {}
        while page := await get(client, f"{BASE}/webinars/{wid}/audit-log", limit=1, **after):
            paged += page
            after = {"after_id": page[-1]["id"]}
        assert paged == same
        assert await get(client, f"{BASE}/webinars/{wid}/audit-log", after_id=0) == same
        r = await client.get(f"{BASE}/webinars/{wid}/audit-log", headers=ADMIN, params={"after_id": 999_999})
        assert r.status_code == 422 and "after_id" in r.text


# --------------------------------------------------------------------------------------------------
# 2. GETs do not write, and read through read-only sessions
# --------------------------------------------------------------------------------------------------


async def test_audit_log_get_leaves_stale_aggregated_counts_to_the_worker(database: Database) -> None:
    wid = "84000000002"
    s = scenario(wid)
    s.created(at=T0 - 7 * 24 * 60 * MIN)
    s.register("ann@example.com", "Ann", "A", at=T0 - 2 * 24 * 60 * MIN)
    async with service(database) as client:
        await enable_sync(client)
        await deliver(client, s.envelopes)
        drain(database.engine)
        add_registration(database.engine, wid, "late@example.com")  # the entry's counts are stale now
        before = audit_table(database.engine)

        entries = await get(client, f"{BASE}/webinars/{wid}/audit-log")
        assert audit_table(database.engine) == before  # the GET wrote nothing
        [synced] = [e for e in entries if e["code"] == "webinar_synced"]
        assert synced["details"]["registrants"] == 1  # as stored: the worker brings it up to date

        # The worker's refresh (after its batches, and once idle) is what updates it.
        with unit_of_work(database.engine) as session:
            refresh_webinar_audit(session, load_webinar(database.engine, wid))
        entries = await get(client, f"{BASE}/webinars/{wid}/audit-log")
        [synced] = [e for e in entries if e["code"] == "webinar_synced"]
        assert synced["details"]["registrants"] == 2


async def test_gets_read_settings_defaults_without_saving_them(database: Database) -> None:
    wid = "84000000003"
    s = scenario(wid)
    s.created(at=T0 - 7 * 24 * 60 * MIN)
    s.register("ann@example.com", "Ann", "A", at=T0 - 2 * 24 * 60 * MIN)
    async with service(database) as client:
        await deliver(client, s.envelopes)
        drain(database.engine)
        execute(database.engine, "DELETE FROM portal_settings")  # a portal whose settings were never saved

        body = await get(client, f"{BASE}/settings")
        assert rows(database.engine, "SELECT count(*) FROM portal_settings") == [(0,)]
        assert body["portal_id"] == PORTAL_ID
        assert (body["global_sync_enabled"], body["webinar_sync_enabled"], body["recording_sync"]) == (
            True,
            False,
            "none",
        )
        assert body["exclusion_domains"] == [] and body["recording_sync_users"] == []
        listed = await get(client, f"{BASE}/webinars")
        detail = await get(client, f"{BASE}/webinars/{wid}")
        await get(client, f"{BASE}/webinars/{wid}/audit-log")
        await get(client, f"{BASE}/zoom-users")
        assert rows(database.engine, "SELECT count(*) FROM portal_settings") == [(0,)]
        assert [w["skip_reason"] for w in listed["items"]] == ["webinar_sync_off"]  # the defaults
        assert detail["skip_reason"] == "webinar_sync_off"

        # The first PATCH saves them.
        await patch(client, f"{BASE}/settings", {"exclusion_domains": ["Example.NET"]})
        assert rows(database.engine, "SELECT portal_id FROM portal_settings") == [(PORTAL_ID,)]
        assert (await get(client, f"{BASE}/settings"))["exclusion_domains"] == ["example.net"]


async def test_a_write_through_a_get_session_fails(database: Database) -> None:
    """Read-only sessions refuse writes on both databases (PostgreSQL: READ ONLY transactions;
    SQLite: query_only), so a GET that writes by mistake fails loudly instead of writing."""
    async with service(database) as client:
        app = client.app

        @app.get("/_test/write-through-read-session")
        def write_read(session: deps.ReadSessionDep) -> None:
            session.execute(text("UPDATE portal_settings SET webinar_sync_enabled = true"))

        with pytest.raises(Exception, match=r"read-?only"):
            await client.get("/_test/write-through-read-session")
        assert (await get(client, f"{BASE}/settings"))["webinar_sync_enabled"] is False
        # Writes keep working through the read-write path.
        await enable_sync(client)
        assert (await get(client, f"{BASE}/settings"))["webinar_sync_enabled"] is True


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_admin_gets_answer_while_another_connection_holds_the_sqlite_write_lock(
    database: Database,
) -> None:
    wid = "84000000004"
    s = scenario(wid)
    s.created(at=T0 - 7 * 24 * 60 * MIN)
    s.register("ann@example.com", "Ann", "A", at=T0 - 2 * 24 * 60 * MIN)
    s.register("not-an-email", "Nobody", at=T0 - 2 * 24 * 60 * MIN)
    async with service(database) as client:
        await enable_sync(client)
        await deliver(client, s.envelopes)
        drain(database.engine)
        urls = [
            f"{BASE}/settings",
            f"{BASE}/zoom-users",
            f"{BASE}/webinars",
            f"{BASE}/webinars/{wid}",
            f"{BASE}/webinars/{wid}/audit-log",
            f"{BASE}/webinars/{wid}/excluded-emails",
            "/api/v1/status",
        ]
        path = make_url(database.url).database
        assert path
        lock = sqlite3.connect(path, isolation_level=None, timeout=0)
        locked = False
        try:
            lock.execute("BEGIN IMMEDIATE")  # the write lock, as a worker batch holds it
            locked = True
            for url in urls:
                request = asyncio.ensure_future(client.get(url, headers=ADMIN))
                await asyncio.wait({request}, timeout=5)
                if not request.done():
                    lock.execute("ROLLBACK")  # let it finish before failing
                    locked = False
                    await request
                    pytest.fail(f"GET {url} waited for the write lock")
                r = request.result()
                assert r.status_code == 200, (url, r.text)
            excluded = await get(client, f"{BASE}/webinars/{wid}/excluded-emails")
            assert [e["reason"] for e in excluded] == ["invalid_email"]
        finally:
            if locked:
                lock.execute("ROLLBACK")
            lock.close()


# --------------------------------------------------------------------------------------------------
# 3. sync_state: off, waiting, syncing, synced, error
# --------------------------------------------------------------------------------------------------


async def sync_state(client: httpx.AsyncClient, wid: str) -> tuple[str, str | None]:
    """(sync_state, sync_state_reason), checked to be the same in the detail and in the list."""
    detail = await get(client, f"{BASE}/webinars/{wid}")
    listed = {w["webinar_id"]: w for w in (await get(client, f"{BASE}/webinars", limit=100))["items"]}
    pair = (detail["sync_state"], detail.get("sync_state_reason"))
    assert (listed[wid]["sync_state"], listed[wid].get("sync_state_reason")) == pair, (detail, listed[wid])
    return pair


async def test_sync_state_off_names_the_skip_reason(database: Database) -> None:
    excluded_host, switched_off = "84000000011", "84000000012"
    unsupported, plain = "84000000013", "84000000014"
    envelopes: list[dict[str, Any]] = []
    for n, (wid, host) in enumerate(
        (
            (excluded_host, "host@excluded.example"),
            (switched_off, "host@hostco.com"),
            (unsupported, "host@hostco.com"),
            (plain, "host@hostco.com"),
        )
    ):
        s = scenario(wid, host_email=host, seed=n)
        created = s.created(at=T0 - 7 * 24 * 60 * MIN)
        if wid == unsupported:
            created["payload"]["object"]["creation_source"] = "zoom_events"
        s.register(f"ann{n}@example.com", "Ann", "A", at=T0 - 2 * 24 * 60 * MIN)
        envelopes += s.envelopes
    async with service(database) as client:
        await deliver(client, envelopes)
        drain(database.engine)
        # Nothing enabled yet: the portal switch is off for every webinar.
        assert await sync_state(client, plain) == ("off", "webinar_sync_off")

        await enable_sync(client, exclusion_domains=["excluded.example"])
        await patch(client, f"{BASE}/webinars/{switched_off}", {"sync_enabled": False})
        drain(database.engine)
        assert await sync_state(client, excluded_host) == ("off", "host_excluded_domain")
        assert await sync_state(client, switched_off) == ("off", "webinar_off")
        assert await sync_state(client, unsupported) == ("off", "unsupported_webinar")
        assert (await sync_state(client, plain))[0] != "off"
        detail = await get(client, f"{BASE}/webinars/{switched_off}")
        assert detail["skip_reason"] == "webinar_off"


async def test_sync_state_syncing_while_events_or_operations_are_pending(database: Database) -> None:
    wid = "84000000021"
    s = scenario(wid)
    s.created(at=T0 - 7 * 24 * 60 * MIN)
    async with service(database) as client:
        await enable_sync(client)
        await deliver(client, s.pop_envelopes())
        drain(database.engine)  # the webinar is known; its marketing event waits to be delivered
        assert await sync_state(client, wid) == ("syncing", None)

        s.register("ann@example.com", "Ann", "A", at=T0 - 2 * 24 * 60 * MIN)
        await deliver(client, s.pop_envelopes())  # a registration received, not processed yet
        execute(database.engine, "UPDATE outbox_op SET state = 'done', done_version = planned_version")
        pending_events = "SELECT webinar_id FROM inbox_event WHERE state = 'pending'"
        assert rows(database.engine, pending_events) == [(wid,)]
        assert await sync_state(client, wid) == ("syncing", None)

        drain(database.engine)  # processed: now its operations for HubSpot are pending
        assert rows(database.engine, "SELECT count(*) FROM inbox_event WHERE state = 'pending'") == [(0,)]
        pending = rows(
            database.engine, f"SELECT kind FROM outbox_op WHERE state = 'pending' AND webinar_id = '{wid}'"
        )
        assert pending, "the registration planned nothing for the webinar"
        assert await sync_state(client, wid) == ("syncing", None)

        # Delivered (as the dispatcher marks them): nothing pending any more.
        execute(database.engine, "UPDATE outbox_op SET state = 'done', done_version = planned_version")
        assert await sync_state(client, wid) == ("synced", None)


async def test_sync_state_waiting_until_people_register(database: Database) -> None:
    async with harness(database) as h:
        await h.settings_patch(webinar_sync_enabled=True)
        start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
        created = await h.zoom.create_webinar(topic="Not yet", start_time=start, duration=60)
        wid = str(created.result["id"])
        await h.wait_done()  # the marketing event is in HubSpot; nobody registered yet
        assert h.portal_state()["marketing_events"], "the webinar itself was not delivered"
        assert await sync_state(h.client, wid) == ("waiting", None)

        await h.zoom.register(wid, "ann@example.com", "Ann", "Early")
        await h.wait_done()
        assert await sync_state(h.client, wid) == ("synced", None)


async def test_sync_state_synced_once_a_finished_webinar_is_delivered(database: Database) -> None:
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    async with harness(database) as h:
        await h.settings_patch(webinar_sync_enabled=True)
        created = await h.zoom.create_webinar(topic="Done", start_time=t0, duration=60, at=t0 - 60 * 24 * MIN)
        wid = str(created.result["id"])
        ann = await h.zoom.register(wid, "ann@example.com", "Ann", "A", at=t0 - 24 * 60 * MIN)
        await h.zoom.register(wid, "bob@example.com", "Bob", "B", at=t0 - 24 * 60 * MIN)
        await h.zoom.start(wid, at=t0)
        joined = await h.zoom.join(wid, registrant_id=ann.result["id"], at=t0 + MIN)
        await h.zoom.leave(wid, user_id=joined.result["user_id"], at=t0 + 50 * MIN)
        await h.zoom.end(wid, at=t0 + 60 * MIN)
        status = await h.wait_done()
        assert status["failed"] == 0 and status["dead"] == 0, status
        detail = await get(h.client, f"{BASE}/webinars/{wid}")
        assert detail["actual_end_at"] is not None and detail["counts"]["attendees"] == 1
        assert await sync_state(h.client, wid) == ("synced", None)

        # A contact refresh belongs to an email, not to a webinar: its failure is not the webinar's.
        execute(database.engine, "UPDATE outbox_op SET state = 'failed' WHERE kind = 'contact_refresh'")
        assert rows(database.engine, "SELECT webinar_id FROM outbox_op WHERE kind = 'contact_refresh'")
        assert await sync_state(h.client, wid) == ("synced", None)


async def test_sync_state_error_when_an_event_of_the_webinar_cannot_be_processed(database: Database) -> None:
    wid = "84000000031"
    s = scenario(wid)
    s.created(at=T0 - 7 * 24 * 60 * MIN)
    s.register("ann@example.com", "Ann", "A", at=T0 - 2 * 24 * 60 * MIN)
    s.register("bob@example.com", "Bob", "B", at=T0 - 2 * 24 * 60 * MIN)
    envelopes = s.envelopes
    del envelopes[-1]["payload"]["object"]["registrant"]  # malformed: it can never be processed
    async with service(database) as client:
        await enable_sync(client)
        await deliver(client, envelopes)
        drain(database.engine)
        assert rows(database.engine, "SELECT state FROM inbox_event WHERE state = 'dead'") == [("dead",)]
        # Its other operations still wait for HubSpot: the error is what a person must see.
        assert await sync_state(client, wid) == ("error", "event_failed")

        execute(database.engine, "UPDATE inbox_event SET state = 'failed' WHERE state = 'dead'")
        assert await sync_state(client, wid) == ("error", "event_failed")
        execute(database.engine, "UPDATE inbox_event SET state = 'done' WHERE state = 'failed'")
        assert await sync_state(client, wid) == ("syncing", None)


async def test_sync_state_error_when_an_operation_of_the_webinar_failed(database: Database) -> None:
    wid, other = "84000000041", "84000000042"
    envelopes: list[dict[str, Any]] = []
    for n, w in enumerate((wid, other)):
        s = scenario(w, seed=10 + n)
        s.created(at=T0 - 7 * 24 * 60 * MIN)
        s.register("ann@example.com", "Ann", "A", at=T0 - 2 * 24 * 60 * MIN)
        envelopes += s.envelopes
    async with service(database) as client:
        await enable_sync(client)
        await deliver(client, envelopes)
        drain(database.engine)
        # Delivered, as the dispatcher marks it; then one operation of `wid` fails for good.
        execute(database.engine, "UPDATE outbox_op SET state = 'done', done_version = planned_version")
        assert await sync_state(client, wid) == ("synced", None)
        execute(
            database.engine,
            "UPDATE outbox_op SET state = 'failed', last_error = 'HTTP 400' "
            "WHERE webinar_id = :w AND kind = 'marketing_state'",
            w=wid,
        )
        assert await sync_state(client, wid) == ("error", "delivery_failed")
        assert await sync_state(client, other) == ("synced", None)  # same email, another webinar
