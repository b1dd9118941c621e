"""Zoom REST client: typed results, retries on 429/5xx/transport errors, one re-token on 401.

Every method returns typed results (never raw responses) and raises `ZoomError` subclasses.
429 waits for `Retry-After` when Zoom gives one that is near (a daily-limit date is not waited out
in-process: the error goes back to the caller, whose work queue retries later), else backs off
exponentially with jitter, as do 5xx and transport errors. Other 4xx are never retried.

Tokens live only in per-request headers: they never reach a log line or an exception, and neither
do email addresses (paths that carry one are masked).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, TypeVar
from urllib.parse import quote, urlsplit

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from app.integrations.calls import CallRunner
from app.integrations.retry import backoff_s
from app.integrations.zoom.errors import (
    CODE_ACCESS_TOKEN_INVALID,
    ZoomAuthError,
    ZoomError,
    ZoomRateLimited,
    ZoomRecordingNotFound,
    ZoomUnavailable,
    error_from_response,
    mask_emails,
    parse_error_body,
)
from app.integrations.zoom.models import (
    Participant,
    Recordings,
    Registrant,
    RegistrantCreated,
    RegistrationQuestions,
    WebinarSummary,
    ZoomUser,
    ZoomWebinar,
)
from app.integrations.zoom.token import TokenProvider

logger = logging.getLogger(__name__)

DEFAULT_PAGE_SIZE = 300
DEFAULT_DOWNLOAD_LIMIT = 20_000_000
ParticipantSource = Literal["past", "report"]

_ModelT = TypeVar("_ModelT", bound=BaseModel)
JsonBody = dict[str, Any]
Sleep = Callable[[float], Awaitable[None]]
# Describe the body as sent; a downloaded body is kept decoded, so these no longer apply.
_BODY_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})


class CallObserver(Protocol):
    """Told how each call went, e.g. to keep the connected portals' health (app.delivery.health)."""

    async def observe(self, error: ZoomError | None, began_at: datetime) -> None:
        """A call ended (`error` None: Zoom answered it) or one attempt got a 429 (then the client
        may wait and retry). `began_at`: when the call started. Must not raise."""
        ...


@dataclass
class ZoomClientStats:
    """Counters for tests and benchmarks: every HTTP attempt, and what went wrong.

    Token requests are counted by `ZoomTokenProvider.fetches`."""

    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    server_errors: int = 0
    transport_errors: int = 0
    auth_retries: int = 0  # requests sent again with a fresh token after a 401 / code 124


# --- wire-format helpers --------------------------------------------------------------------------


def _segment(value: str | int) -> str:
    """One URL path segment; ids come from outside, so never let them add path parts."""
    return quote(str(value), safe="")


def webinar_path_id(value: str | int) -> str:
    """A webinar/meeting id or uuid as a path segment. Zoom wants uuids that start with "/" or
    contain "//" encoded twice (`/abc==` -> `%252Fabc%253D%253D`); everything else once."""
    text = str(value)
    if text.startswith("/") or "//" in text:
        return quote(quote(text, safe=""), safe="")
    return quote(text, safe="")


def _loggable_path(path: str) -> str:
    """The path as it may appear in logs and exceptions: segments holding an email are masked."""
    return mask_emails(path.replace("%40", "@").replace("%2540", "@"))


def _is_auth_failure(response: httpx.Response) -> bool:
    if response.status_code == 401:
        return True
    if response.status_code in (400, 403):
        code, _ = parse_error_body(response.content)
        return code == CODE_ACCESS_TOKEN_INVALID
    return False


# --- the client -----------------------------------------------------------------------------------


