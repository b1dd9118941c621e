"""Admin API: connections between Zoom accounts and HubSpot portals (CONTRACT.md §7)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from app.admin import connections
from app.api.connection_schemas import ConnectionCreate, ConnectionOut, ConnectionPatch
from app.api.deps import AdminAuth, AdminRoute, ReadSessionDep, SettingsDep, StateDep, UnitOfWorkDep

router = APIRouter(prefix="/api/v1", tags=["admin"], dependencies=[AdminAuth], route_class=AdminRoute)

# Connection ids are INTEGER (32-bit): a larger one would make PostgreSQL refuse the query (a 500).
MAX_CONNECTION_ID = 2**31 - 1

ConnectionId = Annotated[
    int,
    Path(
        ge=1,
        le=MAX_CONNECTION_ID,
        description="Connection id (from GET /api/v1/connections), 1 to 2^31-1; else 422. Unknown: 404.",
    ),
]


def _out(view: connections.ConnectionView) -> ConnectionOut:
    return ConnectionOut.model_validate(view, from_attributes=True)


@router.get("/connections")
def list_connections(session: ReadSessionDep, settings: SettingsDep) -> list[ConnectionOut]:
    return [_out(v) for v in connections.list_connections(session, settings)]


@router.post("/connections", status_code=201, responses={409: {}, 422: {}, 503: {}})
def create_connection(
    body: ConnectionCreate, uow: UnitOfWorkDep, settings: SettingsDep, state: StateDep
) -> ConnectionOut:
    new = connections.NewConnection(
        zoom_account_id=body.zoom_account_id,
        hubspot_portal_id=body.hubspot_portal_id,
        business_unit_id=body.business_unit_id,
        primary=body.primary,
        zoom_client_id=body.zoom_client_id,
        zoom_client_secret=body.zoom_client_secret.get_secret_value(),
        hubspot_access_token=(
            body.hubspot_access_token.get_secret_value() if body.hubspot_access_token is not None else None
        ),
        hubspot_rate_limit_per_10s=body.hubspot_rate_limit_per_10s,
    )
    view = connections.create_connection(uow.session, settings, new)
    if state.wake_worker is not None:
        uow.after_commit(state.wake_worker)  # the account's known webinars are planned for the portal
    return _out(view)


@router.patch("/connections/{connection_id}", responses={404: {}, 409: {}, 422: {}, 503: {}})
def patch_connection(
    connection_id: ConnectionId,
    patch: ConnectionPatch,
    uow: UnitOfWorkDep,
    settings: SettingsDep,
    state: StateDep,
) -> ConnectionOut:
    view = connections.update_connection(uow.session, settings, connection_id, patch.changes())
    if state.wake_worker is not None:
        uow.after_commit(state.wake_worker)  # work parked for want of credentials may go now
    return _out(view)


@router.delete("/connections/{connection_id}", status_code=204, responses={404: {}, 409: {}})
def delete_connection(connection_id: ConnectionId, uow: UnitOfWorkDep, settings: SettingsDep) -> Response:
    connections.delete_connection(uow.session, settings, connection_id)
    return Response(status_code=204)
