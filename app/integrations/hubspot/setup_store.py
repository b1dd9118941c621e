"""The ids a HubSpot set-up run keeps in `hubspot_setup_item`, per scope.

* scope `"portal:<portalId>"`: the property group and the contact properties. HubSpot identifies
  those by name, so `external_id` is the name itself; the row records that the item was checked.
* scope `"app:<appId>"`: the timeline event templates (they belong to the public app, not to a
  portal); `external_id` is HubSpot's template id, which timeline events must name.

And the timeline writer chosen for a portal, in its `hubspot_portal` row (`timeline_backend`).

Writes are single INSERT … ON CONFLICT statements, so set-up runs in several processes at once agree.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from app.db import dialect_insert, unit_of_work, utcnow
from app.models import AuthMode, HubSpotPortal, HubSpotSetupItem, TimelineBackend


def portal_scope(portal_id: int) -> str:
    return f"portal:{portal_id}"


def app_scope(app_id: str) -> str:
    return f"app:{app_id}"


_TABLE: Any = HubSpotSetupItem.__table__  # type: ignore[attr-defined]


def stored_ids(engine: Engine, scope: str) -> dict[str, str]:
    with unit_of_work(engine) as session:
        rows = session.execute(
            select(_TABLE.c.name, _TABLE.c.external_id).where(_TABLE.c.scope == scope)
        ).all()
    return {name: external_id for name, external_id in rows}


def stored_template_ids(engine: Engine, app_id: str) -> dict[str, str]:
    """Template name → HubSpot template id, as recorded by the set-up for `app_id`."""
    return stored_ids(engine, app_scope(app_id))


def store_found(engine: Engine, scope: str, name: str, external_id: str) -> None:
    """Record what HubSpot has now: insert, or correct a stored id that differs."""
    stmt = dialect_insert(engine, _TABLE).values(
        scope=scope, name=name, external_id=external_id, created_at=utcnow()
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["scope", "name"],
        set_={"external_id": stmt.excluded.external_id},
        where=_TABLE.c.external_id != stmt.excluded.external_id,
    )
    with unit_of_work(engine) as session:
        session.execute(stmt)


def store_created(engine: Engine, scope: str, name: str, external_id: str, stale: str | None) -> str:
    """Record a template this run created, unless a concurrent run recorded its own first.

    `stale` is the id stored before the run that HubSpot no longer lists under `name`: only that
    value is replaced. Returns the id now stored, the one every process will use.
    """
    stmt = dialect_insert(engine, _TABLE).values(
        scope=scope, name=name, external_id=external_id, created_at=utcnow()
    )
    if stale is None:
        stmt = stmt.on_conflict_do_nothing(index_elements=["scope", "name"])
    else:
        stmt = stmt.on_conflict_do_update(
            index_elements=["scope", "name"],
            set_={"external_id": stmt.excluded.external_id, "created_at": stmt.excluded.created_at},
            where=_TABLE.c.external_id == stale,
        )
    with unit_of_work(engine) as session:
        session.execute(stmt)
        stored = session.execute(
            select(_TABLE.c.external_id).where(_TABLE.c.scope == scope, _TABLE.c.name == name)
        ).scalar_one()
    return str(stored)


# ---- the portal's timeline writer (hubspot_portal.timeline_backend) ------------------------------------

_PORTAL: Any = HubSpotPortal.__table__  # type: ignore[attr-defined]


def portal_auth_mode(engine: Engine, portal_id: int) -> AuthMode:
    """How the portal's token was obtained; a portal with no row is the env-configured, static one."""
    with unit_of_work(engine) as session:
        mode = session.execute(select(_PORTAL.c.auth_mode).where(_PORTAL.c.portal_id == portal_id)).scalar()
    return AuthMode(mode) if mode is not None else AuthMode.STATIC


def store_timeline_backend(engine: Engine, portal_id: int, backend: TimelineBackend) -> None:
    """Record the portal's timeline writer: that one column (and `updated_at`), never the tokens; a
    portal with no row yet (the env-configured one) gets a row holding just this."""
    now = utcnow()
    stmt = dialect_insert(engine, _PORTAL).values(
        portal_id=portal_id, auth_mode=AuthMode.STATIC.value, timeline_backend=backend.value, updated_at=now
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["portal_id"], set_={"timeline_backend": backend.value, "updated_at": now}
    )
    with unit_of_work(engine) as session:
        session.execute(stmt)


def stored_timeline_backend(engine: Engine, portal_id: int) -> TimelineBackend | None:
    with unit_of_work(engine) as session:
        value = session.execute(
            select(_PORTAL.c.timeline_backend).where(_PORTAL.c.portal_id == portal_id)
        ).scalar()
    return TimelineBackend(value) if value is not None else None
