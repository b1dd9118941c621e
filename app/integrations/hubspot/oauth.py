"""HubSpot's OAuth endpoints: the install link, code exchange, refresh and token info.

The token routes take form bodies at `{HUBSPOT_API_BASE_URL}/oauth/2026-03/token`; `/oauth/v1/token`
(deprecated on 2027-02-16) is the fallback when the dated route answers 404, and the client remembers
which worked. Nothing here knows the database: the delivery layer stores what comes back.

Tokens, codes and the client secret travel only in request bodies (never in a path, a log line or an
exception); the one route with a token in its path (`token_info`) names it `[token]` in errors.
"""

from __future__ import annotations

import logging
from typing import TypeVar
from urllib.parse import urlencode

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from app.integrations.hubspot.errors import (
    HubSpotAuthError,
    HubSpotError,
    HubSpotUnavailable,
    error_from_response,
)
from app.integrations.hubspot.scopes import OPTIONAL_SCOPES, REQUIRED_SCOPES

log = logging.getLogger(__name__)

DATED_TOKEN_PATH = "/oauth/2026-03/token"  # noqa: S105 (a route, not a secret)
LEGACY_TOKEN_PATH = "/oauth/v1/token"  # noqa: S105
TOKEN_INFO_PATH = "/oauth/v1/access-tokens/{token}"  # noqa: S105

_ModelT = TypeVar("_ModelT", bound=BaseModel)

# What the install link asks for: the project's table (scopes.py). Required scopes must all be granted
# or HubSpot refuses the install; optional ones only turn a feature off when the account cannot grant them.
OAUTH_SCOPES: tuple[str, ...] = REQUIRED_SCOPES
OPTIONAL_OAUTH_SCOPES: tuple[str, ...] = OPTIONAL_SCOPES


class HubSpotRefreshRefused(HubSpotAuthError):
    """HubSpot refused the refresh token (400 invalid_grant / BAD_REFRESH_TOKEN, or 401): the app
    was uninstalled or the token revoked. Only a new install helps; the portal's work waits for it
    (hence retryable: the same work succeeds after the re-install)."""

    retryable = True


class OAuthTokens(BaseModel):
    """The token route's answer. `hub_id` is the portal; older answers may lack it (`token_info`)."""

    model_config = ConfigDict(extra="ignore")

    access_token: str
    refresh_token: str
    expires_in: int
    hub_id: int | None = None
    token_type: str | None = None

    def __repr__(self) -> str:  # never show the tokens, even in a debugger or a failed assert
        return f"OAuthTokens(hub_id={self.hub_id!r}, expires_in={self.expires_in!r})"

    __str__ = __repr__


class TokenInfo(BaseModel):
    """`GET /oauth/v1/access-tokens/{token}`: which portal and app a token belongs to."""

    model_config = ConfigDict(extra="ignore")

    hub_id: int
    app_id: int | None = None
    scopes: list[str] = []
    expires_in: int | None = None


def authorize_url(
    base_url: str,
    *,
    client_id: str,
    redirect_uri: str,
    state: str,
    scopes: tuple[str, ...] = OAUTH_SCOPES,
    optional_scopes: tuple[str, ...] = OPTIONAL_OAUTH_SCOPES,
) -> str:
    """The link that sends the customer to HubSpot's consent page (scopes space-separated)."""
    query = {"client_id": client_id, "redirect_uri": redirect_uri, "scope": " ".join(scopes)}
    if optional_scopes:
        query["optional_scope"] = " ".join(optional_scopes)
    query["state"] = state
    return f"{base_url}?{urlencode(query)}"


def _is_refused_refresh(status: int, body: bytes) -> bool:
    if status == 401:
        return True
    if status != 400:
        return False
    text = body.decode("utf-8", errors="replace")
    return "invalid_grant" in text or "BAD_REFRESH_TOKEN" in text


