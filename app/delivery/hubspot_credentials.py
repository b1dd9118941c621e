"""A portal's HubSpot credentials as stored in `hubspot_portal` (encrypted with APP_SECRET_KEY), and
the token source of OAuth portals: the stored access token while it has time left, else one refresh
at a time across every process that shares the database.

The refresh lease is one compare-and-set UPDATE of `refresh_lease_until` (NULL or past → now + lease):
whoever's UPDATE changed the row refreshes, stores the new tokens with `token_version + 1` and clears
the lease; the others wait briefly and read what it stored. HubSpot refusing the refresh token (the app
was uninstalled) marks the portal `needs_reinstall`: its work is parked until a new install. An outage
leaves everything as it is (the next request tries again).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, update
from sqlalchemy.engine import Engine
from sqlmodel import col

from app.config import Settings
from app.db import unit_of_work, utcnow
from app.integrations.hubspot.errors import HubSpotUnavailable
from app.integrations.hubspot.oauth import HubSpotOAuthClient, HubSpotRefreshRefused, OAuthTokens
from app.models import AuthMode, HubSpotPortal
from app.secret_box import SecretBox

log = logging.getLogger(__name__)

# An access token with less than this left is refreshed before use (HubSpot's live 30 minutes).
REFRESH_MARGIN_S = 300.0
# How long a refresh may hold the lease: a process that died mid-refresh blocks others this long.
REFRESH_LEASE_S = 30.0
# A process that did not get the lease re-reads this often, this long, before giving up for now.
LEASE_POLL_S = 0.1
LEASE_WAIT_MAX_S = 10.0
# A fresh token is trusted this long before the database is read again (another process may have
# refreshed it, or the portal may have been re-installed).
TOKEN_RECHECK_S = 5.0
_REASON_MAX = 300


def stored_access_token(engine: Engine, settings: Settings, portal_id: int) -> str | None:
    """The portal's stored access token, decrypted; None when none is stored or the portal waits
    for a re-install (its work is parked). A stored token without APP_SECRET_KEY (or with another
    key) raises the secret box's clear error rather than falling back to another token."""
    with unit_of_work(engine) as session:
        row = session.get(HubSpotPortal, portal_id)
        if row is None or row.needs_reinstall or not row.access_token:
            return None
        stored = row.access_token
    return SecretBox.for_key(settings.app_secret_key).decrypt(stored)


@dataclass(frozen=True)
class PortalAuth:
    """How a portal authenticates, without its secrets (nothing decrypted)."""

    auth_mode: AuthMode
    needs_reinstall: bool
    has_token: bool


def portal_auth(engine: Engine, portal_id: int) -> PortalAuth | None:
    """The portal's row as far as choosing a client goes; None when the portal has no row."""
    with unit_of_work(engine) as session:
        row = session.get(HubSpotPortal, portal_id)
        if row is None:
            return None
        return PortalAuth(AuthMode(row.auth_mode), row.needs_reinstall, bool(row.access_token))


@dataclass(frozen=True)
class StoredTokens:
    """An OAuth portal's tokens, decrypted. Never logged: the repr hides them."""

    access_token: str
    refresh_token: str | None
    expires_at: datetime | None
    version: int
    needs_reinstall: bool
    reinstall_reason: str | None

    def __repr__(self) -> str:
        return f"StoredTokens(version={self.version!r}, expires_at={self.expires_at!r})"

    def usable_at(self, now: datetime, margin_s: float) -> bool:
        """Whether the access token has more than `margin_s` left (no expiry known: it has)."""
        return self.expires_at is None or self.expires_at - now > timedelta(seconds=margin_s)


def read_tokens(engine: Engine, settings: Settings, portal_id: int) -> StoredTokens | None:
    """The portal's stored tokens, decrypted; None without a row or an access token."""
    with unit_of_work(engine) as session:
        row = session.get(HubSpotPortal, portal_id)
        if row is None or not row.access_token:
            return None
        access, refresh = row.access_token, row.refresh_token
        expires_at, version = row.access_expires_at, row.token_version
        needs_reinstall, reason = row.needs_reinstall, row.reinstall_reason
    box = SecretBox.for_key(settings.app_secret_key)
    return StoredTokens(
        access_token=box.decrypt(access),
        refresh_token=box.decrypt(refresh) if refresh else None,
        expires_at=expires_at,
        version=version,
        needs_reinstall=needs_reinstall,
        reinstall_reason=reason,
    )


