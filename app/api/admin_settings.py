"""Admin API: portal settings (S1-S4) and Zoom user settings (S5)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from sqlmodel import Session, col, select

from app.api.deps import AdminAuth, AdminRoute, PortalId, ReadSessionDep, SessionDep, ZoomUserId
from app.api.schemas import PortalSettingsOut, PortalSettingsPatch, ZoomUserOut, ZoomUserPatch
from app.db import utcnow
from app.ingest.replan import enqueue_replan
from app.models import Connection, PortalSettings, Webinar, ZoomUser
from app.sync.inputs import load_settings

router = APIRouter(prefix="/api/v1", tags=["admin"], dependencies=[AdminAuth], route_class=AdminRoute)


def portal_account_ids(session: Session, portal_id: int) -> list[str]:
    """The Zoom accounts connected to a portal; 404 when the portal is unknown."""
    ids = session.exec(select(Connection.zoom_account_id).where(Connection.portal_id == portal_id)).all()
    if not ids:
        raise HTTPException(404, detail=f"unknown portal {portal_id}")
    return list(ids)


def read_portal_settings(session: Session, portal_id: int) -> PortalSettings:
    """The portal's settings, or the defaults while none are saved; never writes (for GETs).

    The defaults object is not added to the session: it is only read, and saving it is left to
    the first PATCH.
    """
    saved = session.get(PortalSettings, portal_id)
    return saved if saved is not None else PortalSettings(portal_id=portal_id)


def replan_webinars(session: Session, accounts: list[str], host_id: str | None = None) -> int:
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


def _settings_out(s: PortalSettings) -> PortalSettingsOut:
    return PortalSettingsOut.model_validate(s, from_attributes=True)


@router.get("/portals/{portal_id}/settings")
def get_settings(portal_id: PortalId, session: ReadSessionDep) -> PortalSettingsOut:
    portal_account_ids(session, portal_id)
    return _settings_out(read_portal_settings(session, portal_id))


@router.patch("/portals/{portal_id}/settings", responses={404: {}, 409: {}, 422: {}})
def patch_settings(portal_id: PortalId, patch: PortalSettingsPatch, session: SessionDep) -> PortalSettingsOut:
    accounts = portal_account_ids(session, portal_id)
    settings = load_settings(session, portal_id)
    changes = patch.model_dump(exclude_none=True)
    global_on = changes.get("global_sync_enabled", settings.global_sync_enabled)
    if changes.get("webinar_sync_enabled") is True and not global_on:
        raise HTTPException(409, detail="enable global sync first")
    for name, value in changes.items():
        setattr(settings, name, value)
    settings.updated_at = utcnow()
    session.add(settings)
    if changes:
        replan_webinars(session, accounts)
    session.flush()
    return _settings_out(settings)


@router.get("/portals/{portal_id}/zoom-users")
def list_zoom_users(portal_id: PortalId, session: ReadSessionDep) -> list[ZoomUserOut]:
    accounts = portal_account_ids(session, portal_id)
    users = session.exec(
        select(ZoomUser)
        .where(col(ZoomUser.zoom_account_id).in_(accounts))
        .order_by(col(ZoomUser.first_seen_at), col(ZoomUser.zoom_user_id))
    ).all()
    return [ZoomUserOut.model_validate(u, from_attributes=True) for u in users]


@router.patch("/portals/{portal_id}/zoom-users/{zoom_user_id}", responses={404: {}, 422: {}})
def patch_zoom_user(
    portal_id: PortalId, zoom_user_id: ZoomUserId, patch: ZoomUserPatch, session: SessionDep
) -> ZoomUserOut:
    accounts = portal_account_ids(session, portal_id)
    user = session.exec(
        select(ZoomUser).where(
            col(ZoomUser.zoom_account_id).in_(accounts), ZoomUser.zoom_user_id == zoom_user_id
        )
    ).first()
    if user is None:
        raise HTTPException(404, detail=f"unknown Zoom user {zoom_user_id} for portal {portal_id}")
    changes = patch.model_dump(exclude_none=True)
    for name, value in changes.items():
        setattr(user, name, value)
    user.updated_at = utcnow()
    session.add(user)
    if changes:
        replan_webinars(session, [user.zoom_account_id], host_id=user.zoom_user_id)
    session.flush()
    return ZoomUserOut.model_validate(user, from_attributes=True)
