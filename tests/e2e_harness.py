"""The service between the two sandboxes: Zoom (REST + signed webhooks) and HubSpot, all in-process."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from app.config import Settings
from app.sandbox.hubspot import create_hubspot_sandbox, sandbox_of
from app.sandbox.hubspot_state import HubSpotSandbox
from app.sandbox.zoom import create_zoom_sandbox, zoom_sandbox_of
from app.sandbox.zoom_state import ZoomSandbox
from tests.conftest import ACCOUNT_ID, ADMIN, PORTAL_ID, ZOOM_SECRET, Database, make_settings, running_app

HS_TOKEN = "hs-sandbox-token"
APP_ID = "1001"
HS_CLIENT_SECRET = "hs-client-secret-for-tests"
ZOOM_CLIENT_ID = "zoom-client-id"
ZOOM_CLIENT_SECRET = "zoom-client-secret"
PUBLIC_BASE_URL = "https://sync.example.com"
ACTION_PATH = "/hubspot/actions/add-to-webinar"
HOST_EMAIL = "host@zoom-sandbox.example"


def e2e_settings(db: Database, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "run_worker": True,
        "worker_poll_interval_s": 0.05,
        "hubspot_access_token": HS_TOKEN,
        "hubspot_api_base_url": "http://hubspot.test",
        "hubspot_app_id": APP_ID,
        "hubspot_rate_limit_per_10s": 1000,
        "hubspot_client_secret": HS_CLIENT_SECRET,
        "dispatch_retry_base_s": 0.05,
        "hubspot_retry_base_s": 0.05,
        "zoom_client_id": ZOOM_CLIENT_ID,
        "zoom_client_secret": ZOOM_CLIENT_SECRET,
        "zoom_api_base_url": "http://zoom.test/v2",
        "zoom_oauth_base_url": "http://zoom.test",
        "public_base_url": PUBLIC_BASE_URL,
        # No reconciliation pull unless a test asks for one: a scheduled pull holds attendance
        # events back until it has run.
        "reconcile_delay_s": 0,
    }
    values.update(overrides)
    return make_settings(db, **values)


@dataclass
class Harness:
    client: httpx.AsyncClient  # the service
    zoom: ZoomSandbox
    hubspot: HubSpotSandbox
    zoom_http: httpx.AsyncClient
    hs_http: httpx.AsyncClient

    @property
    def app(self) -> Any:
        return self.client.app  # type: ignore[attr-defined]

    async def settings_patch(self, **values: Any) -> None:
        r = await self.client.patch(f"/api/v1/portals/{PORTAL_ID}/settings", headers=ADMIN, json=values)
        assert r.status_code == 200, r.text

    async def wait_done(self, timeout_s: float = 60.0) -> dict[str, Any]:
        """Until the Zoom sandbox has sent its webhooks and the service has nothing pending."""
        deadline = time.monotonic() + timeout_s
        while True:
            await self.zoom.settle()
            body: dict[str, Any] = (await self.client.get("/api/v1/status", headers=ADMIN)).json()
            if body["pending"] == 0:
                return body
            if time.monotonic() > deadline:
                raise AssertionError(f"work not finished after {timeout_s}s: {body}")
            await asyncio.sleep(0.05)

    def portal_state(self) -> dict[str, Any]:
        snapshot: dict[str, Any] = self.hubspot.portal(PORTAL_ID).snapshot()
        return snapshot

    def contact(self, email: str) -> dict[str, str | None] | None:
        for c in self.portal_state()["contacts"]:
            if c["properties"].get("email") == email:
                props: dict[str, str | None] = c["properties"]
                return props
        return None


def hubspot_sandbox_app(**kwargs: Any) -> Any:
    app = create_hubspot_sandbox(tokens={HS_TOKEN: PORTAL_ID}, app_id=APP_ID, **kwargs)
    sandbox_of(app).portal(PORTAL_ID).users.clear()
    return app


def zoom_sandbox_app(**kwargs: Any) -> Any:
    values: dict[str, Any] = {
        "accounts": {ACCOUNT_ID: (ZOOM_CLIENT_ID, ZOOM_CLIENT_SECRET)},
        "public_url": "http://zoom.test",
        "webhook_secret": ZOOM_SECRET,
    }
    values.update(kwargs)
    return create_zoom_sandbox(**values)


@asynccontextmanager
async def harness(
    db: Database,
    *,
    zoom_app: Any = None,
    hubspot_app: Any = None,
    zoom_kwargs: dict[str, Any] | None = None,
    hubspot_kwargs: dict[str, Any] | None = None,
    **settings_overrides: Any,
) -> AsyncIterator[Harness]:
    """Both sandboxes (made fresh unless given, so a test can restart the service between them)."""
    zoom_app = zoom_app or zoom_sandbox_app(**(zoom_kwargs or {}))
    hubspot_app = hubspot_app or hubspot_sandbox_app(**(hubspot_kwargs or {}))
    zoom_transport = httpx.ASGITransport(app=zoom_app)
    hs_transport = httpx.ASGITransport(app=hubspot_app)
    zoom = zoom_sandbox_of(zoom_app)
    async with (
        httpx.AsyncClient(transport=zoom_transport, base_url="http://zoom.test") as zoom_http,
        httpx.AsyncClient(transport=hs_transport, base_url="http://hubspot.test") as hs_http,
        running_app(
            e2e_settings(db, **settings_overrides),
            hubspot_transport=hs_transport,
            zoom_transport=zoom_transport,
        ) as client,
    ):
        zoom.set_webhook_target(app=client.app, secret=ZOOM_SECRET)  # type: ignore[attr-defined]
        try:
            yield Harness(client, zoom, sandbox_of(hubspot_app), zoom_http, hs_http)
        finally:
            await zoom.settle()
            zoom.set_webhook_target()


# --- the workflow action ---------------------------------------------------------------------------


def action_body(
    callback_id: str,
    webinar_id: Any,
    *,
    email: str | None = "ada@example.com",
    firstname: str | None = "Ada",
    lastname: str | None = "Lovelace",
    business_units: str | None = None,
    portal_id: int = PORTAL_ID,
    object_id: int = 501,
) -> dict[str, Any]:
    props = {"email": email, "firstname": firstname, "lastname": lastname}
    if business_units is not None:
        props["hs_all_assigned_business_unit_ids"] = business_units
    return {
        "callbackId": callback_id,
        "origin": {"portalId": portal_id, "actionDefinitionId": 77, "actionDefinitionVersion": 1},
        "context": {"source": "WORKFLOWS", "workflowId": 9},
        "object": {
            "objectId": object_id,
            "objectType": "CONTACT",
            "properties": {k: v for k, v in props.items() if v is not None},
        },
        "inputFields": {"webinar_id": webinar_id},
    }


def signed_action(
    body: dict[str, Any] | bytes, *, secret: str = HS_CLIENT_SECRET, timestamp_ms: int | None = None
) -> tuple[bytes, dict[str, str]]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    ts = str(timestamp_ms if timestamp_ms is not None else int(time.time() * 1000))
    message = b"POST" + (PUBLIC_BASE_URL + ACTION_PATH).encode() + raw + ts.encode()
    signature = base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()
    return raw, {
        "content-type": "application/json",
        "x-hubspot-signature-v3": signature,
        "x-hubspot-request-timestamp": ts,
    }


async def run_action(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, str]:
    raw, headers = signed_action(body)
    r = await client.post(ACTION_PATH, content=raw, headers=headers)
    assert r.status_code == 200, r.text
    fields: dict[str, str] = r.json()["outputFields"]
    return fields
