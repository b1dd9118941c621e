"""The HubSpot client's transport: one portal's requests, retries, rate limit and error mapping.

`HubSpotTransport` is the base of every API area of `HubSpotClient` (contacts, timeline, marketing
events, calls, workflow actions): they describe requests and parse answers; this class sends them.
Only 429, 5xx and transport errors are retried (the attempts and the observer's bookkeeping are the
shared `CallRunner`); every attempt first waits for the portal's rate limiter, and a 429 tells the
limiter to hold every sender of that portal back.

The bearer token comes from a `TokenSource` before every attempt (a fixed token, or an OAuth
portal's token that is refreshed before it runs out) and lives only in that request's headers: it
never reaches a log line or an exception (exceptions keep the method and path, never the request).
A 401 asks the source once for a fresh token and, when it gives another, sends again once.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn, Protocol, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from app.integrations.calls import CallRunner
from app.integrations.hubspot.errors import (
    HubSpotError,
    HubSpotRateLimited,
    HubSpotUnavailable,
    error_from_response,
)
from app.integrations.hubspot.oauth import HubSpotRefreshRefused
from app.integrations.hubspot.rate_limit import RateLimiter
from app.integrations.retry import backoff_s, parse_retry_after

# The retry log line keeps the logger it had before the client was split by API area.
logger = logging.getLogger("app.integrations.hubspot.client")

DEFAULT_RETRY_AFTER_S = 10.0

_ModelT = TypeVar("_ModelT", bound=BaseModel)


class CallObserver(Protocol):
    """Told how each call went, e.g. to keep the portal's health (app.delivery.health)."""

    async def observe(self, error: HubSpotError | None, began_at: datetime) -> None:
        """A call ended (`error` None: HubSpot answered it) or one attempt got a 429 (then the
        client waits and retries). `began_at`: when the call started. Must not raise."""
        ...


class TokenSource(Protocol):
    """The bearer token for the next request. `refused`: the token HubSpot just answered 401 to;
    a source that can refresh returns a new one (or one another request already got), else the same.
    Raises a HubSpotError when no token can be had (retryable for an outage)."""

    async def __call__(self, refused: str | None = None) -> str: ...


class StaticToken:
    """A token copied from the installed app (or HUBSPOT_ACCESS_TOKEN): nothing to refresh."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def __call__(self, refused: str | None = None) -> str:
        return self._token

    def __repr__(self) -> str:
        return "StaticToken([redacted])"


@dataclass
class HubSpotClientStats:
    """Counters for tests and benchmarks: every HTTP attempt, and what went wrong."""

    requests: int = 0
    rate_limited: int = 0
    server_errors: int = 0
    transport_errors: int = 0
    retries: int = 0


# Transport failures that happen before any byte of the request left: HubSpot cannot have acted.
_NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def may_have_reached_hubspot(exc: HubSpotError) -> bool:
    """Whether HubSpot may have applied the request although it failed (its answer was lost).

    A 5xx, an answer that could not be read, a read timeout or a connection dropped after sending
    leave it open; a 4xx (429 included) is HubSpot refusing the request; a failed connect never sent it.
    """
    if exc.status is not None:
        return not 400 <= exc.status < 500
    return not isinstance(exc.__cause__, _NEVER_SENT)


def _parse_retry_after(response: httpx.Response) -> float:
    """Seconds to wait after a 429: `Retry-After` (seconds or a date), else HubSpot's window."""
    seconds = parse_retry_after(response.headers.get("Retry-After"), datetime.now(UTC))
    if seconds is not None:
        return seconds
    interval = response.headers.get("X-HubSpot-RateLimit-Interval-Milliseconds")
    if interval is not None:
        try:
            ms = float(interval)
        except ValueError:
            ms = math.nan
        if math.isfinite(ms) and ms > 0:
            return ms / 1000.0
    return DEFAULT_RETRY_AFTER_S


