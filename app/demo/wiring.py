"""The process wiring: the service app between both in-process sandboxes, with the sandboxes mounted
for browsing and the scenario started once the service is up."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from app.config import Settings
from app.demo.run import DemoRun
from app.demo.scenario import play
from app.demo.settings import (
    ACCOUNT_ID,
    HUBSPOT_APP_ID,
    HUBSPOT_MOUNT,
    HUBSPOT_TOKEN,
    PORTAL_ID,
    URL_ENV,
    ZOOM_CLIENT_ID,
    ZOOM_CLIENT_SECRET,
    ZOOM_MOUNT,
    ZOOM_URL,
    ZOOM_WEBHOOK_SECRET,
    demo_settings,
    fresh_sqlite,
    real_settings_set,
)
from app.main import create_app
from app.sandbox.hubspot import create_hubspot_sandbox, sandbox_of
from app.sandbox.zoom import create_zoom_sandbox, zoom_sandbox_of

# The name the demo's log lines had before the module became a package.
log = logging.getLogger("app.demo")


class _Prefixed:
    """A sandbox app served under a prefix: it sees its own paths (``/_sandbox/state``, which its
    request gate recognises) while ``root_path`` keeps its OpenAPI docs pointing at the prefix."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        root, path = scope.get("root_path", ""), scope.get("path", "")
        if scope["type"] in ("http", "websocket") and root and path.startswith(root):
            scope = {**scope, "path": path[len(root) :] or "/"}
        await self.app(scope, receive, send)


def create_demo_app(
    base: Settings | None = None, *, base_url: str | None = None, print_summary: bool = True
) -> FastAPI:
    """The service between both sandboxes, with the demo scenario started in the background.

    ``base`` gives the database location, the admin token and the operational knobs (default: the
    environment); the demo sets the Zoom and HubSpot side itself. ``base_url`` is where the server is
    reached, for the printed commands (default ``$ZOOM_HUBSPOT_DEMO_URL``, else ``PUBLIC_BASE_URL``).
    """
    base = base or Settings()
    real = real_settings_set(base)
    log.warning(
        "DEMO MODE: Zoom and HubSpot are in-process sandboxes, open without auth under %s and %s; "
        "nothing reaches a real account, and the demo database is made afresh at every start%s",
        HUBSPOT_MOUNT,
        ZOOM_MOUNT,
        f" (ignoring the configured {', '.join(real)})" if real else "",
    )
    url = (base_url or os.environ.get(URL_ENV) or base.public_base_url).rstrip("/")
    token = base.admin_api_token.get_secret_value() if base.admin_api_token else secrets.token_urlsafe(24)
    settings = demo_settings(base, token, url)
    fresh_sqlite(settings.database_url)

    hubspot_app = create_hubspot_sandbox(tokens={HUBSPOT_TOKEN: PORTAL_ID}, app_id=HUBSPOT_APP_ID)
    zoom_app = create_zoom_sandbox(
        accounts={ACCOUNT_ID: (ZOOM_CLIENT_ID, ZOOM_CLIENT_SECRET)},
        public_url=ZOOM_URL,
        webhook_secret=ZOOM_WEBHOOK_SECRET,
    )
    hubspot_transport = httpx.ASGITransport(app=hubspot_app)
    zoom_transport = httpx.ASGITransport(app=zoom_app)
    app = create_app(settings, hubspot_transport=hubspot_transport, zoom_transport=zoom_transport)
    app.mount(HUBSPOT_MOUNT, _Prefixed(hubspot_app), name="hubspot-sandbox")
    app.mount(ZOOM_MOUNT, _Prefixed(zoom_app), name="zoom-sandbox")
    run = DemoRun(
        settings=settings,
        base_url=url,
        hubspot=sandbox_of(hubspot_app),
        zoom=zoom_sandbox_of(zoom_app),
        hubspot_app=hubspot_app,
        zoom_app=zoom_app,
        print_summary=print_summary,
    )
    app.state.demo = run
    service_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(service: FastAPI) -> AsyncIterator[Any]:
        async with service_lifespan(service) as state:
            run.done = asyncio.Event()
            run.zoom.set_webhook_target(app=service, secret=ZOOM_WEBHOOK_SECRET)
            run.task = asyncio.create_task(play(service, run), name="demo scenario")
            try:
                yield state
            finally:
                run.task.cancel()
                await asyncio.gather(run.task, return_exceptions=True)
                await run.zoom.aclose()

    app.router.lifespan_context = lifespan
    return app
