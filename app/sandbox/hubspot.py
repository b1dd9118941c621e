"""A stateful fake HubSpot: an ASGI app for tests, the demo and benchmarks, also runnable on its own.

``create_hubspot_sandbox()`` builds a FastAPI app that serves the HubSpot endpoints this service uses,
at HubSpot's own paths and with HubSpot's JSON shapes (contacts, contact properties, timeline v3,
marketing events, calls and their associations, settings users, workflow-action callbacks). Its state
lives in memory in a :class:`~app.sandbox.hubspot_state.HubSpotSandbox`, reachable as
``app.state.sandbox`` (typed access: :func:`sandbox_of`). Behaviour choices where HubSpot's own is
undocumented are listed in :mod:`app.sandbox.hubspot_state`.

Every API request passes a gate, in this order: ``slow_ms`` delay, ``down`` (503), random 5xx at
``error_rate`` (500/502/503; a 502 has an HTML body like a proxy error page), bearer-token auth (401;
the token picks the portal), ``burst_429`` forced 429s, then the per-portal rolling-window rate limit
(429 with HubSpot's body and headers). Admitted responses carry the ``X-HubSpot-RateLimit-*`` headers.
After the request was applied, ``drop_answer_after_apply`` may replace a success with a 504 (the
answer is lost, the change stays); ``search_lag_s`` delays what call search sees.
Every request is counted per ``"METHOD /path/template"`` in ``stats.requests``, globally and per portal.

The control API under ``/_sandbox/`` needs no token and bypasses the gate:
``GET /_sandbox/state?portal=``, ``POST /_sandbox/users``, ``POST /_sandbox/contacts``,
``GET|POST /_sandbox/faults``, ``POST /_sandbox/reset``, ``GET /_sandbox/health``; OpenAPI docs at
``/_sandbox/docs``. The app's OAuth server (install, token routes, token info; ``/_sandbox/oauth``
to uninstall, advance its clock or inject faults) is in ``hubspot_oauth`` and ``hubspot_routes_oauth``;
its access tokens open the API like the static ones until they expire.

The routes live per resource in ``hubspot_routes_crm`` (contacts, properties, calls),
``hubspot_routes_events`` (timeline, marketing events), ``hubspot_routes_settings`` (users, workflow
actions) and ``hubspot_routes_control``; the gate's ticket, error handlers and dependencies in
``hubspot_http``. This module assembles the app and runs it.

Run it: ``python -m app.sandbox.hubspot [PORT] [--host H] [--token TOKEN=PORTAL ...]`` (port 8901).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence

import uvicorn
from fastapi import FastAPI

from app.sandbox.hubspot_common import CREATE_CALL_ROUTE
from app.sandbox.hubspot_http import ERROR_HANDLERS, HubSpotTicket, sandbox_of
from app.sandbox.hubspot_oauth import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, OAuthServer, OAuthSettings
from app.sandbox.hubspot_routes_activities import app_events, notes
from app.sandbox.hubspot_routes_control import control
from app.sandbox.hubspot_routes_crm import calls, contacts, properties
from app.sandbox.hubspot_routes_events import marketing, timeline
from app.sandbox.hubspot_routes_oauth import OAUTH_PREFIX, oauth, oauth_control
from app.sandbox.hubspot_routes_settings import automation, dated_callbacks, users
from app.sandbox.hubspot_state import Faults, HubSpotSandbox
from app.sandbox.sandbox_app import CONTROL_PREFIX, build_sandbox_app

__all__ = ["CONTROL_PREFIX", "DEFAULT_PORT", "HubSpotSandbox", "create_hubspot_sandbox", "main", "sandbox_of"]

DEFAULT_PORT = 8901


def create_hubspot_sandbox(
    *,
    tokens: Mapping[str, int] | None = None,
    rate_limit: int = 100,
    window_s: float = 10.0,
    app_id: str = "1001",
    error_rate: float = 0.0,
    slow_ms: int = 0,
    down: bool = False,
    burst_429: int = 0,
    seed: int = 0,
    strict_properties: bool = True,
    drop_answer_after_apply: int = 0,
    drop_answer_route: str = CREATE_CALL_ROUTE,
    search_lag_s: float = 0.0,
    oauth_client_id: str = DEFAULT_CLIENT_ID,
    oauth_client_secret: str = DEFAULT_CLIENT_SECRET,
    oauth_access_ttl_s: float = 1800.0,
) -> FastAPI:
    """The fake HubSpot. ``tokens`` maps bearer tokens to portal ids (default ``{"sandbox-token": 1}``).

    ``rate_limit`` requests per rolling ``window_s`` seconds are admitted per portal; the fault fields
    (``error_rate``, ``slow_ms``, ``down``, ``burst_429``, ``seed`` for the fault RNG) are the initial
    values, restored by ``POST /_sandbox/reset``. With ``strict_properties`` writes of undefined contact
    properties fail like in HubSpot. ``drop_answer_after_apply`` successful requests to
    ``drop_answer_route`` are applied and answered 504; call search trails writes by ``search_lag_s``.
    The OAuth server (``app.sandbox.hubspot_oauth``) knows the app as ``oauth_client_id`` /
    ``oauth_client_secret`` and issues access tokens living ``oauth_access_ttl_s``.
    """
    faults = Faults(
        error_rate=error_rate,
        slow_ms=slow_ms,
        down=down,
        burst_429=burst_429,
        seed=seed,
        drop_answer_after_apply=drop_answer_after_apply,
        drop_answer_route=drop_answer_route,
        search_lag_s=search_lag_s,
    )
    sandbox = HubSpotSandbox(
        tokens=tokens,
        rate_limit=rate_limit,
        window_s=window_s,
        app_id=app_id,
        faults=faults,
        strict_properties=strict_properties,
        oauth=OAuthServer(
            client_id=oauth_client_id,
            client_secret=oauth_client_secret,
            app_id=str(app_id),
            initial=OAuthSettings(access_ttl_s=oauth_access_ttl_s),
        ),
    )
    app = build_sandbox_app(
        title="HubSpot sandbox",
        sandbox=sandbox,
        # The routers' order is the order routes are matched and listed in the OpenAPI document.
        api_routers=(
            *(contacts, properties, timeline, marketing, calls, users, automation, dated_callbacks),
            *(app_events, notes),  # hubspot_routes_activities (CONTRACT §4.2)
        ),
        control=control,
        error_handlers=ERROR_HANDLERS,
        # The OAuth routes take no bearer token: the API gate (auth, rate limit) is not theirs.
        guards=lambda path: not path.startswith((CONTROL_PREFIX, OAUTH_PREFIX)),
        open_ticket=lambda scope, route: HubSpotTicket(sandbox, scope, route),
    )
    app.include_router(oauth)
    app.include_router(oauth_control)
    return app


# --------------------------------------------------------------------------------------------------
# Running on its own
# --------------------------------------------------------------------------------------------------


def _token_pair(text: str) -> tuple[str, int]:
    token, sep, portal = text.partition("=")
    if not sep or not token or not portal.isdigit():
        raise argparse.ArgumentTypeError("expected TOKEN=PORTAL_ID, e.g. sandbox-token=1")
    return token, int(portal)


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the sandbox with uvicorn: ``python -m app.sandbox.hubspot [PORT]``."""
    parser = argparse.ArgumentParser(prog="python -m app.sandbox.hubspot", description="Fake HubSpot API.")
    parser.add_argument("port", nargs="?", type=int, default=DEFAULT_PORT)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--token", action="append", type=_token_pair, metavar="TOKEN=PORTAL")
    parser.add_argument("--rate-limit", type=int, default=100, help="requests per window per portal")
    parser.add_argument("--window", type=float, default=10.0, help="rate-limit window in seconds")
    parser.add_argument("--app-id", default="1001")
    args = parser.parse_args(argv)
    app = create_hubspot_sandbox(
        tokens=dict(args.token) if args.token else None,
        rate_limit=args.rate_limit,
        window_s=args.window,
        app_id=args.app_id,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
