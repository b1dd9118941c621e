"""Per-process access to Zoom: one HTTP client, one token cache and two clients per connected account.

The *interactive* client (used while HubSpot waits for the action's answer) tries once: a 429 or
5xx becomes a BLOCK answer at once instead of a wait. The *background* client (completer, Sync
now, backfill) retries with backoff and honours Retry-After. Both share the account's OAuth token.
"""

from __future__ import annotations

import logging
import time

import httpx
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import col

from app.config import Settings
from app.db import read_session
from app.delivery.health import HealthRecorder, ZoomCallObserver
from app.delivery.health_rules import Service
from app.integrations.zoom.client import ZoomClient
from app.integrations.zoom.errors import ZoomAuthError
from app.integrations.zoom.token import StaticTokenProvider, ZoomTokenProvider
from app.models import Connection
from app.secret_box import SecretBox, SecretKeyMissing, SecretUnreadable

log = logging.getLogger(__name__)

INTERACTIVE_TIMEOUT_S = 5.0
# How long an account's credentials are trusted before the connection rows are read again.
CREDENTIALS_RECHECK_S = 5.0

# (client id, client secret) of a Zoom Server-to-Server OAuth app.
AppCredentials = tuple[str, str]


def stored_credentials(engine: Engine, settings: Settings, account_id: str) -> AppCredentials | None:
    """The account's app as stored on its connections (the most recently changed one with both set),
    decrypted; None when none is stored. A secret that cannot be decrypted (APP_SECRET_KEY unset or
    changed) counts as none, with a warning naming the account (never the secret)."""
    with read_session(engine) as session:
        row = session.execute(
            select(col(Connection.zoom_client_id), col(Connection.zoom_client_secret))
            .where(
                col(Connection.zoom_account_id) == account_id,
                col(Connection.zoom_client_id).is_not(None),
                col(Connection.zoom_client_secret).is_not(None),
            )
            .order_by(col(Connection.updated_at).desc(), col(Connection.id).desc())
            .limit(1)
        ).first()
    if row is None or not row[0] or not row[1]:
        return None
    try:
        secret = SecretBox.for_key(settings.app_secret_key).decrypt(row[1])
    except (SecretKeyMissing, SecretUnreadable) as exc:
        log.warning(
            "stored Zoom credentials unusable", extra={"zoom_account_id": account_id, "error": str(exc)}
        )
        return None
    return (row[0], secret)


def env_credentials(settings: Settings, account_id: str) -> AppCredentials | None:
    secret = settings.zoom_client_secret.get_secret_value() if settings.zoom_client_secret else ""
    if account_id != settings.zoom_account_id or not settings.zoom_client_id or not secret:
        return None
    return (settings.zoom_client_id, secret)


class ZoomGateway:
    def __init__(
        self,
        settings: Settings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        engine: Engine | None = None,
        read_engine: Engine | None = None,
    ) -> None:
        self.settings = settings
        # With the database: every call's outcome counts for the connected portals' Zoom health
        # in /api/v1/status (app.delivery.health). One-off tools pass none.
        self.health = (
            HealthRecorder(engine, Service.ZOOM, warn_after_s=settings.delivery_failing_warn_s)
            if engine is not None
            else None
        )
        self.http = httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(30.0, connect=10.0))
        # Without a database (one-off tools) only the env account's credentials exist.
        # The credentials are read on the event loop (client_for is called there): through a
        # read-only engine when given, which on SQLite never waits for the write lock.
        self.engine = read_engine or engine
        self._tokens: dict[str, tuple[AppCredentials, ZoomTokenProvider]] = {}
        self._checked_at: dict[str, float] = {}
        self._clients: dict[tuple[str, bool], ZoomClient] = {}

    def _credentials(self, account_id: str) -> AppCredentials | None:
        stored = (
            stored_credentials(self.engine, self.settings, account_id) if self.engine is not None else None
        )
        return stored if stored is not None else env_credentials(self.settings, account_id)

    def _tokens_for(self, account_id: str) -> ZoomTokenProvider | None:
        now = time.monotonic()
        cached = self._tokens.get(account_id)
        checked = self._checked_at.get(account_id)
        if checked is not None and now - checked < CREDENTIALS_RECHECK_S:
            return cached[1] if cached is not None else None  # "none" is remembered as long
        credentials = self._credentials(account_id)
        self._checked_at[account_id] = now
        if cached is not None and cached[0] == credentials:
            return cached[1]
        # New, changed or removed credentials: the clients built on the old token provider go too.
        self._clients.pop((account_id, True), None)
        self._clients.pop((account_id, False), None)
        if credentials is None:
            self._tokens.pop(account_id, None)
            return None
        provider = ZoomTokenProvider(
            self.http,
            oauth_base_url=self.settings.zoom_oauth_base_url,
            account_id=account_id,
            client_id=credentials[0],
            client_secret=credentials[1],
        )
        self._tokens[account_id] = (credentials, provider)
        return provider

    def client_for(self, account_id: str, *, interactive: bool = False) -> ZoomClient | None:
        """A client for the Zoom account, or None when this process has no credentials for it."""
        tokens = self._tokens_for(account_id)
        if tokens is None:
            return None
        client = self._clients.get((account_id, interactive))
        if client is not None:
            return client
        client = ZoomClient(
            self.http,
            api_base_url=self.settings.zoom_api_base_url,
            tokens=tokens,
            max_attempts=1 if interactive else 5,
            observer=ZoomCallObserver(self.health, account_id) if self.health is not None else None,
        )
        self._clients[(account_id, interactive)] = client
        return client

    async def download_transcript(self, account_id: str, url: str, download_token: str | None) -> bytes:
        """A recording file: with the account's client (the event's token first, then OAuth), or
        with the event's download token alone when this process has no credentials."""
        client = self.client_for(account_id)
        if client is not None:
            return await client.download(url, token=download_token)
        if not download_token:
            raise ZoomAuthError(None, None, "no Zoom credentials and no download token for this file")
        alone = ZoomClient(
            self.http,
            api_base_url=self.settings.zoom_api_base_url,
            tokens=StaticTokenProvider(download_token),
        )
        return await alone.download(url)

    async def aclose(self) -> None:
        await self.http.aclose()
