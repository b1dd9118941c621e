"""What the OAuth install writes (CONTRACT.md §7): single-use states, the portal's tokens, its
settings row and connection, and the parked work it sets going again.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.engine import Engine
from sqlmodel import col

from app.bootstrap import insert_ignoring_conflicts
from app.config import Settings
from app.db import unit_of_work
from app.delivery.hubspot_gateway import HubSpotGateway
from app.integrations.hubspot import HubSpotError
from app.integrations.hubspot.oauth import OAuthTokens, authorize_url
from app.models import (
    AuthMode,
    Connection,
    HubSpotPortal,
    OAuthState,
    OutboxOp,
    OutboxState,
    PortalSettings,
)
from app.secret_box import SecretBox

log = logging.getLogger(__name__)

# States older than this past their expiry are deleted when a new one is issued.
_STATE_KEEP_AFTER_EXPIRY = timedelta(days=1)


def issue_state_nonce(engine: Engine, nonce: str, now: datetime, expires_at: datetime) -> None:
    with unit_of_work(engine) as session:
        session.execute(delete(OAuthState).where(col(OAuthState.expires_at) < now - _STATE_KEEP_AFTER_EXPIRY))
        session.add(OAuthState(nonce=nonce, created_at=now, expires_at=expires_at))


def consume_state_nonce(engine: Engine, nonce: str, now: datetime) -> bool:
    """True exactly once per issued, unexpired nonce: the DELETE's rowcount decides, so two
    callbacks racing with one state cannot both pass."""
    with unit_of_work(engine) as session:
        result = session.execute(
            delete(OAuthState).where(col(OAuthState.nonce) == nonce, col(OAuthState.expires_at) > now)
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class InstallRecord:
    portal_id: int
    token_version: int
    connection_created: bool
    resumed_ops: int


def record_install(
    engine: Engine,
    settings: Settings,
    *,
    portal_id: int,
    tokens: OAuthTokens,
    app_id: str | None,
    now: datetime,
) -> InstallRecord:
    """Store an install's tokens (encrypted, a new token version, no longer waiting for a re-install),
    make sure the portal has its settings row and, when ZOOM_ACCOUNT_ID is set and the portal has no
    connection yet, the env Zoom account's connection; then make parked work due now.

    SecretKeyMissing (before anything is written) when APP_SECRET_KEY is not set.
    """
    box = SecretBox.for_key(settings.app_secret_key)
    access, refresh = box.encrypt(tokens.access_token), box.encrypt(tokens.refresh_token)
    # Insert-or-ignore, then update: a concurrent install of the same portal cannot fail on the key.
    insert_ignoring_conflicts(
        engine,
        HubSpotPortal.__table__,  # type: ignore[attr-defined]
        HubSpotPortal(portal_id=portal_id, auth_mode=AuthMode.OAUTH, updated_at=now).model_dump(),
        ["portal_id"],
    )
    with unit_of_work(engine) as session:
        session.execute(
            update(HubSpotPortal)
            .where(col(HubSpotPortal.portal_id) == portal_id)
            .values(
                auth_mode=AuthMode.OAUTH,
                access_token=access,
                refresh_token=refresh,
                access_expires_at=now + timedelta(seconds=tokens.expires_in),
                token_version=col(HubSpotPortal.token_version) + 1,
                refresh_lease_until=None,
                needs_reinstall=False,
                reinstall_reason=None,
                installed_at=now,
                updated_at=now,
                **({"app_id": app_id} if app_id else {}),
            )
        )
        version = int(
            session.execute(
                select(col(HubSpotPortal.token_version)).where(col(HubSpotPortal.portal_id) == portal_id)
            ).scalar_one()
        )
    insert_ignoring_conflicts(
        engine,
        PortalSettings.__table__,  # type: ignore[attr-defined]
        PortalSettings(portal_id=portal_id, updated_at=now).model_dump(),
        ["portal_id"],
    )
    created = False
    if settings.zoom_account_id:
        with unit_of_work(engine) as session:
            existing = session.execute(
                select(func.count()).select_from(Connection).where(col(Connection.portal_id) == portal_id)
            ).scalar_one()
        if not existing:
            created = insert_ignoring_conflicts(
                engine,
                Connection.__table__,  # type: ignore[attr-defined]
                {
                    "portal_id": portal_id,
                    "zoom_account_id": settings.zoom_account_id,
                    "business_unit_id": 0,
                    "is_primary": True,
                    "created_at": now,
                    "updated_at": now,
                },
                ["portal_id", "zoom_account_id"],
            )
    return InstallRecord(portal_id, version, created, resume_parked_work(engine, portal_id, now))


def resume_parked_work(engine: Engine, portal_id: int, now: datetime) -> int:
    """Make the portal's pending operations due now (parked work waits up to 30 s between looks);
    nothing is counted or changed otherwise. Returns how many were waiting."""
    with unit_of_work(engine) as session:
        result = session.execute(
            update(OutboxOp)
            .where(
                col(OutboxOp.portal_id) == portal_id,
                col(OutboxOp.state) == OutboxState.PENDING,
                col(OutboxOp.next_attempt_at) > now,
            )
            .values(next_attempt_at=now)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]


def install_url(settings: Settings, *, redirect_uri: str, state: str) -> str:
    """Where the install link sends the customer: HubSpot's consent page with this app's scopes."""
    return authorize_url(
        settings.hubspot_oauth_authorize_url,
        client_id=settings.hubspot_client_id or "",
        redirect_uri=redirect_uri,
        state=state,
    )


class InstallRefused(Exception):
    """HubSpot did not give tokens for the code: `retryable` when it could not be asked (5xx, down)."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable


