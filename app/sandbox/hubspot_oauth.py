"""The fake HubSpot's OAuth server: authorization codes, expiring access tokens, refresh tokens,
uninstalls (routes in :mod:`app.sandbox.hubspot_routes_oauth`).

Behaviour chosen where HubSpot's is not documented (see ``reference/hubspot-platform.md`` §7):

* A refresh answers a new access token and the same refresh token (HubSpot's are long-lived).
* An uninstall revokes every refresh and access token of the portal at once.
* Refused grants answer 400 with ``{"status": "BAD_REFRESH_TOKEN" | "BAD_AUTH_CODE" |
  "BAD_CLIENT_ID" | ..., "error": "invalid_grant" | "invalid_client", "message"}``: the legacy
  route's ``status`` field and the OAuth standard's ``error`` in one body.
* Tokens expire by this server's own clock (the process's monotonic clock plus an offset the control
  API advances), so a test can make every token expire without waiting.
"""

from __future__ import annotations

import secrets
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from app.sandbox.hubspot_common import new_uuid

JSON = dict[str, Any]

DEFAULT_CLIENT_ID = "sandbox-oauth-client-id"
DEFAULT_CLIENT_SECRET = "sandbox-oauth-client-secret"  # noqa: S105 - a fake app's well-known default
CODE_TTL_S = 600.0


