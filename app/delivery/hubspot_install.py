"""What the OAuth install writes (CONTRACT.md §7): single-use states, the portal's tokens, its
settings row and connection, and the parked work it sets going again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.engine import Engine
from sqlmodel import col

from app.bootstrap import insert_ignoring_conflicts
from app.config import Settings
from app.db import unit_of_work
from app.integrations.hubspot.oauth import OAuthTokens
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
