"""Start-up steps that touch the database."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.engine import Engine

from app.config import Settings
from app.db import dialect_insert, unit_of_work, utcnow
from app.models import Connection, PortalSettings

log = logging.getLogger(__name__)


def insert_ignoring_conflicts(
    engine: Engine, table: Any, row: dict[str, Any], conflict_columns: list[str]
) -> bool:
    """INSERT … ON CONFLICT DO NOTHING; True when the row was new.

    API replicas start at the same time: check-then-insert would race on the unique key.
    """
    insert = dialect_insert(engine, table)
    with unit_of_work(engine) as session:
        result = session.execute(insert.values(**row).on_conflict_do_nothing(index_elements=conflict_columns))
        return bool(result.rowcount)  # type: ignore[attr-defined]


def ensure_env_connection(engine: Engine, settings: Settings) -> bool:
    """Keep the connection named by ZOOM_ACCOUNT_ID and HUBSPOT_PORTAL_ID (primary business unit)."""
    if not settings.has_env_connection:
        return False
    if settings.zoom_account_id is None or settings.hubspot_portal_id is None:
        return False  # has_env_connection says both are set; this keeps the types honest
    now = utcnow()
    created = insert_ignoring_conflicts(
        engine,
        Connection.__table__,  # type: ignore[attr-defined]
        {
            "portal_id": settings.hubspot_portal_id,
            "zoom_account_id": settings.zoom_account_id,
            "business_unit_id": 0,
            "is_primary": True,
            "created_at": now,
        },
        ["portal_id", "zoom_account_id"],
    )
    insert_ignoring_conflicts(
        engine,
        PortalSettings.__table__,  # type: ignore[attr-defined]
        # The model's own defaults: written out here they would drift from it.
        PortalSettings(portal_id=settings.hubspot_portal_id, updated_at=now).model_dump(),
        ["portal_id"],
    )
    if created:
        log.info("connection created", extra={"portal_id": settings.hubspot_portal_id})
    return created