class HubSpotTransport:
    """Sends one portal's requests to HubSpot and maps the answers to typed results or errors.

    `http` is shared with the rest of the process and owned by the caller (built in the app's
    lifespan); this class never closes it.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str,
        portal_id: int,
        access_token: str | None = None,
        token_source: TokenSource | None = None,
        rate_limiter: RateLimiter,
        max_attempts: int = 5,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30.0,
        max_retry_after_s: float = 60.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        observer: CallObserver | None = None,
    ) -> None:
        self._http = http
        self._base_url = base_url.rstrip("/")
        if token_source is None:
            if access_token is None:
                raise ValueError("HubSpotTransport needs access_token or token_source")
            token_source = StaticToken(access_token)
        self._token_source = token_source
        # The tokens lately sent, kept only to scrub them from error text HubSpot might echo back.
        self._sent_tokens: deque[str] = deque(maxlen=3)
        self.portal_id = portal_id
        self._limiter = rate_limiter
        self._max_attempts = max_attempts
        # A 429 asking for a longer wait (e.g. the DAILY policy) is not waited out in-process:
        # the error goes back to the caller, whose work queue retries later.
        self._max_retry_after_s = max_retry_after_s
        self._backoff_base_s = backoff_base_s
        self._backoff_max_s = backoff_max_s
        self.stats = HubSpotClientStats()
        self._calls = CallRunner(
            error_type=HubSpotError,
            max_attempts=max_attempts,
            should_retry=self._should_retry,
            wait_s=self._wait_s,
            on_retry=self._on_retry,
            sleep=sleep,
            now=lambda: datetime.now(UTC),
            observer=observer,
        )

    # --- transport, retries and error mapping ---------------------------------------------------

    def _scrub(self, text: str) -> str:
        for token in self._sent_tokens:
            text = text.replace(token, "[redacted]")
        return text

    def _scrub_bytes(self, body: bytes) -> bytes:
        for token in self._sent_tokens:
            body = body.replace(token.encode(), b"[redacted]")
        return body

    def _should_retry(self, exc: HubSpotError) -> bool:
        if isinstance(exc, HubSpotRefreshRefused):
            return False  # only a re-install helps: the caller parks the work
        if isinstance(exc, HubSpotRateLimited):
            return exc.retry_after_s <= self._max_retry_after_s
        return exc.retryable

    def _wait_s(self, exc: HubSpotError, attempt: int) -> float:
        if isinstance(exc, HubSpotRateLimited):
            return exc.retry_after_s
        return backoff_s(attempt, base_s=self._backoff_base_s, max_s=self._backoff_max_s)

    def _on_retry(self, exc: HubSpotError, attempt: int, wait: float) -> None:
        self.stats.retries += 1
        logger.warning(
            "HubSpot %s %s failed (status %s, %s); retry %d/%d in %.2fs",
            exc.method,
            exc.path,
            exc.status,
            exc.category,
            attempt,
            self._max_attempts - 1,
            wait,
            extra={"portal_id": self.portal_id},
        )

    async def _attempt(
        self, method: str, path: str, params: Mapping[str, str] | None, body: Any
    ) -> httpx.Response:
        token = await self._token_source()
        response = await self._send(method, path, params, body, token)
        if response.status_code == 401:
            # The token may have been revoked or expired early: one fresh token, one more try.
            fresh = await self._token_source(token)
            if fresh != token:
                response = await self._send(method, path, params, body, fresh)
        if response.is_success:
            return response
        await self._fail(response, method, path)

    async def _send(
        self, method: str, path: str, params: Mapping[str, str] | None, body: Any, token: str
    ) -> httpx.Response:
        await self._limiter.acquire(self.portal_id)
        self.stats.requests += 1
        if token not in self._sent_tokens:
            self._sent_tokens.append(token)
        headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        try:
            return await self._http.request(
                method,
                self._base_url + path,
                params=params,
                json=body,
                headers=headers,
            )
        except httpx.TransportError as exc:
            self.stats.transport_errors += 1
            # httpx's message names the failure, never the request headers; scrub anyway.
            raise HubSpotUnavailable(
                None,
                "TRANSPORT_ERROR",
                self._scrub(f"{type(exc).__name__}: {exc}"),
                method=method,
                path=path,
            ) from exc

    async def _fail(self, response: httpx.Response, method: str, path: str) -> NoReturn:
        retry_after_s = 0.0
        if response.status_code == 429:
            self.stats.rate_limited += 1
            retry_after_s = _parse_retry_after(response)
            self._limiter.penalise(self.portal_id, retry_after_s)
        elif response.status_code >= 500:
            self.stats.server_errors += 1
        error = error_from_response(
            response.status_code,
            self._scrub_bytes(response.content),
            retry_after_s=retry_after_s,
            method=method,
            path=path,
        )
        if isinstance(error, HubSpotRateLimited):
            await self._calls.rate_limited(error)
        raise error

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        at_most_once: bool = False,
    ) -> httpx.Response:
        # A create that is not idempotent is sent again only when HubSpot surely did not apply it;
        # otherwise the caller decides (it can look the record up first).
        def surely_not_applied(exc: HubSpotError) -> bool:
            return not may_have_reached_hubspot(exc)

        response: httpx.Response = await self._calls.call(
            lambda: self._attempt(method, path, params, body),
            retry_if=surely_not_applied if at_most_once else None,
        )
        return response

    async def _request_json(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        at_most_once: bool = False,
    ) -> Any:
        response = await self._request(method, path, params=params, body=body, at_most_once=at_most_once)
        try:
            return response.json()
        except ValueError:
            raise HubSpotError(
                response.status_code,
                "UNEXPECTED_RESPONSE",
                "response body is not JSON",
                method=method,
                path=path,
            ) from None

    def _parse(self, model: type[_ModelT], data: Any, *, method: str, path: str) -> _ModelT:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise HubSpotError(
                None,
                "UNEXPECTED_RESPONSE",
                f"response does not match {model.__name__}: {exc.error_count()} problem(s)",
                method=method,
                path=path,
            ) from None

    async def _call(
        self,
        model: type[_ModelT],
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        at_most_once: bool = False,
    ) -> _ModelT:
        data = await self._request_json(method, path, params=params, body=body, at_most_once=at_most_once)
        return self._parse(model, data, method=method, path=path)
