"""Connections (Zoom account ↔ HubSpot portal, CONTRACT.md §7): list, create, change, delete.

A connection made through the admin API carries its Zoom Server-to-Server app (the secret encrypted
with APP_SECRET_KEY) and may bring the portal's HubSpot token, stored encrypted in `hubspot_portal`
(app/delivery/hubspot_credentials.py reads it). The env-configured connection (ZOOM_ACCOUNT_ID +
HUBSPOT_PORTAL_ID, kept by app/bootstrap.py) is listed too, but only the environment changes it.
Nothing here ever hands a secret back: a view says only whether each one is set.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from app.admin.errors import AdminError, ConflictError, NotFound
from app.admin.portals import replan_webinars
from app.config import Settings
from app.db import utcnow
from app.models import AuthMode, Connection, HubSpotPortal, PortalSettings
from app.secret_box import SecretBox, SecretKeyMissing

Source = Literal["env", "api"]

ENV_CONNECTION = (
    "connection {id} is configured by the environment (ZOOM_ACCOUNT_ID, HUBSPOT_PORTAL_ID): change it there"
)


class UnknownConnection(NotFound):
    def __init__(self, connection_id: int) -> None:
        super().__init__(f"unknown connection {connection_id}")


class DuplicateConnection(ConflictError):
    def __init__(self, portal_id: int, account_id: str) -> None:
        super().__init__(f"HubSpot portal {portal_id} is already connected to Zoom account {account_id}")


class SecretsUnavailable(AdminError):
    """A secret was sent but cannot be stored encrypted (APP_SECRET_KEY unset): nothing is stored."""

    status_code = 503


@dataclass(frozen=True, slots=True)
class NewConnection:
    zoom_account_id: str
    hubspot_portal_id: int
    business_unit_id: int = 0
    primary: bool = True
    zoom_client_id: str | None = None
    zoom_client_secret: str | None = None
    hubspot_access_token: str | None = None
    hubspot_rate_limit_per_10s: int | None = None


@dataclass(frozen=True, slots=True)
class ConnectionView:
    """What the API shows of a connection: never a secret, only whether each is set."""

    id: int
    zoom_account_id: str
    hubspot_portal_id: int
    business_unit_id: int
    primary: bool
    source: Source
    zoom_client_id: str | None
    zoom_client_secret_set: bool
    hubspot_access_token_set: bool
    auth_mode: AuthMode
    needs_reinstall: bool
    hubspot_rate_limit_per_10s: int
    created_at: datetime
    updated_at: datetime


def is_env_connection(settings: Settings, conn: Connection) -> bool:
    return (
        settings.has_env_connection
        and conn.zoom_account_id == settings.zoom_account_id
        and conn.portal_id == settings.hubspot_portal_id
    )


def _auth_mode(settings: Settings, portal_id: int, portal: HubSpotPortal | None) -> AuthMode:
    """The portal row's mode; without a row, HUBSPOT_AUTH_MODE for the env portal, else static."""
    if portal is not None:
        return AuthMode(portal.auth_mode)
    return (
        AuthMode(settings.hubspot_auth_mode) if portal_id == settings.hubspot_portal_id else AuthMode.STATIC
    )


def _view(settings: Settings, conn: Connection, portal: HubSpotPortal | None) -> ConnectionView:
    if conn.id is None:
        raise RuntimeError("a connection is viewed only once it has an id (flushed)")
    from_env = is_env_connection(settings, conn)
    env_secret = bool(settings.zoom_client_secret and settings.zoom_client_secret.get_secret_value())
    env_token = bool(settings.hubspot_access_token and settings.hubspot_access_token.get_secret_value())
    stored_token = portal is not None and bool(portal.access_token)
    # The gateways fall back to the environment's credentials for the env account and portal.
    token_set = stored_token or (conn.portal_id == settings.hubspot_portal_id and env_token)
    return ConnectionView(
        id=conn.id,
        zoom_account_id=conn.zoom_account_id,
        hubspot_portal_id=conn.portal_id,
        business_unit_id=conn.business_unit_id,
        primary=conn.is_primary,
        source="env" if from_env else "api",
        zoom_client_id=conn.zoom_client_id or (settings.zoom_client_id if from_env else None),
        zoom_client_secret_set=bool(conn.zoom_client_secret) or (from_env and env_secret),
        hubspot_access_token_set=token_set,
        auth_mode=_auth_mode(settings, conn.portal_id, portal),
        needs_reinstall=portal.needs_reinstall if portal is not None else False,
        hubspot_rate_limit_per_10s=(
            portal.rate_limit_per_10s
            if portal is not None and portal.rate_limit_per_10s is not None
            else settings.hubspot_rate_limit_per_10s
        ),
        created_at=conn.created_at,
        updated_at=conn.updated_at,
    )


def list_connections(session: Session, settings: Settings) -> list[ConnectionView]:
    """Every connection, oldest first, with its portal's credential state."""
    conns = session.exec(select(Connection).order_by(col(Connection.id))).all()
    portal_ids = sorted({c.portal_id for c in conns})
    portals = {
        p.portal_id: p
        for p in session.exec(select(HubSpotPortal).where(col(HubSpotPortal.portal_id).in_(portal_ids))).all()
    }
    return [_view(settings, c, portals.get(c.portal_id)) for c in conns]


