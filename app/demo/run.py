"""One demo run: its sandboxes, settings and outcome, kept on the service app's state."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI

from app.config import Settings
from app.sandbox.hubspot_state import HubSpotSandbox
from app.sandbox.zoom_state import ZoomSandbox


@dataclass
class DemoRun:
    """The demo's moving parts and outcome (``app.state.demo``; typed access: :func:`demo_of`)."""

    settings: Settings
    base_url: str
    hubspot: HubSpotSandbox
    zoom: ZoomSandbox
    hubspot_app: FastAPI
    zoom_app: FastAPI
    print_summary: bool = True
    done: asyncio.Event = field(default_factory=asyncio.Event)
    webinar_id: str | None = None
    summary: str | None = None
    error: str | None = None
    outcome: dict[str, Any] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None

    @property
    def admin_token(self) -> str:
        token = self.settings.admin_api_token
        if token is None:  # demo_settings always sets one
            raise RuntimeError("the demo runs without an admin token")
        return token.get_secret_value()


def demo_of(app: FastAPI) -> DemoRun:
    run = getattr(app.state, "demo", None)
    if not isinstance(run, DemoRun):
        raise TypeError("this app was not built by create_demo_app()")
    return run
