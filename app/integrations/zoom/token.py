"""Access tokens for the Zoom REST API.

`ZoomTokenProvider` gets Server-to-Server OAuth tokens (`grant_type=account_credentials`) and keeps
one until shortly before it expires. Zoom's S2S tokens live one hour, have no refresh token, and
several may be valid at once, so a refresh never breaks requests still using the previous token.

Neither the client secret nor a token ever reaches a log line or an exception.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import math
import time
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import httpx

from app.integrations.zoom.errors import ZoomAuthError, ZoomError, ZoomRateLimited, ZoomUnavailable

logger = logging.getLogger(__name__)

OAUTH_PATH = "/oauth/token"
_MAX_REASON = 200


@runtime_checkable
class TokenProvider(Protocol):
    async def token(self) -> str:
        """A bearer token for the next request."""
        ...

    def invalidate(self, token: str) -> None:
        """Zoom refused `token` (401 / code 124): forget it if it is still the current one."""
        ...


class StaticTokenProvider:
    """A fixed token (tests, or a token obtained elsewhere); `invalidate` only records the call."""

    def __init__(self, token: str) -> None:
        self._token = token
        self.invalidations = 0

    def __repr__(self) -> str:
        return "StaticTokenProvider(token=[redacted])"

    async def token(self) -> str:
        return self._token

    def invalidate(self, token: str) -> None:
        self.invalidations += 1


class ZoomTokenProvider:
    """Server-to-Server OAuth tokens for one Zoom account, cached and refreshed once under concurrency.

    `http` is owned by the caller. `clock` is monotonic seconds (injectable for tests).
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        oauth_base_url: str,
        account_id: str,
        client_id: str,
        client_secret: str,
        refresh_margin_s: float = 60,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self._url = oauth_base_url.rstrip("/") + OAUTH_PATH
        self._account_id = account_id
        self._client_secret = client_secret
        credentials = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode("ascii")
        self._basic = f"Basic {credentials}"
        self._refresh_margin_s = max(refresh_margin_s, 0.0)
        self._clock = clock
        self._lock = asyncio.Lock()
        self._token: str | None = None
        self._refresh_at = -math.inf
        self.fetches = 0  # token requests sent to Zoom (successful or not)
        self.api_url: str | None = None  # regional API host Zoom named in the last token response

    def __repr__(self) -> str:
        return f"ZoomTokenProvider(url={self._url!r}, account_id={self._account_id!r})"

    def _current(self) -> str | None:
        if self._token is not None and self._clock() < self._refresh_at:
            return self._token
        return None

    async def token(self) -> str:
        current = self._current()
        if current is not None:
            return current
        async with self._lock:
            # Whoever held the lock before us may have just fetched one.
            current = self._current()
            if current is not None:
                return current
            return await self._fetch()

    def invalidate(self, token: str) -> None:
        if self._token is not None and self._token == token:
            self._token = None
            self._refresh_at = -math.inf

    async def _fetch(self) -> str:
        self.fetches += 1
        started = self._clock()
        try:
            response = await self._http.post(
                self._url,
                params={"grant_type": "account_credentials", "account_id": self._account_id},
                headers={
                    "Authorization": self._basic,
                    "Content-Type": "application/x-www-form-urlencoded",
                    "Accept": "application/json",
                },
            )
        except httpx.TransportError as exc:
            raise ZoomUnavailable(
                None,
                None,
                self._scrub(f"token request failed: {type(exc).__name__}: {exc}"),
                method="POST",
                path=OAUTH_PATH,
            ) from exc

        if not response.is_success:
            raise self._error(response)
        try:
            data: Any = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise ZoomError(
                response.status_code,
                None,
                "token response is not a JSON object",
                method="POST",
                path=OAUTH_PATH,
            )
        access_token = data.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            raise ZoomError(
                response.status_code,
                None,
                "token response has no access_token",
                method="POST",
                path=OAUTH_PATH,
            )
        expires_in = _seconds(data.get("expires_in"))
        # A token that lives shorter than twice the margin is used for half its life.
        margin = min(self._refresh_margin_s, expires_in / 2)
        self._token = access_token
        self._refresh_at = started + expires_in - margin
        api_url = data.get("api_url")
        self.api_url = api_url if isinstance(api_url, str) and api_url else None
        logger.info("Zoom access token fetched (expires in %.0fs)", expires_in)
        return access_token

    def _scrub(self, text: str) -> str:
        for secret in (self._client_secret, self._basic.removeprefix("Basic ")):
            if secret:
                text = text.replace(secret, "[redacted]")
        return text

    def _error(self, response: httpx.Response) -> ZoomError:
        status = response.status_code
        reason: str | None = None
        code: int | None = None
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            for key in ("reason", "error_description", "message", "error"):
                value = body.get(key)
                if isinstance(value, str) and value:
                    reason = value
                    break
            raw_code = body.get("code")
            code = raw_code if isinstance(raw_code, int) and not isinstance(raw_code, bool) else None
        if reason is None:
            text = response.text.strip()
            reason = text[:_MAX_REASON] if text else f"HTTP {status}"
        message = self._scrub(f"OAuth token request refused: {reason[:_MAX_REASON]}")
        if status == 429:
            return ZoomRateLimited(status, code, message, method="POST", path=OAUTH_PATH)
        if status >= 500:
            return ZoomUnavailable(status, code, message, method="POST", path=OAUTH_PATH)
        if 400 <= status < 500:
            return ZoomAuthError(status, code, message, method="POST", path=OAUTH_PATH)
        return ZoomError(status, code, message, method="POST", path=OAUTH_PATH)


def _seconds(value: Any) -> float:
    """`expires_in` (a number, sometimes a string); Zoom's S2S tokens live 3600 s."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return 3600.0
    return seconds if math.isfinite(seconds) and seconds > 0 else 3600.0