class OAuthRefusal(Exception):
    """A refused token request: rendered as HubSpot's OAuth error JSON."""

    def __init__(self, status_code: int, status: str, error: str, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.status = status
        self.error = error
        self.message = message

    def body(self) -> JSON:
        return {
            "status": self.status,
            "error": self.error,
            "error_description": self.message,
            "message": self.message,
            "correlationId": new_uuid(),
        }


@dataclass
class OAuthSettings:
    """What the control API can change (``POST /_sandbox/oauth/settings``)."""

    # The portal the next authorization installs into (None: the sandbox's default portal).
    install_portal: int | None = None
    access_ttl_s: float = 1800.0
    # Faults: the 2026-03 token route answers 404 (as before it existed); the token routes answer
    # 503; token answers leave out `hub_id` (the client must ask the token-info route).
    dated_token_route_gone: bool = False
    token_route_down: bool = False
    omit_hub_id: bool = False

    def to_json(self) -> JSON:
        return {
            "install_portal": self.install_portal,
            "access_ttl_s": self.access_ttl_s,
            "dated_token_route_gone": self.dated_token_route_gone,
            "token_route_down": self.token_route_down,
            "omit_hub_id": self.omit_hub_id,
        }


@dataclass
class _Code:
    portal_id: int
    redirect_uri: str
    expires_at: float
    scopes: list[str]


@dataclass
class _Access:
    portal_id: int
    expires_at: float


@dataclass
class OAuthServer:
    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = DEFAULT_CLIENT_SECRET
    app_id: str = "1001"
    clock: Callable[[], float] = time.monotonic
    initial: OAuthSettings = field(default_factory=OAuthSettings)
    settings: OAuthSettings = field(init=False)
    offset_s: float = field(init=False, default=0.0)
    codes: dict[str, _Code] = field(init=False, default_factory=dict)
    access: dict[str, _Access] = field(init=False, default_factory=dict)
    refresh: dict[str, int] = field(init=False, default_factory=dict)
    # Token requests per grant and route ("refresh_token /oauth/2026-03/token"), refusals per status.
    requests: Counter[str] = field(init=False, default_factory=Counter)
    refused: Counter[str] = field(init=False, default_factory=Counter)
    last_scopes: list[str] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.settings = OAuthSettings(**self.initial.to_json())
        self.offset_s = 0.0
        self.codes, self.access, self.refresh = {}, {}, {}
        self.requests, self.refused = Counter(), Counter()
        self.last_scopes = []

    def now(self) -> float:
        return self.clock() + self.offset_s

    def advance(self, seconds: float) -> None:
        """Move this server's clock on: tokens that would expire meanwhile have expired."""
        self.offset_s += seconds

    def update(self, values: Mapping[str, Any]) -> JSON:
        for name, value in values.items():
            if value is not None and hasattr(self.settings, name):
                setattr(self.settings, name, value)
        return self.settings.to_json()

    # ---- authorize --------------------------------------------------------------------------------

    def authorize(self, client_id: str, redirect_uri: str, scope: str, portal_id: int) -> str:
        """A code for `portal_id`, redeemable once with the same redirect URI."""
        if client_id != self.client_id:
            raise OAuthRefusal(400, "BAD_CLIENT_ID", "invalid_client", "Unknown client_id.")
        scopes = scope.split()
        if "oauth" not in scopes:
            raise OAuthRefusal(400, "BAD_SCOPE", "invalid_scope", "The scope must include oauth.")
        code = "code-" + secrets.token_urlsafe(16)
        self.codes[code] = _Code(portal_id, redirect_uri, self.now() + CODE_TTL_S, scopes)
        self.last_scopes = scopes
        return code

    # ---- token routes -------------------------------------------------------------------------------

    def token(self, form: Mapping[str, str], route: str) -> JSON:
        grant = form.get("grant_type", "")
        self.requests[f"{grant} {route}"] += 1
        try:
            if form.get("client_id") != self.client_id:
                raise OAuthRefusal(400, "BAD_CLIENT_ID", "invalid_client", "Unknown client_id.")
            if form.get("client_secret") != self.client_secret:
                raise OAuthRefusal(400, "BAD_CLIENT_SECRET", "invalid_client", "The client secret is wrong.")
            if grant == "authorization_code":
                return self._redeem_code(form)
            if grant == "refresh_token":
                return self._refresh(form)
            raise OAuthRefusal(
                400, "BAD_GRANT_TYPE", "unsupported_grant_type", f"Unknown grant_type {grant!r}."
            )
        except OAuthRefusal as refusal:
            self.refused[refusal.status] += 1
            raise

    def _redeem_code(self, form: Mapping[str, str]) -> JSON:
        code = self.codes.pop(form.get("code", ""), None)  # used once, even when refused below
        if code is None or code.expires_at <= self.now():
            raise OAuthRefusal(400, "BAD_AUTH_CODE", "invalid_grant", "The code is unknown, used or expired.")
        if form.get("redirect_uri") != code.redirect_uri:
            raise OAuthRefusal(400, "BAD_REDIRECT_URI", "invalid_grant", "redirect_uri does not match.")
        refresh = "refresh-" + secrets.token_urlsafe(24)
        self.refresh[refresh] = code.portal_id
        return self._issue(code.portal_id, refresh)

    def _refresh(self, form: Mapping[str, str]) -> JSON:
        refresh = form.get("refresh_token", "")
        portal_id = self.refresh.get(refresh)
        if portal_id is None:
            raise OAuthRefusal(400, "BAD_REFRESH_TOKEN", "invalid_grant", "missing or unknown refresh token")
        return self._issue(portal_id, refresh)

    def _issue(self, portal_id: int, refresh: str) -> JSON:
        access = "access-" + secrets.token_urlsafe(24)
        ttl = self.settings.access_ttl_s
        self.access[access] = _Access(portal_id, self.now() + ttl)
        body: JSON = {
            "token_type": "bearer",
            "access_token": access,
            "refresh_token": refresh,
            "expires_in": int(ttl),
        }
        if not self.settings.omit_hub_id:
            body["hub_id"] = portal_id
        return body

    # ---- what the API gate and the token-info route ask -----------------------------------------------

    def portal_for(self, token: str) -> int | None:
        """The portal of a live access token; None when unknown, revoked or expired."""
        found = self.access.get(token)
        if found is None or found.expires_at <= self.now():
            return None
        return found.portal_id

    def info(self, token: str) -> JSON | None:
        found = self.access.get(token)
        if found is None or found.expires_at <= self.now():
            return None
        return {
            "token": token,
            "hub_id": found.portal_id,
            "app_id": int(self.app_id) if self.app_id.isdigit() else self.app_id,
            "scopes": list(self.last_scopes),
            "expires_in": int(found.expires_at - self.now()),
            "token_type": "access",
        }

    def uninstall(self, portal_id: int) -> JSON:
        """The customer uninstalled the app: every token of the portal stops working."""
        refresh = [t for t, p in self.refresh.items() if p == portal_id]
        access = [t for t, a in self.access.items() if a.portal_id == portal_id]
        for token in refresh:
            del self.refresh[token]
        for token in access:
            del self.access[token]
        return {
            "portal": portal_id,
            "revoked_refresh_tokens": len(refresh),
            "revoked_access_tokens": len(access),
        }

    def snapshot(self) -> JSON:
        """Counts only: the control API never hands out tokens."""
        now = self.now()
        live: Counter[int] = Counter(a.portal_id for a in self.access.values() if a.expires_at > now)
        return {
            "settings": self.settings.to_json(),
            "clock_offset_s": self.offset_s,
            "live_access_tokens": {str(p): n for p, n in sorted(live.items())},
            "refresh_tokens": len(self.refresh),
            "requests": dict(sorted(self.requests.items())),
            "refused": dict(sorted(self.refused.items())),
            "last_scopes": list(self.last_scopes),
        }
