"""A portal's connected Zoom accounts, its settings (S1-S4) and its Zoom users' settings (S5)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlmodel import Session, col, select

from app.admin.errors import ConflictError, UnknownPortal, UnknownZoomUser
from app.db import utcnow
from app.ingest.replan import enqueue_replan
from app.models import Connection, PortalSettings, Webinar, ZoomUser
from app.sync.inputs import load_settings


def portal_account_ids(session: Session, portal_id: int) -> list[str]:
    """The Zoom accounts connected to a portal; UnknownPortal when there are none."""
    ids = session.exec(select(Connection.zoom_account_id).where(Connection.portal_id == portal_id)).all()
    if not ids:
        raise UnknownPortal(portal_id)
    return list(ids)


def read_portal_settings(session: Session, portal_id: int) -> PortalSettings:
    """The portal's settings, or the defaults while none are saved; never writes (for GETs).

    The defaults object is not added to the session: it is only read, and saving it is left to
    the first PATCH.
    """
    saved = session.get(PortalSettings, portal_id)
    return saved if saved is not None else PortalSettings(portal_id=portal_id)


def replan_webinars(session: Session, accounts: Sequence[str], host_id: str | None = None) -> int:
    """Settings changed: every affected webinar is planned again, so what was skipped fills in."""
    query = select(Webinar.zoom_account_id, Webinar.webinar_id).where(
        col(Webinar.zoom_account_id).in_(accounts)
    )
    if host_id is not None:
        query = query.where(Webinar.host_id == host_id)
    keys = session.exec(query).all()
    for account_id, webinar_id in keys:
        enqueue_replan(session, account_id, webinar_id)
    return len(keys)


def update_portal_settings(session: Session, portal_id: int, changes: Mapping[str, Any]) -> PortalSettings:
    """Apply `changes` (field -> new value, only the fields sent) and re-plan the portal's webinars.

    ConflictError when webinar sync would be switched on while global sync stays off.
    """
    accounts = portal_account_ids(session, portal_id)
    settings = load_settings(session, portal_id)
    global_on = changes.get("global_sync_enabled", settings.global_sync_enabled)
    if changes.get("webinar_sync_enabled") is True and not global_on:
        raise ConflictError("enable global sync first")
    for name, value in changes.items():
        setattr(settings, name, value)
    settings.updated_at = utcnow()
    session.add(settings)
    if changes:
        replan_webinars(session, accounts)
    session.flush()
    return settings


def list_zoom_users(session: Session, portal_id: int) -> list[ZoomUser]:
    accounts = portal_account_ids(session, portal_id)
    users = session.exec(
        select(ZoomUser)
        .where(col(ZoomUser.zoom_account_id).in_(accounts))
        .order_by(col(ZoomUser.first_seen_at), col(ZoomUser.zoom_user_id))
    ).all()
    return list(users)


def update_zoom_user(
    session: Session, portal_id: int, zoom_user_id: str, changes: Mapping[str, Any]
) -> ZoomUser:
    """Apply `changes` to one of the portal's Zoom users and re-plan the webinars they host."""
    accounts = portal_account_ids(session, portal_id)
    user = session.exec(
        select(ZoomUser).where(
            col(ZoomUser.zoom_account_id).in_(accounts), ZoomUser.zoom_user_id == zoom_user_id
        )
    ).first()
    if user is None:
        raise UnknownZoomUser(portal_id, zoom_user_id)
    for name, value in changes.items():
        setattr(user, name, value)
    user.updated_at = utcnow()
    session.add(user)
    if changes:
        replan_webinars(session, [user.zoom_account_id], host_id=user.zoom_user_id)
    session.flush()
    return user
