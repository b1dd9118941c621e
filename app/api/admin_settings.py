"""Admin API: portal settings (S1-S4) and Zoom user settings (S5)."""

from __future__ import annotations

from fastapi import APIRouter

from app.admin import portals
from app.api.deps import AdminAuth, AdminRoute, PortalId, ReadSessionDep, UnitOfWorkDep, ZoomUserId
from app.api.schemas import PortalSettingsOut, PortalSettingsPatch, ZoomUserOut, ZoomUserPatch

router = APIRouter(prefix="/api/v1", tags=["admin"], dependencies=[AdminAuth], route_class=AdminRoute)


@router.get("/portals/{portal_id}/settings")
def get_settings(portal_id: PortalId, session: ReadSessionDep) -> PortalSettingsOut:
    portals.portal_account_ids(session, portal_id)
    settings = portals.read_portal_settings(session, portal_id)
    return PortalSettingsOut.model_validate(settings, from_attributes=True)


@router.patch("/portals/{portal_id}/settings", responses={404: {}, 409: {}, 422: {}})
def patch_settings(portal_id: PortalId, patch: PortalSettingsPatch, uow: UnitOfWorkDep) -> PortalSettingsOut:
    settings = portals.update_portal_settings(uow.session, portal_id, patch.model_dump(exclude_none=True))
    return PortalSettingsOut.model_validate(settings, from_attributes=True)


@router.get("/portals/{portal_id}/zoom-users")
def list_zoom_users(portal_id: PortalId, session: ReadSessionDep) -> list[ZoomUserOut]:
    users = portals.list_zoom_users(session, portal_id)
    return [ZoomUserOut.model_validate(u, from_attributes=True) for u in users]


@router.patch("/portals/{portal_id}/zoom-users/{zoom_user_id}", responses={404: {}, 422: {}})
def patch_zoom_user(
    portal_id: PortalId, zoom_user_id: ZoomUserId, patch: ZoomUserPatch, uow: UnitOfWorkDep
) -> ZoomUserOut:
    changes = patch.model_dump(exclude_none=True)
    user = portals.update_zoom_user(uow.session, portal_id, zoom_user_id, changes)
    return ZoomUserOut.model_validate(user, from_attributes=True)