def take_refresh_lease(
    engine: Engine, portal_id: int, now: datetime, lease_s: float = REFRESH_LEASE_S
) -> bool:
    """Compare-and-set: True when this caller now holds the portal's refresh lease."""
    with unit_of_work(engine) as session:
        result = session.execute(
            update(HubSpotPortal)
            .where(
                col(HubSpotPortal.portal_id) == portal_id,
                or_(
                    col(HubSpotPortal.refresh_lease_until).is_(None),
                    col(HubSpotPortal.refresh_lease_until) < now,
                ),
            )
            .values(refresh_lease_until=now + timedelta(seconds=lease_s))
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def release_refresh_lease(engine: Engine, portal_id: int) -> None:
    with unit_of_work(engine) as session:
        session.execute(
            update(HubSpotPortal)
            .where(col(HubSpotPortal.portal_id) == portal_id)
            .values(refresh_lease_until=None)
        )


def save_refreshed(
    engine: Engine, settings: Settings, portal_id: int, tokens: OAuthTokens, now: datetime
) -> None:
    """Store a refresh's answer (a new token version) and free the lease."""
    box = SecretBox.for_key(settings.app_secret_key)
    with unit_of_work(engine) as session:
        session.execute(
            update(HubSpotPortal)
            .where(col(HubSpotPortal.portal_id) == portal_id)
            .values(
                access_token=box.encrypt(tokens.access_token),
                refresh_token=box.encrypt(tokens.refresh_token),
                access_expires_at=now + timedelta(seconds=tokens.expires_in),
                token_version=col(HubSpotPortal.token_version) + 1,
                refresh_lease_until=None,
                updated_at=now,
            )
        )


def mark_needs_reinstall(engine: Engine, portal_id: int, reason: str, *, seen_version: int) -> bool:
    """Park the portal's work until a new install. Only the token version the refusal was about
    (a re-install meanwhile stored a newer one, which must not be parked). True when marked."""
    with unit_of_work(engine) as session:
        result = session.execute(
            update(HubSpotPortal)
            .where(
                col(HubSpotPortal.portal_id) == portal_id, col(HubSpotPortal.token_version) == seen_version
            )
            .values(
                needs_reinstall=True,
                reinstall_reason=reason[:_REASON_MAX],
                refresh_lease_until=None,
                updated_at=utcnow(),
            )
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def _reinstall_error(reason: str | None) -> HubSpotRefreshRefused:
    return HubSpotRefreshRefused(
        None, "REINSTALL_NEEDED", reason or "the HubSpot app must be installed again"
    )


class OAuthTokenSource:
    """The bearer token of one OAuth portal (a `TokenSource` of the HubSpot client).

    Hands out the stored access token while it has more than `margin_s` left; else (or when HubSpot
    answered 401 to it) refreshes it under the cross-process lease. Raises HubSpotRefreshRefused when
    the portal waits for a re-install, a retryable HubSpotError during an outage.
    """

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        portal_id: int,
        oauth: HubSpotOAuthClient | None,
        *,
        margin_s: float = REFRESH_MARGIN_S,
        lease_s: float = REFRESH_LEASE_S,
        poll_s: float = LEASE_POLL_S,
        wait_max_s: float = LEASE_WAIT_MAX_S,
        recheck_s: float | None = None,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.portal_id = portal_id
        self.oauth = oauth
        self.margin_s = margin_s
        self.lease_s = lease_s
        self.poll_s = poll_s
        self.wait_max_s = wait_max_s
        self.recheck_s = TOKEN_RECHECK_S if recheck_s is None else recheck_s
        self.now = now
        self._cached: StoredTokens | None = None
        self._read_at = 0.0
        # One refresh at a time within this process too (the lease covers the others).
        self._lock = asyncio.Lock()
        self.refreshes = 0  # done by this source (tests, benchmarks)

    def __repr__(self) -> str:
        return f"OAuthTokenSource(portal_id={self.portal_id!r})"

    def forget(self) -> None:
        """Read the database on the next call (the portal was just re-installed)."""
        self._cached = None

    async def __call__(self, refused: str | None = None) -> str:
        cached = self._cached
        if (
            cached is not None
            and refused is None
            and time.monotonic() - self._read_at < self.recheck_s
            and cached.usable_at(self.now(), self.margin_s)
        ):
            return cached.access_token
        async with self._lock:
            current = await self._read()
            if current.usable_at(self.now(), self.margin_s) and current.access_token != refused:
                return current.access_token
            return await self._refresh(current, refused)

    async def _read(self) -> StoredTokens:
        tokens = await asyncio.to_thread(read_tokens, self.engine, self.settings, self.portal_id)
        if tokens is None:
            self._cached = None
            raise _reinstall_error("no HubSpot token is stored for this portal: install the app")
        if tokens.needs_reinstall:
            self._cached = None
            raise _reinstall_error(tokens.reinstall_reason)
        self._cached, self._read_at = tokens, time.monotonic()
        return tokens

    def _newer(self, tokens: StoredTokens, seen: StoredTokens, refused: str | None) -> bool:
        """Another process refreshed since `seen`, and what it stored can be used."""
        return (
            tokens.version != seen.version
            and tokens.access_token != refused
            and tokens.usable_at(self.now(), min(self.margin_s, 1.0))
        )

    async def _refresh(self, seen: StoredTokens, refused: str | None) -> str:
        deadline = time.monotonic() + self.wait_max_s
        while True:
            if await asyncio.to_thread(
                take_refresh_lease, self.engine, self.portal_id, self.now(), self.lease_s
            ):
                return await self._refresh_holding_lease(seen, refused)
            await asyncio.sleep(self.poll_s)
            current = await self._read()
            if self._newer(current, seen, refused):
                return current.access_token
            if time.monotonic() > deadline:
                raise HubSpotUnavailable(
                    None,
                    "TOKEN_REFRESH_BUSY",
                    "another process is refreshing this portal's HubSpot token; trying again later",
                )

    async def _refresh_holding_lease(self, seen: StoredTokens, refused: str | None) -> str:
        try:
            # The lease may have been freed by a refresh that finished just now: use what it stored.
            current = await self._read()
            if self._newer(current, seen, refused):
                await asyncio.to_thread(release_refresh_lease, self.engine, self.portal_id)
                return current.access_token
            if self.oauth is None:
                raise HubSpotUnavailable(
                    None,
                    "OAUTH_NOT_CONFIGURED",
                    "HUBSPOT_CLIENT_ID and HUBSPOT_CLIENT_SECRET are needed to refresh "
                    "an OAuth portal's token",
                )
            if not current.refresh_token:
                raise HubSpotRefreshRefused(None, "NO_REFRESH_TOKEN", "no refresh token is stored")
            tokens = await self.oauth.refresh(current.refresh_token)
        except HubSpotRefreshRefused as exc:
            reason = (
                f"HubSpot refused the refresh token ({exc.status or '-'} {exc.category}): "
                "install the app again"
            )
            marked = await asyncio.to_thread(
                mark_needs_reinstall, self.engine, self.portal_id, reason, seen_version=seen.version
            )
            self._cached = None
            log.warning(
                "HubSpot refused the refresh token: the portal waits for a re-install",
                extra={"portal_id": self.portal_id, "marked": marked},
            )
            raise
        except BaseException:
            # An outage (or a cancellation): free the lease at once so the next try need not wait.
            await asyncio.to_thread(release_refresh_lease, self.engine, self.portal_id)
            raise
        await asyncio.to_thread(
            save_refreshed, self.engine, self.settings, self.portal_id, tokens, self.now()
        )
        self.refreshes += 1
        self._cached = None
        log.info("HubSpot access token refreshed", extra={"portal_id": self.portal_id})
        return tokens.access_token
