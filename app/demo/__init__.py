"""The one-command demo: the service between both sandboxes, in one process, playing a real webinar.

``python3 dev.py run`` (``python -m app.cli serve``) with no Zoom or HubSpot credentials set runs
:func:`create_demo_app` instead of the plain service: the service app from :func:`app.main.create_app`,
wired to an in-process HubSpot sandbox and Zoom sandbox (ASGI transports, nothing leaves the process),
with both sandboxes mounted for browsing under ``/sandbox/hubspot`` and ``/sandbox/zoom``. Once the
service has started, a background task plays a realistic webinar at the Zoom sandbox, whose signed
webhooks go into the service exactly as Zoom's would: registrations (one cancelled), excluded emails
of every kind (a HubSpot user, an email in a contact exclusion domain, a contact's secondary email, a
deleted contact, an invalid email, a guest whose email Zoom removed), joins and a rejoin, the end,
then a cloud recording with its transcript. When the service has nothing pending, the task prints a
summary of what landed in the HubSpot sandbox and ``curl`` commands to look around.

Real configuration always wins: unless asked for with ``ZOOM_HUBSPOT_DEMO=1``, the demo runs only on
SQLite and only when no Zoom or HubSpot setting is set (:data:`REAL_SETTINGS`: a half-way set-up, say a
webhook secret and a portal id but no token yet, runs the plain service, never the demo with its open
sandbox routes). ``ZOOM_HUBSPOT_DEMO=0`` turns it off (the plain service then runs, with nothing
connected).

The demo keeps its own database next to the configured SQLite file (``zoom_hubspot.db`` →
``zoom_hubspot-demo.db``) and starts it afresh on every run: the sandboxes live in memory, so their
state and the service's must begin together, and the demo never touches the real database.

Run it directly: ``uvicorn --factory app.demo:create_demo_app`` (the summary then uses
``PUBLIC_BASE_URL``, or ``ZOOM_HUBSPOT_DEMO_URL`` when set).

The package, by job: :mod:`~app.demo.settings` (when the demo runs, and with what),
:mod:`~app.demo.wiring` (the service between the sandboxes, in one process), :mod:`~app.demo.scenario`
(the webinar played), :mod:`~app.demo.summary` (what is printed), :mod:`~app.demo.run` (one run's state).
"""

from __future__ import annotations

from app.demo.run import DemoRun, demo_of
from app.demo.scenario import TOPIC
from app.demo.settings import (
    ACCOUNT_ID,
    DEMO_ENV,
    PORTAL_ID,
    REAL_SETTINGS,
    URL_ENV,
    ZOOM_WEBHOOK_SECRET,
    demo_database_url,
    demo_wanted,
    real_settings_set,
)
from app.demo.wiring import create_demo_app

__all__ = [
    "ACCOUNT_ID",
    "DEMO_ENV",
    "PORTAL_ID",
    "REAL_SETTINGS",
    "TOPIC",
    "URL_ENV",
    "ZOOM_WEBHOOK_SECRET",
    "DemoRun",
    "create_demo_app",
    "demo_database_url",
    "demo_of",
    "demo_wanted",
    "real_settings_set",
]
