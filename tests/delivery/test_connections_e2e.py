"""Several connections at once (issue 14 §3, CONTRACT.md §7): two Zoom accounts and three portals,
connected through the admin API (no env connection), webhooks of both accounts played at the same
time. Each portal gets exactly the contacts of its Zoom account(s), and never more requests in any
10 s window than its own budget."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from typing import Any

import httpx
import pytest

from app.sandbox.hubspot import create_hubspot_sandbox, sandbox_of
from app.sandbox.zoom_state import ZoomSandbox
from tests.fixtures.databases import Database
from tests.fixtures.e2e import APP_ID, Harness, harness, zoom_sandbox_app
from tests.fixtures.service import ADMIN

pytestmark = pytest.mark.anyio

SECRET_KEY = "several-connections-test-key"
ACCOUNT_A, ACCOUNT_B = "acct_alpha", "acct_bravo"
ZOOM_APPS = {ACCOUNT_A: ("client-alpha", "secret-alpha"), ACCOUNT_B: ("client-bravo", "secret-bravo")}
PORTAL_1, PORTAL_2, PORTAL_3 = 6101, 6102, 6103
TOKENS = {"tok-p1": PORTAL_1, "tok-p2": PORTAL_2, "tok-p3": PORTAL_3}
# (Zoom account, portal, its HubSpot token, its budget per 10 s): A reaches portals 1 and 3, B portal 2.
CONNECTIONS = [
    (ACCOUNT_A, PORTAL_1, "tok-p1", 6),
    (ACCOUNT_B, PORTAL_2, "tok-p2", 14),
    (ACCOUNT_A, PORTAL_3, "tok-p3", 9),
]
WINDOW_S = 10.0


class RecordingTransport(httpx.AsyncBaseTransport):
    """Every request to the HubSpot sandbox, with the time it was sent and the portal of its token."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.sent: dict[int, list[float]] = defaultdict(list)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        portal = TOKENS.get(token)
        if portal is not None:
            self.sent[portal].append(time.monotonic())
        return await self.inner.handle_async_request(request)


def max_in_any_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


async def play_webinar(zoom: ZoomSandbox, account: str, emails: list[str]) -> str:
    created = await zoom.create_webinar(account_id=account, topic=f"Webinar of {account}", emit=True)
    wid = str(created.result["id"])
    for email in emails:
        await zoom.register(wid, email, email.split("@")[0].title(), "Guest")
    return wid


def contact_emails(h: Harness, portal_id: int) -> set[str]:
    contacts = h.hubspot.portal(portal_id).snapshot()["contacts"]
    return {str(c["properties"]["email"]) for c in contacts if c["properties"].get("email")}


async def test_two_accounts_three_portals_apart_and_within_budgets(database: Database) -> None:
    hubspot_app = create_hubspot_sandbox(tokens=TOKENS, app_id=APP_ID, rate_limit=1000)
    for portal_id in TOKENS.values():
        sandbox_of(hubspot_app).portal(portal_id).users.clear()
    recorder = RecordingTransport(httpx.ASGITransport(app=hubspot_app))
    zoom_app = zoom_sandbox_app(accounts=ZOOM_APPS)
    async with harness(
        database,
        zoom_app=zoom_app,
        hubspot_app=hubspot_app,
        hubspot_transport=recorder,
        # No env connection: every connection comes from the admin API.
        zoom_account_id=None,
        hubspot_portal_id=None,
        hubspot_access_token=None,
        zoom_client_id=None,
        zoom_client_secret=None,
        app_secret_key=SECRET_KEY,
    ) as h:
        for account, portal_id, token, budget in CONNECTIONS:
            client_id, secret = ZOOM_APPS[account]
            body: dict[str, Any] = {
                "zoom_account_id": account,
                "hubspot_portal_id": portal_id,
                "zoom_client_id": client_id,
                "zoom_client_secret": secret,
                "hubspot_access_token": token,
                "hubspot_rate_limit_per_10s": budget,
            }
            r = await h.client.post("/api/v1/connections", json=body, headers=ADMIN)
            assert r.status_code == 201, r.text
            r = await h.client.patch(
                f"/api/v1/portals/{portal_id}/settings", json={"webinar_sync_enabled": True}, headers=ADMIN
            )
            assert r.status_code == 200, r.text
        listed = (await h.client.get("/api/v1/connections", headers=ADMIN)).json()
        assert [c["source"] for c in listed] == ["api"] * 3

        emails_a = [f"a{n}@alpha.example" for n in range(12)]
        emails_b = [f"b{n}@bravo.example" for n in range(12)]
        # Both accounts' webhooks at the same time.
        await asyncio.gather(
            play_webinar(h.zoom, ACCOUNT_A, emails_a), play_webinar(h.zoom, ACCOUNT_B, emails_b)
        )
        await h.wait_done(timeout_s=180)

        assert contact_emails(h, PORTAL_1) == set(emails_a)
        assert contact_emails(h, PORTAL_3) == set(emails_a)  # one account, two portals: both get it
        assert contact_emails(h, PORTAL_2) == set(emails_b)  # nothing of account A reaches portal 2

    for _, portal_id, _, budget in CONNECTIONS:
        sent = recorder.sent[portal_id]
        # The budget was a real constraint (more requests than one window allows) and was kept.
        assert len(sent) > budget, (portal_id, len(sent))
        assert max_in_any_window(sent, WINDOW_S) <= budget, (portal_id, budget)
