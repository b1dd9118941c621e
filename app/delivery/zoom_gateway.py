"""Per-process access to Zoom: one HTTP client, one token cache and two clients per connected account.

The *interactive* client (used while HubSpot waits for the action's answer) tries once: a 429 or
5xx becomes a BLOCK answer at once instead of a wait. The *background* client (completer, Sync
now, backfill) retries with backoff and honours Retry-After. Both share the account's OAuth token.
"""

from __future__ import annotations

import httpx
from sqlalchemy.engine import Engine

from app.config import Settings
from app.delivery.health import HealthRecorder, ZoomCallObserver
from app.delivery.health_rules import Service
from app.integrations.zoom.client import ZoomClient
from app.integrations.zoom.errors import ZoomAuthError
from app.integrations.zoom.token import StaticTokenProvider, ZoomTokenProvider

INTERACTIVE_TIMEOUT_S = 5.0


class ZoomGateway:
    def __init__(
        self,
        settings: Settings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        engine: Engine | None = None,
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
        self._tokens: dict[str, ZoomTokenProvider] = {}
        self._clients: dict[tuple[str, bool], ZoomClient] = {}

    def _tokens_for(self, account_id: str) -> ZoomTokenProvider | None:
        provider = self._tokens.get(account_id)
        if provider is not None:
            return provider
        cfg = self.settings
        secret = cfg.zoom_client_secret.get_secret_value() if cfg.zoom_client_secret else ""
        if account_id != cfg.zoom_account_id or not cfg.zoom_client_id or not secret:
            return None
        provider = ZoomTokenProvider(
            self.http,
            oauth_base_url=cfg.zoom_oauth_base_url,
            account_id=account_id,
            client_id=cfg.zoom_client_id,
            client_secret=secret,
        )
        self._tokens[account_id] = provider
        return provider

    def client_for(self, account_id: str, *, interactive: bool = False) -> ZoomClient | None:
        """A client for the Zoom account, or None when this process has no credentials for it."""
        client = self._clients.get((account_id, interactive))
        if client is not None:
            return client
        tokens = self._tokens_for(account_id)
        if tokens is None:
            return None
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
