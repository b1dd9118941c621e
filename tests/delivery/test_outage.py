"""With HubSpot down for a while nothing is lost, and everything lands once it is back.

The in-process sandbox answers every API call with 503 while `down`. The service takes the webhooks,
processes them and plans the HubSpot work as usual, keeps that work pending (not failed) while
HubSpot is unreachable, and delivers all of it after HubSpot returns: what lands is exactly what a
run without any outage lands.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from tests.fixtures.databases import Database, truncate_all
from tests.fixtures.delivery import (
    WEBINAR,
    build,
    delivery_settings,
    run_scenario,
    seed,
    seeded_sandbox,
    wait_all_done,
)
from tests.fixtures.hubspot_views import hubspot_view
from tests.fixtures.scenarios import deliver, wait_inbox_idle
from tests.fixtures.service import ADMIN, PORTAL_ID, AppClient, running_app

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

OUTAGE_S = 3.0  # how long HubSpot stays down after the work is planned
RECOVERY_TIMEOUT_S = 45.0


def landed(state: dict[str, Any]) -> dict[str, Any]:
    """Everything the sandbox holds for the portal and the app (not its faults or statistics)."""
    return {k: v for k, v in state.items() if k not in ("stats", "global_stats", "faults")}


async def sandbox_state(hs: httpx.AsyncClient) -> dict[str, Any]:
    r = await hs.get("/_sandbox/state", params={"portal": PORTAL_ID})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def set_down(hs: httpx.AsyncClient, down: bool) -> None:
    r = await hs.post("/_sandbox/faults", json={"down": down})
    assert r.status_code < 300, r.text
    assert r.json()["down"] is down


async def status(client: httpx.AsyncClient) -> dict[str, Any]:
    r = await client.get("/api/v1/status", headers=ADMIN)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def held_back(client: AppClient) -> list[tuple[str, int, str | None]]:
    """(kind, attempts, last error) of the pending outbox operations."""
    engine = client.app.state.app_state.engine
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT kind, attempts, last_error FROM outbox_op WHERE state = 'pending'"
        ).all()
    return [(str(kind), int(attempts), last_error) for kind, attempts, last_error in rows]


async def stays_down(client: AppClient, outage: str) -> None:
    """Keep HubSpot down: a few seconds (the client's own retries of one call outlast it), or until
    the gateway's set-up failed outright and the planned work was put back, waiting with the reason
    recorded (no attempt counted: an outage must not push the work into a long backoff)."""
    if outage == "brief":
        await asyncio.sleep(OUTAGE_S)
        return
    deadline = time.monotonic() + 30.0
    while not any(error and "set-up incomplete" in error for _, _, error in held_back(client)):
        assert time.monotonic() < deadline, f"no dispatch attempt recorded: {held_back(client)[:5]}"
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("outage", ["brief", "long"])
async def test_outage_loses_nothing_and_everything_lands_after_it(database: Database, outage: str) -> None:
    clean = hubspot_view((await run_scenario(database, build().envelopes))["state"])
    truncate_all(database.engine)

    sandbox_app = seeded_sandbox()
    transport = httpx.ASGITransport(app=sandbox_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hubspot.test") as hs:
        await seed(hs)
        before = landed(await sandbox_state(hs))
        await set_down(hs, True)
        async with running_app(delivery_settings(database), hubspot_transport=transport) as client:
            r = await client.patch(
                f"/api/v1/portals/{PORTAL_ID}/settings",
                headers=ADMIN,
                json={"webinar_sync_enabled": True, "contact_exclusion_domains": ["excluded.example"]},
            )
            assert r.status_code == 200, r.text
            await deliver(client, build().envelopes)  # Zoom's side does not depend on HubSpot
            await wait_inbox_idle(client)

            # HubSpot stays down: the service keeps trying, and nothing lands.
            deadline = time.monotonic() + 10.0
            while (await sandbox_state(hs))["stats"]["faults"] == 0:
                assert time.monotonic() < deadline, "the service never tried to reach HubSpot"
                await asyncio.sleep(0.05)
            await stays_down(client, outage)
            during = await sandbox_state(hs)
            assert during["stats"]["faults"] >= 1
            assert landed(during) == before, "something reached HubSpot while it was down"
            mid = await status(client)
            assert mid["pending"] > 0, mid
            assert mid["failed"] == 0 and mid["dead"] == 0, mid
            assert mid["inbox"]["pending"] == 0 and mid["outbox"]["pending"] > 0, mid
            if outage == "long":
                held = held_back(client)
                errors = {error for _, _, error in held if error}
                assert errors and all("set-up incomplete" in e for e in errors), errors
                assert all(attempts == 0 for _, attempts, _ in held), held

            # HubSpot returns: everything that was held back goes through.
            await set_down(hs, False)
            back_at = time.monotonic()
            final = await wait_all_done(client, timeout_s=RECOVERY_TIMEOUT_S)
            recovery_s = time.monotonic() - back_at
            assert final["failed"] == 0 and final["dead"] == 0, final
            audit = (
                await client.get(f"/api/v1/portals/{PORTAL_ID}/webinars/{WEBINAR}/audit-log", headers=ADMIN)
            ).json()
        after = await sandbox_state(hs)

    assert hubspot_view(after) == clean
    codes = {a["code"]: a for a in audit}
    assert codes["hubspot_synced"]["status"] == "success", audit
    assert not [a for a in audit if a["status"] == "error"], audit
    print(f"\n[{database.kind}, {outage} outage] everything landed {recovery_s:.1f}s after HubSpot came back")
