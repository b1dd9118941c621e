"""Backfill (CLI path with resumption, API path) and replay idempotence, against both sandboxes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from rich.console import Console
from sqlalchemy import text

from app.pull import commands
from app.pull.commands import backfill, replay
from app.pull.jobs import JobRunner
from app.sandbox.zoom_state import ZoomSandbox
from tests.fixtures.databases import Database
from tests.fixtures.e2e import Harness, harness, zoom_sandbox_app
from tests.fixtures.hubspot_views import hubspot_view
from tests.fixtures.service import ADMIN, PORTAL_ID
from tests.fixtures.webinar_play import always, play

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
DAY = timedelta(days=1)
BASE = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


async def past_webinar(zoom: ZoomSandbox, start: datetime, people: list[str]) -> str:
    """A webinar that happened while the service heard nothing of it (no webhook arrived)."""
    created = await zoom.create_webinar(topic=f"Past {start:%b %d}", start_time=start, emit=False)
    wid = str(created.result["id"])
    ids = []
    for email in people:
        reg = await zoom.register(wid, email, email.split("@")[0].title(), "Past", at=start - DAY, emit=False)
        ids.append(reg.result["id"])
    await zoom.start(wid, at=start, emit=False)
    for registrant_id in ids:
        await zoom.join(wid, registrant_id=registrant_id, at=start + timedelta(minutes=2), emit=False)
    await zoom.end(wid, at=start + timedelta(minutes=45), emit=False)
    return wid


def quiet() -> Console:
    return Console(file=open("/dev/null", "w"), force_terminal=False)


async def test_backfill_resumes_after_an_interruption(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    zoom_app = zoom_sandbox_app()
    async with harness(database, zoom_app=zoom_app, reconcile_delay_s=0) as h:
        await h.settings_patch(webinar_sync_enabled=True)
        inside = [
            await past_webinar(h.zoom, BASE + i * DAY, [f"p{i}a@example.com", f"p{i}b@example.com"])
            for i in range(3)
        ]
        outside = await past_webinar(h.zoom, BASE + 40 * DAY, ["late@example.com"])
        settings = h.app.state.app_state.settings
        transport = httpx.ASGITransport(app=zoom_app)
        real_run = JobRunner.run_job
        calls = {"n": 0}
        cli_task = asyncio.current_task()

        async def interrupted(self: JobRunner, job: Any) -> bool:
            # Ctrl-C lands in the command's own task only: the app's background job loop runs jobs
            # too, and a KeyboardInterrupt raised in one of its tasks would stop the event loop (and
            # with it this test process) instead of reaching the `pytest.raises` below.
            if asyncio.current_task() is cli_task:
                calls["n"] += 1
                if calls["n"] == 2:
                    raise KeyboardInterrupt
            return await real_run(self, job)

        monkeypatch.setattr(JobRunner, "run_job", interrupted)
        with pytest.raises(KeyboardInterrupt):
            await backfill(
                settings, database.engine, "2026-03-01", "2026-03-10", None, quiet(), transport=transport
            )
        monkeypatch.setattr(JobRunner, "run_job", real_run)
        summary = await backfill(
            settings, database.engine, "2026-03-01", "2026-03-10", None, quiet(), transport=transport
        )
        assert summary.resumed and summary.webinars == 3
        # The first run finished one webinar before Ctrl-C. The app's own job loop may finish one of
        # the queued items before the command is run again: each webinar is pulled exactly once.
        assert summary.already_done >= 1 and summary.failed == 0, summary
        assert summary.already_done + summary.pulled == 3, summary
        await h.wait_done()
        for i in range(3):
            for who in "ab":
                contact = h.contact(f"p{i}{who}@example.com")
                assert contact is not None and contact["zoom_webinar_attendance_count"] == "1", (
                    i,
                    who,
                    contact,
                )
        assert h.contact("late@example.com") is None  # outside the range
        with database.engine.connect() as conn:
            items = conn.execute(
                text("SELECT webinar_id, state FROM sync_job WHERE kind='backfill_item'")
            ).all()
            parent = conn.execute(text("SELECT state, counts FROM sync_job WHERE kind='backfill'")).one()
        assert sorted(items) == sorted((wid, "done") for wid in inside)
        assert outside not in {wid for wid, _ in items}
        assert parent[0] == "done"
        # Once finished, the same range again is a new backfill that finds everything done locally.
        again = await backfill(
            settings, database.engine, "2026-03-01", "2026-03-10", None, quiet(), transport=transport
        )
        assert not again.resumed and again.pulled == 3


async def test_backfill_through_the_api(database: Database) -> None:
    async with harness(database, reconcile_delay_s=0) as h:
        await h.settings_patch(webinar_sync_enabled=True)
        await past_webinar(h.zoom, BASE, ["api1@example.com"])
        await past_webinar(h.zoom, BASE + DAY, ["api2@example.com"])
        r = await h.client.post(
            f"/api/v1/portals/{PORTAL_ID}/backfill",
            headers=ADMIN,
            json={"from": "2026-03-01", "to": "2026-03-31"},
        )
        assert r.status_code == 202, r.text
        job_id = r.json()["job_id"]
        await h.wait_done()
        job = (await h.client.get(f"/api/v1/portals/{PORTAL_ID}/sync-jobs/{job_id}", headers=ADMIN)).json()
        assert job["state"] == "done", job
        assert job["counts"] == {"webinars": 2, "done": 2, "failed": 0, "remaining": 0}
        assert h.contact("api1@example.com") is not None and h.contact("api2@example.com") is not None
        bad = await h.client.post(
            f"/api/v1/portals/{PORTAL_ID}/backfill",
            headers=ADMIN,
            json={"from": "2026-03-31", "to": "2026-03-01"},
        )
        assert bad.status_code == 422


def hubspot_snapshot(h: Harness) -> dict[str, Any]:
    state = h.portal_state()
    state["event_templates"] = [{"id": t.id, "name": t.name} for t in h.hubspot.templates.values()]
    return {
        "view": hubspot_view(state),
        "timeline": len(state["timeline_events"]),
        "contacts": len(state["contacts"]),
    }


async def test_replay_converges_on_the_same_hubspot_state(database: Database) -> None:
    async with harness(database, reconcile_delay_s=0) as h:
        await h.settings_patch(webinar_sync_enabled=True)
        wid = await play(h.zoom, always)
        await h.wait_done()
        before = hubspot_snapshot(h)
        assert replay(database.engine, wid) > 10
        await h.wait_done()
        assert hubspot_snapshot(h) == before
        assert replay(database.engine, wid) > 10  # and again
        await h.wait_done()
        assert hubspot_snapshot(h) == before


def test_replay_command_refuses_bad_input(database: Database, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.fixtures.service import make_settings

    settings = make_settings(database)
    assert commands.run_replay_command("not-a-number", settings=settings) == 2
    assert commands.run_replay_command("12345", settings=settings) == 1  # nothing stored for it