def _box(settings: Settings) -> SecretBox:
    try:
        return SecretBox.for_key(settings.app_secret_key)
    except SecretKeyMissing as exc:
        raise SecretsUnavailable(str(exc)) from None


def _store_portal(
    session: Session,
    settings: Settings,
    portal_id: int,
    token: str | None,
    rate_limit: int | None,
    *,
    reset: bool,
) -> HubSpotPortal | None:
    """Write the portal's token (static auth) and/or budget; make sure its settings row exists.

    `reset`: the budget was given explicitly (None = back to the default)."""
    now = utcnow()
    if session.get(PortalSettings, portal_id) is None:
        session.add(PortalSettings(portal_id=portal_id, updated_at=now))
    portal = session.get(HubSpotPortal, portal_id)
    if token is None and not reset:
        return portal
    if portal is None:
        portal = HubSpotPortal(portal_id=portal_id, updated_at=now)
    if token is not None:
        portal.access_token = _box(settings).encrypt(token)
        portal.auth_mode = AuthMode.STATIC
        portal.refresh_token = None
        portal.access_expires_at = None
        portal.token_version += 1  # other processes' cached clients are stale
        portal.needs_reinstall = False
        portal.reinstall_reason = None
        portal.installed_at = portal.installed_at or now
    if reset:
        portal.rate_limit_per_10s = rate_limit
    portal.updated_at = now
    session.add(portal)
    return portal


def create_connection(session: Session, settings: Settings, new: NewConnection) -> ConnectionView:
    """Connect a Zoom account to a portal; the account's webinars already known are planned again so
    their data reaches the new portal. DuplicateConnection when the pair exists, SecretsUnavailable
    when a secret was sent without APP_SECRET_KEY (nothing is stored then)."""
    existing = session.exec(
        select(Connection.id).where(
            Connection.portal_id == new.hubspot_portal_id, Connection.zoom_account_id == new.zoom_account_id
        )
    ).first()
    if existing is not None:
        raise DuplicateConnection(new.hubspot_portal_id, new.zoom_account_id)
    secrets = new.zoom_client_secret is not None or new.hubspot_access_token is not None
    box = _box(settings) if secrets else None  # refuse before anything is written
    now = utcnow()
    conn = Connection(
        portal_id=new.hubspot_portal_id,
        zoom_account_id=new.zoom_account_id,
        business_unit_id=new.business_unit_id,
        is_primary=new.primary,
        zoom_client_id=new.zoom_client_id,
        zoom_client_secret=(
            box.encrypt(new.zoom_client_secret)
            if box is not None and new.zoom_client_secret is not None
            else None
        ),
        created_at=now,
        updated_at=now,
    )
    session.add(conn)
    portal = _store_portal(
        session,
        settings,
        new.hubspot_portal_id,
        new.hubspot_access_token,
        new.hubspot_rate_limit_per_10s,
        reset=new.hubspot_rate_limit_per_10s is not None,
    )
    try:
        session.flush()
    except IntegrityError:
        # Another request made the same pair between the check and the insert.
        raise DuplicateConnection(new.hubspot_portal_id, new.zoom_account_id) from None
    replan_webinars(session, [new.zoom_account_id])
    return _view(settings, conn, portal)


def _editable(session: Session, settings: Settings, connection_id: int) -> Connection:
    conn = session.get(Connection, connection_id)
    if conn is None:
        raise UnknownConnection(connection_id)
    if is_env_connection(settings, conn):
        raise ConflictError(ENV_CONNECTION.format(id=connection_id))
    return conn


def update_connection(
    session: Session, settings: Settings, connection_id: int, changes: Mapping[str, Any]
) -> ConnectionView:
    """Apply `changes` (only the fields sent; `hubspot_rate_limit_per_10s: None` = the default)."""
    conn = _editable(session, settings, connection_id)
    secret = changes.get("zoom_client_secret")
    token = changes.get("hubspot_access_token")
    box = _box(settings) if secret is not None or token is not None else None
    if "business_unit_id" in changes:
        conn.business_unit_id = int(changes["business_unit_id"])
    if "primary" in changes:
        conn.is_primary = bool(changes["primary"])
    if "zoom_client_id" in changes:
        conn.zoom_client_id = changes["zoom_client_id"]
    if box is not None and secret is not None:
        conn.zoom_client_secret = box.encrypt(secret)
    conn.updated_at = utcnow()  # also tells the Zoom gateways which stored app is the newest
    session.add(conn)
    portal = _store_portal(
        session,
        settings,
        conn.portal_id,
        token,
        changes.get("hubspot_rate_limit_per_10s"),
        reset="hubspot_rate_limit_per_10s" in changes,
    )
    session.flush()
    return _view(settings, conn, portal)


def delete_connection(session: Session, settings: Settings, connection_id: int) -> None:
    """Remove the connection; the portal's data, settings and tokens stay (reconnecting resumes)."""
    conn = _editable(session, settings, connection_id)
    session.delete(conn)
    session.flush()