class HubSpotOAuthClient:
    """One app's OAuth calls on the process's shared `httpx.AsyncClient` (owned by the caller).

    One attempt per call: a 5xx or a transport failure raises a retryable error and the caller tries
    again later (a refresh is retried by the next request that needs the token).
    """

    def __init__(self, http: httpx.AsyncClient, *, base_url: str, client_id: str, client_secret: str) -> None:
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._client_id = client_id
        self._client_secret = client_secret
        # The dated route until it answers 404, then the legacy one for the life of the process.
        self.token_path = DATED_TOKEN_PATH

    def __repr__(self) -> str:
        return f"HubSpotOAuthClient(base_url={self._base_url!r}, token_path={self.token_path!r})"

    async def exchange_code(self, code: str, redirect_uri: str) -> OAuthTokens:
        """Trade the callback's `code` for tokens (a used or unknown code: HubSpotValidationError)."""
        form = {
            "grant_type": "authorization_code",
            "client_id": self._client_id,
            "client_secret": self._client_secret,
            "redirect_uri": redirect_uri,
            "code": code,
        }
        return await self._token(form, secrets=(code,), refresh=False)

    async def refresh(self, refresh_token: str) -> OAuthTokens:
        """A new access token (and refresh token); HubSpotRefreshRefused when HubSpot says no."""
        form = {
            "grant_type": "refresh_token",
            "client_id": self._client_id,
            "client_secret": self._client_secret,
            "refresh_token": refresh_token,
        }
        return await self._token(form, secrets=(refresh_token,), refresh=True)

    async def token_info(self, access_token: str) -> TokenInfo:
        """The portal (`hub_id`) and app of an access token."""
        shown = TOKEN_INFO_PATH.format(token="[token]")  # noqa: S106 (a placeholder)
        response = await self._send("GET", TOKEN_INFO_PATH.format(token=access_token), shown)
        if not response.is_success:
            raise self._error(response, "GET", shown, (access_token,))
        return self._parse(TokenInfo, response, "GET", shown)

    # --- plumbing -------------------------------------------------------------------------------

    async def _token(self, form: dict[str, str], *, secrets: tuple[str, ...], refresh: bool) -> OAuthTokens:
        path = self.token_path
        response = await self._send("POST", path, path, form)
        if response.status_code == 404 and path == DATED_TOKEN_PATH:
            log.info("HubSpot's dated token route answered 404; using %s", LEGACY_TOKEN_PATH)
            path = LEGACY_TOKEN_PATH
            response = await self._send("POST", path, path, form)
            if response.status_code != 404:
                self.token_path = path
        if response.is_success:
            return self._parse(OAuthTokens, response, "POST", path)
        every_secret = (*secrets, self._client_secret)
        if refresh and _is_refused_refresh(response.status_code, response.content):
            plain = self._error(response, "POST", path, every_secret)
            raise HubSpotRefreshRefused(
                response.status_code,
                plain.category or "BAD_REFRESH_TOKEN",
                plain.message,
                method="POST",
                path=path,
            )
        raise self._error(response, "POST", path, every_secret)

    async def _send(
        self, method: str, url_path: str, shown: str, form: dict[str, str] | None = None
    ) -> httpx.Response:
        try:
            return await self._http.request(
                method, self._base_url + url_path, data=form, headers={"Accept": "application/json"}
            )
        except httpx.TransportError as exc:
            raise HubSpotUnavailable(
                None, "TRANSPORT_ERROR", type(exc).__name__, method=method, path=shown
            ) from None

    @staticmethod
    def _error(response: httpx.Response, method: str, shown: str, secrets: tuple[str, ...]) -> HubSpotError:
        body = response.content
        for secret in secrets:  # HubSpot may echo what it got; none of it may reach a log line
            if secret:
                body = body.replace(secret.encode(), b"[redacted]")
        return error_from_response(response.status_code, body, method=method, path=shown)

    @staticmethod
    def _parse(model: type[_ModelT], response: httpx.Response, method: str, shown: str) -> _ModelT:
        try:
            return model.model_validate(response.json())
        except (ValueError, ValidationError):
            # Say what is wrong without echoing the body: it may hold tokens.
            raise HubSpotError(
                response.status_code,
                "UNEXPECTED_RESPONSE",
                f"response is not a valid {model.__name__}",
                method=method,
                path=shown,
            ) from None