class ZoomClient:
    """Typed access to the Zoom REST APIs this service uses, for one Zoom account.

    `http` is shared with the rest of the process and owned by the caller; this class never closes
    it. `tokens` supplies bearer tokens (`ZoomTokenProvider` in production).
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        api_base_url: str,
        tokens: TokenProvider,
        max_attempts: int = 4,
        retry_base_s: float = 0.5,
        max_retry_after_s: float = 30.0,
        sleep: Sleep = asyncio.sleep,
        retry_max_s: float = 20.0,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        observer: CallObserver | None = None,
    ) -> None:
        self._http = http
        self._base_url = api_base_url.rstrip("/")
        self._tokens = tokens
        self._max_attempts = max_attempts
        self._retry_base_s = retry_base_s
        self._retry_max_s = max(retry_max_s, retry_base_s)
        self._max_retry_after_s = max_retry_after_s
        self._now = now
        self.stats = ZoomClientStats()
        self._calls = CallRunner(
            error_type=ZoomError,
            max_attempts=max_attempts,
            should_retry=self._should_retry,
            wait_s=self._wait_s,
            on_retry=self._on_retry,
            sleep=sleep,
            now=now,
            observer=observer,
        )

    def __repr__(self) -> str:
        return f"ZoomClient(api_base_url={self._base_url!r})"

    # --- retry policy ---------------------------------------------------------------------------

    def _should_retry(self, exc: ZoomError) -> bool:
        if isinstance(exc, ZoomRateLimited):
            return exc.retry_after_s is None or exc.retry_after_s <= self._max_retry_after_s
        return exc.retryable

    def _wait_s(self, exc: ZoomError, attempt: int) -> float:
        if isinstance(exc, ZoomRateLimited) and exc.retry_after_s is not None:
            return exc.retry_after_s
        return backoff_s(attempt, base_s=self._retry_base_s, max_s=self._retry_max_s)

    def _on_retry(self, exc: ZoomError, attempt: int, wait: float) -> None:
        self.stats.retries += 1
        logger.warning(
            "Zoom %s %s failed (status %s, code %s, %s); retry %d/%d in %.2fs",
            exc.method,
            exc.path,
            exc.status,
            exc.code,
            type(exc).__name__,
            attempt,
            self._max_attempts - 1,
            wait,
        )

    # --- transport ------------------------------------------------------------------------------

    async def _send(
        self,
        method: str,
        url: str,
        path: str,
        token: str,
        *,
        params: Mapping[str, str] | None,
        body: Any,
        max_bytes: int | None,
    ) -> httpx.Response:
        """One HTTP exchange. With `max_bytes`, follows redirects and reads at most that many bytes."""
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        self.stats.requests += 1
        try:
            if max_bytes is None:
                return await self._http.request(method, url, params=params, json=body, headers=headers)
            headers["Accept"] = "*/*"
            async with self._http.stream(
                method, url, params=params, headers=headers, follow_redirects=True
            ) as response:
                declared = response.headers.get("Content-Length", "")
                if response.is_success and declared.isdigit() and int(declared) > max_bytes:
                    raise self._too_large(method, path, max_bytes)
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        if response.is_success:
                            raise self._too_large(method, path, max_bytes)
                        break  # an error body: what we have is enough to say what went wrong
                    chunks.append(chunk)
                return httpx.Response(
                    response.status_code,
                    headers=[(k, v) for k, v in response.headers.items() if k.lower() not in _BODY_HEADERS],
                    content=b"".join(chunks),
                    request=response.request,
                )
        except httpx.TransportError as exc:
            self.stats.transport_errors += 1
            # httpx's message names the failure, never the request headers; scrub anyway.
            message = f"{type(exc).__name__}: {exc}".replace(token, "[redacted]")
            raise ZoomUnavailable(None, None, mask_emails(message), method=method, path=path) from exc
        except httpx.TooManyRedirects as exc:
            raise ZoomError(None, None, "too many redirects", method=method, path=path) from exc
        except httpx.RequestError as exc:
            raise ZoomError(None, None, type(exc).__name__, method=method, path=path) from exc

    @staticmethod
    def _too_large(method: str, path: str, max_bytes: int) -> ZoomError:
        return ZoomError(None, None, f"download larger than {max_bytes} bytes", method=method, path=path)

    async def _attempt(
        self,
        method: str,
        url: str,
        path: str,
        params: Mapping[str, str] | None,
        body: Any,
        explicit_token: str | None,
        max_bytes: int | None,
    ) -> httpx.Response:
        token = explicit_token if explicit_token else await self._tokens.token()
        response = await self._send(method, url, path, token, params=params, body=body, max_bytes=max_bytes)
        if _is_auth_failure(response):
            # Expired or revoked: fetch a fresh token and try exactly once more. (An explicit token,
            # e.g. a webhook's download_token, falls back to an account token.)
            if not explicit_token:
                self._tokens.invalidate(token)
            self.stats.auth_retries += 1
            logger.info("Zoom %s %s: token refused; retrying once with a fresh token", method, path)
            token = await self._tokens.token()
            response = await self._send(
                method, url, path, token, params=params, body=body, max_bytes=max_bytes
            )
        if response.is_success:
            return response
        if response.status_code == 429:
            self.stats.rate_limited += 1
        elif response.status_code >= 500:
            self.stats.server_errors += 1
        error = error_from_response(response, method, path, now=self._now(), redact=(token,))
        if isinstance(error, ZoomRateLimited):
            await self._calls.rate_limited(error)
        if max_bytes is not None and response.status_code == 404 and not isinstance(error, ZoomAuthError):
            raise ZoomRecordingNotFound(
                error.status, error.code, error.message, method=error.method, path=error.path
            )
        raise error

    async def _request(
        self,
        method: str,
        url: str,
        *,
        path: str,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        explicit_token: str | None = None,
        max_bytes: int | None = None,
    ) -> httpx.Response:
        response: httpx.Response = await self._calls.call(
            lambda: self._attempt(method, url, path, params, body, explicit_token, max_bytes)
        )
        return response

    async def _request_json(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> Any:
        shown = _loggable_path(path)
        response = await self._request(method, self._base_url + path, path=shown, params=params, body=body)
        try:
            return response.json()
        except ValueError:
            raise ZoomError(
                response.status_code, None, "response body is not JSON", method=method, path=shown
            ) from None

    @staticmethod
    def _parse(model: type[_ModelT], data: Any, *, method: str, path: str) -> _ModelT:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise ZoomError(
                None,
                None,
                f"response does not match {model.__name__}: {exc.error_count()} problem(s)",
                method=method,
                path=_loggable_path(path),
            ) from None

    async def _call(
        self,
        model: type[_ModelT],
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> _ModelT:
        data = await self._request_json(method, path, params=params, body=body)
        return self._parse(model, data, method=method, path=path)

    async def _paged(
        self,
        model: type[_ModelT],
        path: str,
        key: str,
        *,
        page_size: int,
        params: Mapping[str, str] | None = None,
    ) -> list[_ModelT]:
        """Every item under `key` of every page, following `next_page_token` until it is empty."""
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        adapter = TypeAdapter(list[model])  # type: ignore[valid-type]
        items: list[_ModelT] = []
        seen: set[str] = set()
        next_token: str | None = None
        while True:
            query = {"page_size": str(page_size), **(params or {})}
            if next_token is not None:
                query["next_page_token"] = next_token
            data = await self._request_json("GET", path, params=query)
            if not isinstance(data, dict):
                raise ZoomError(
                    None, None, "page is not a JSON object", method="GET", path=_loggable_path(path)
                )
            try:
                page: list[_ModelT] = adapter.validate_python(data.get(key) or [])
            except ValidationError as exc:
                raise ZoomError(
                    None,
                    None,
                    f"page does not match {model.__name__}: {exc.error_count()} problem(s)",
                    method="GET",
                    path=_loggable_path(path),
                ) from None
            items.extend(page)
            raw_token = data.get("next_page_token")
            next_token = raw_token if isinstance(raw_token, str) and raw_token else None
            if next_token is None:
                return items
            if next_token in seen:  # a token that does not move would loop forever
                raise ZoomError(None, None, "paging token repeated", method="GET", path=_loggable_path(path))
            seen.add(next_token)

    # --- webinars -------------------------------------------------------------------------------

    async def get_webinar(self, webinar_id: str) -> ZoomWebinar:
        """`GET /webinars/{id}` (id or uuid)."""
        return await self._call(ZoomWebinar, "GET", f"/webinars/{webinar_path_id(webinar_id)}")

    async def get_registration_questions(self, webinar_id: str) -> RegistrationQuestions:
        path = f"/webinars/{webinar_path_id(webinar_id)}/registrants/questions"
        return await self._call(RegistrationQuestions, "GET", path)

    async def list_webinars(
        self, user_id: str, *, page_size: int = DEFAULT_PAGE_SIZE
    ) -> list[WebinarSummary]:
        """Every webinar of a host (`GET /users/{userId}/webinars`), all pages."""
        path = f"/users/{_segment(user_id)}/webinars"
        return await self._paged(WebinarSummary, path, "webinars", page_size=page_size)

    # --- registrants ----------------------------------------------------------------------------

    async def add_registrant(
        self, webinar_id: str, *, email: str, first_name: str, last_name: str | None
    ) -> RegistrantCreated:
        """Register someone (`POST /webinars/{id}/registrants`). Zoom answers 201.

        Not idempotent on Zoom's side beyond returning the same registrant for the same email, and
        Zoom allows only 3 registration requests a day per registrant and webinar.
        """
        body: JsonBody = {"email": email, "first_name": first_name}
        if last_name:
            body["last_name"] = last_name
        path = f"/webinars/{webinar_path_id(webinar_id)}/registrants"
        return await self._call(RegistrantCreated, "POST", path, body=body)

    async def list_registrants(
        self, webinar_id: str, *, status: str = "approved", page_size: int = DEFAULT_PAGE_SIZE
    ) -> list[Registrant]:
        """Registrants with `status` (approved | pending | denied), all pages."""
        path = f"/webinars/{webinar_path_id(webinar_id)}/registrants"
        return await self._paged(
            Registrant, path, "registrants", page_size=page_size, params={"status": status}
        )

    # --- attendance -----------------------------------------------------------------------------

    async def list_participants(
        self,
        webinar_id: str,
        *,
        source: ParticipantSource = "past",
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> list[Participant]:
        """Participants of a past webinar (id: latest instance; uuid: that instance), all pages,
        with `registrant_id`. `source="report"` uses the report API (last 6 months, HEAVY limit)."""
        segment = webinar_path_id(webinar_id)
        if source == "past":
            path = f"/past_webinars/{segment}/participants"
        elif source == "report":
            path = f"/report/webinars/{segment}/participants"
        else:
            raise ValueError(f"unknown participant source {source!r}")
        return await self._paged(
            Participant,
            path,
            "participants",
            page_size=page_size,
            params={"include_fields": "registrant_id"},
        )

    # --- users ----------------------------------------------------------------------------------

    async def get_user(self, user_id: str) -> ZoomUser:
        """`GET /users/{userId}` (a user id or email; S2S apps cannot use `me`)."""
        return await self._call(ZoomUser, "GET", f"/users/{_segment(user_id)}")

    async def list_users(self, *, page_size: int = DEFAULT_PAGE_SIZE) -> list[ZoomUser]:
        """Active users of the account, all pages."""
        return await self._paged(ZoomUser, "/users", "users", page_size=page_size)

    # --- recordings -----------------------------------------------------------------------------

    async def get_recordings(self, meeting_id: str) -> Recordings:
        """Cloud recordings of a meeting or webinar (`GET /meetings/{id}/recordings`, id or uuid)."""
        return await self._call(Recordings, "GET", f"/meetings/{webinar_path_id(meeting_id)}/recordings")

    async def download(
        self, url: str, *, token: str | None = None, max_bytes: int = DEFAULT_DOWNLOAD_LIMIT
    ) -> bytes:
        """The body of an absolute download URL (e.g. a transcript's `download_url`), redirects
        followed, sent with `Authorization: Bearer <token>` (a webhook `download_token`, or
        `download_access_token`) or else an account token. 404 -> `ZoomRecordingNotFound`."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("download needs an absolute http(s) URL")
        shown = _loggable_path(parts.path or "/")  # the query may carry a token: never shown
        response = await self._request(
            "GET", url, path=shown, explicit_token=token or None, max_bytes=max_bytes
        )
        return response.content
