"""ASGI entry point: `uvicorn app.main:app`. Nothing connects at import time."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from sqlalchemy.engine import Engine

from app.actions.config import ActionConfig
from app.actions.resources import build_action_resources
from app.actions.service import ActionService
from app.api import (
    admin_connections,
    admin_settings,
    admin_sync,
    admin_webinars,
    health,
    hubspot_actions,
    hubspot_oauth,
    zoom_webhooks,
)
from app.api.request_guard import RequestGuard
from app.api.zoom_webhooks import ZoomWebhookFastPath
from app.bootstrap import ensure_env_connection
from app.config import Settings
from app.db import make_engine
from app.delivery.hubspot_gateway import HubSpotGateway
from app.delivery.zoom_gateway import ZoomGateway
from app.ingest.inbox_writer import InboxWriter
from app.logging_setup import configure_logging
from app.metrics import LatencyMiddleware
from app.migrations import ensure_schema
from app.state import AppState
from app.worker.runner import Background, threadsafe_wake

log = logging.getLogger(__name__)

# Connections of the read-only engine behind the admin GETs (twice this many under load).
READ_POOL_SIZE = 4


def _tune_runtime() -> None:
    """Latency settings for a service that answers webhooks while threads write to the database.

    Everything loaded at start-up (modules, app, engine) is moved out of the garbage collector's
    reach: full collections then scan only new objects, which cut the longest pause from ~160 ms to
    ~20 ms in bench/ingest.py. A shorter GIL switch interval lets the inbox writer thread take the
    GIL back sooner after its database call, so a request waits less for its commit.
    """
    gc.collect()
    gc.freeze()
    sys.setswitchinterval(0.001)


def create_app(
    settings: Settings | None = None,
    *,
    hubspot_transport: httpx.AsyncBaseTransport | None = None,
    zoom_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """The ASGI app. The transports let tests and the demo route HubSpot and Zoom calls to sandboxes."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        cfg = settings or Settings()
        configure_logging(cfg.log_level, cfg.log_format)
        engine = make_engine(cfg.database_url)
        read_engine: Engine | None = None
        try:
            ensure_schema(engine, cfg.database_url, auto_migrate=cfg.should_auto_migrate)
            ensure_env_connection(engine, cfg)
            read_engine = make_engine(cfg.database_url, pool_size=READ_POOL_SIZE, read_only=True)
            writer = InboxWriter(engine)
            writer.start()
            state = AppState(settings=cfg, engine=engine, read_engine=read_engine, inbox_writer=writer)
            app.state.app_state = state
            stop = asyncio.Event()
            zoom = ZoomGateway(cfg, transport=zoom_transport, engine=engine, read_engine=read_engine)
            hubspot = HubSpotGateway(cfg, engine, transport=hubspot_transport) if cfg.run_worker else None
            # The OAuth install's callback stores tokens and runs the set-up: with the worker's gateway
            # when it runs here (its cached clients then see the new tokens at once), else its own.
            install_gateway = hubspot or HubSpotGateway(cfg, engine, transport=hubspot_transport)
            app.state.hubspot_gateway = install_gateway
            wake_worker = asyncio.Event()
            # The action's engines and threads (its own on SQLite), closed after it has drained.
            action_resources = build_action_resources(engine)
            actions = ActionService(
                action_resources,
                config=ActionConfig(sync_budget_s=cfg.action_sync_budget_s),
                zoom_for=lambda account, interactive: zoom.client_for(account, interactive=interactive),
                hubspot_for=hubspot.client_for if hubspot else None,
                on_registered=threadsafe_wake(wake_worker),
            )
            state.action_service = actions
            background: Background | None = None
            if hubspot is not None:
                background = Background(
                    engine, cfg, hubspot, actions, zoom, in_process=True, wake_worker=wake_worker
                )
                background.start(stop)
                state.wake_worker = threadsafe_wake(background.wake_worker)
                state.wake_jobs = threadsafe_wake(background.wake_jobs)
            _tune_runtime()
            try:
                log.info("service started", extra={"worker": cfg.run_worker, "sqlite": cfg.is_sqlite})
                yield
            finally:
                # uvicorn gets here after SIGTERM once in-flight requests are answered (the inbox
                # writer is still running for them until then), so the writer stops last.
                stopping = time.monotonic()
                await actions.drain()
                stop.set()
                if background is not None:
                    await background.wait()  # bounded: see runner.STOP_GRACE_S
                await install_gateway.aclose()  # the worker's own when it runs here
                await zoom.aclose()
                action_resources.close()
                writer.stop()
                log.info("service stopped", extra={"stop_s": round(time.monotonic() - stopping, 2)})
        finally:
            if read_engine is not None:
                read_engine.dispose()
            engine.dispose()

    app = FastAPI(
        title="Zoom webinars → HubSpot sync",
        version="0.1.0",
        lifespan=lifespan,
        description="Syncs Zoom webinar registrations, attendance and recordings into HubSpot.",
    )
    app.add_middleware(LatencyMiddleware)
    app.add_middleware(RequestGuard)  # token and size checks before any body is read
    app.add_middleware(ZoomWebhookFastPath)  # added last = outermost: runs before routing
    app.include_router(zoom_webhooks.router)
    app.include_router(hubspot_actions.router)
    app.include_router(hubspot_oauth.router)
    app.include_router(admin_settings.router)
    app.include_router(admin_webinars.router)
    app.include_router(admin_sync.router)
    app.include_router(admin_connections.router)
    app.include_router(health.router)
    return app


app = create_app()
