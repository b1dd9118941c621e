"""Per-process access to HubSpot: one HTTP client, the shared rate limiter, one client per portal.

A static portal's client sends its stored token (or HUBSPOT_ACCESS_TOKEN for the env portal); an OAuth
portal's client gets its token per request from an `OAuthTokenSource`, which refreshes it before it
runs out. A portal waiting for a re-install gets no client: its work waits, nothing is failed.
"""

from __future__ import annotations

import asyncio
import logging
import time

import httpx
from sqlalchemy.engine import Engine

from app.config import Settings
from app.delivery.health import HealthRecorder, HubSpotCallObserver
from app.delivery.health_rules import Service
from app.delivery.hubspot_credentials import OAuthTokenSource, portal_auth, stored_access_token
from app.integrations.hubspot import HubSpotClient, HubSpotError
from app.integrations.hubspot.oauth import HubSpotOAuthClient
from app.integrations.hubspot.setup import PortalSetup, ensure_hubspot_setup, portal_setup
from app.integrations.shared_rate_limit import DatabaseRateLimiter
from app.models import AuthMode

log = logging.getLogger(__name__)

# How long a portal's credentials are trusted before the database is read again: a token stored by
# another process (admin API, OAuth install) is picked up within this long.
CREDENTIALS_RECHECK_S = 5.0


class SetupIncompleteError(HubSpotError):
    """What the service needs in HubSpot (properties, templates) could not be made sure of."""

    retryable = True


class HubSpotGateway:
    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        setup_retry_s: float = 5.0,
    ) -> None:
        self.settings = settings
        self.engine = engine
        # One pooled client for every portal and request (httpx's advice; DESIGN.md).
        self.http = httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(30.0, connect=10.0))
        self.limiter = DatabaseRateLimiter(engine, settings.hubspot_rate_limit_per_10s)
        self.setup_retry_s = setup_retry_s
        self._clients: dict[int, HubSpotClient] = {}
        self._tokens: dict[int, str] = {}
        self._checked_at: dict[int, float] = {}
        self._templates: dict[int, PortalSetup] = {}
        self._setup_failed_at: dict[int, tuple[float, str]] = {}
        self._sources: dict[int, OAuthTokenSource] = {}
        # The app's OAuth client (install, refresh), when HUBSPOT_CLIENT_ID and the secret are set.
        self.oauth: HubSpotOAuthClient | None = None
        secret = settings.hubspot_client_secret.get_secret_value() if settings.hubspot_client_secret else ""
        if settings.hubspot_client_id and secret:
            self.oauth = HubSpotOAuthClient(
                self.http,
                base_url=settings.hubspot_api_base_url,
                client_id=settings.hubspot_client_id,
                client_secret=secret,
            )
        # Every call's outcome, per portal, for /api/v1/status and the outage audit warning.
        self.health = HealthRecorder(engine, Service.HUBSPOT, warn_after_s=settings.delivery_failing_warn_s)

    def client_for(self, portal_id: int) -> HubSpotClient | None:
        """A client for the portal, or None when there are no usable credentials for it (its work
        then waits: nothing is failed for it)."""
        now = time.monotonic()
        cached = self._clients.get(portal_id)
        if cached is not None and now - self._checked_at.get(portal_id, 0.0) < CREDENTIALS_RECHECK_S:
            return cached
        auth = portal_auth(self.engine, portal_id)
        self._checked_at[portal_id] = now
        if auth is not None and auth.needs_reinstall:
            self._drop(portal_id)
            return None
        if auth is not None and auth.auth_mode is AuthMode.OAUTH and auth.has_token:
            return self._oauth_client(portal_id)
        # A token stored through the admin API wins over the environment's.
        token = stored_access_token(self.engine, self.settings, portal_id) if auth is not None else None
        if token is None:
            env_token = self.settings.hubspot_access_token
            if portal_id == self.settings.hubspot_portal_id and env_token is not None:
                token = env_token.get_secret_value() or None
        if token is None:
            self._drop(portal_id)
            return None
        if cached is not None and portal_id not in self._sources and self._tokens.get(portal_id) == token:
            return cached
        self._sources.pop(portal_id, None)
        self._tokens[portal_id] = token
        return self._build(portal_id, access_token=token)

    def _oauth_client(self, portal_id: int) -> HubSpotClient:
        cached = self._clients.get(portal_id)
        if cached is not None and portal_id in self._sources:
            return cached
        self._tokens.pop(portal_id, None)
        source = OAuthTokenSource(self.engine, self.settings, portal_id, self.oauth)
        self._sources[portal_id] = source
        return self._build(portal_id, token_source=source)

    def _build(
        self, portal_id: int, *, access_token: str | None = None, token_source: OAuthTokenSource | None = None
    ) -> HubSpotClient:
        client = HubSpotClient(
            self.http,
            base_url=self.settings.hubspot_api_base_url,
            access_token=access_token,
            token_source=token_source,
            portal_id=portal_id,
            rate_limiter=self.limiter,
            observer=HubSpotCallObserver(self.health, portal_id),
            backoff_base_s=self.settings.hubspot_retry_base_s,
        )
        self._clients[portal_id] = client
        return client

    def _drop(self, portal_id: int) -> None:
        self._clients.pop(portal_id, None)
        self._tokens.pop(portal_id, None)
        self._sources.pop(portal_id, None)

    def forget(self, portal_id: int) -> None:
        """Read the portal's credentials and redo its set-up on next use (it was just installed)."""
        self._drop(portal_id)
        self._checked_at.pop(portal_id, None)
        self._templates.pop(portal_id, None)
        self._setup_failed_at.pop(portal_id, None)

    def token_source(self, portal_id: int) -> OAuthTokenSource | None:
        """The OAuth portal's token source once its client was built (tests, the install page)."""
        return self._sources.get(portal_id)

    async def setup_for(self, client: HubSpotClient, portal_id: int) -> PortalSetup:
        """Make sure properties and templates exist and choose the portal's timeline writer (once per
        process); return what the handlers need (`PortalSetup`).

        An OAuth portal's token is made sure of first: a refresh refused (the portal then waits for a
        re-install) or an outage ends the round before anything is sent, so no attempt is counted.
        """
        source = self._sources.get(portal_id)
        if source is not None:
            await source()
        if portal_id in self._templates:
            return self._templates[portal_id]
        failed = self._setup_failed_at.get(portal_id)
        if failed is not None and time.monotonic() - failed[0] < self.setup_retry_s:
            raise SetupIncompleteError(None, "SETUP", failed[1])
        app_id = self.settings.hubspot_app_id
        report = await ensure_hubspot_setup(
            client,
            self.engine,
            portal_id=portal_id,
            app_id=app_id,
            timeline_backend=self.settings.hubspot_timeline_backend,
            app_event_types=self.settings.app_event_types,
        )
        if not report.ok:
            message = "HubSpot set-up incomplete: " + "; ".join(
                f"{item.name}: {item.detail}" for item in report.problems
            )
            log.warning(
                "hubspot set-up incomplete", extra={"portal_id": portal_id, "problems": len(report.problems)}
            )
            self._setup_failed_at[portal_id] = (time.monotonic(), message)
            raise SetupIncompleteError(None, "SETUP", message)
        setup = await asyncio.to_thread(portal_setup, report, self.engine, self.settings)
        self._templates[portal_id] = setup
        self._setup_failed_at.pop(portal_id, None)
        return setup

    async def aclose(self) -> None:
        await self.http.aclose()