@dataclass(frozen=True)
class InstallOutcome:
    record: InstallRecord
    setup_problem: str | None  # None: HubSpot's set-up is done


async def complete_install(
    gateway: HubSpotGateway,
    engine: Engine,
    settings: Settings,
    *,
    code: str,
    redirect_uri: str,
    now: datetime,
) -> InstallOutcome:
    """Trade the callback's code for tokens, learn the portal (`hub_id`, else token info), store the
    install and run HubSpot's set-up best-effort (the sync retries it before sending anything)."""
    if gateway.oauth is None:
        raise InstallRefused("HUBSPOT_CLIENT_ID and HUBSPOT_CLIENT_SECRET are not set", retryable=False)
    try:
        tokens = await gateway.oauth.exchange_code(code, redirect_uri)
        hub_id, app_id = tokens.hub_id, None
        if hub_id is None:
            info = await gateway.oauth.token_info(tokens.access_token)
            hub_id, app_id = info.hub_id, str(info.app_id) if info.app_id is not None else None
    except HubSpotError as exc:
        log.warning(
            "HubSpot OAuth code exchange failed", extra={"status": exc.status, "category": exc.category}
        )
        raise InstallRefused(exc.message, retryable=exc.retryable) from None
    record = await asyncio.to_thread(
        record_install, engine, settings, portal_id=hub_id, tokens=tokens, app_id=app_id, now=now
    )
    gateway.forget(hub_id)
    log.info(
        "HubSpot portal installed",
        extra={
            "portal_id": hub_id,
            "connection_created": record.connection_created,
            "resumed": record.resumed_ops,
        },
    )
    return InstallOutcome(record, await _set_up(gateway, hub_id))


async def _set_up(gateway: HubSpotGateway, portal_id: int) -> str | None:
    client = gateway.client_for(portal_id)
    if client is None:
        return "no usable token"
    try:
        await gateway.setup_for(client, portal_id)
    except HubSpotError as exc:
        log.warning("HubSpot set-up after install failed", extra={"portal_id": portal_id})
        return exc.message
    return None
