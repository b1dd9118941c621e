"""Start-up steps that touch the database."""

from __future__ import annotations

import logging

from sqlalchemy.engine import Engine
from sqlmodel import select

from app.config import Settings
from app.db import unit_of_work
from app.models import Connection, PortalSettings

log = logging.getLogger(__name__)


def ensure_env_connection(engine: Engine, settings: Settings) -> Connection | None:
    """Keep the connection named by ZOOM_ACCOUNT_ID and HUBSPOT_PORTAL_ID (primary business unit)."""
    if not settings.has_env_connection:
        return None
    assert settings.zoom_account_id is not None and settings.hubspot_portal_id is not None
    with unit_of_work(engine) as session:
        conn = session.exec(
            select(Connection).where(
                Connection.portal_id == settings.hubspot_portal_id,
                Connection.zoom_account_id == settings.zoom_account_id,
            )
        ).first()
        if conn is None:
            conn = Connection(
                portal_id=settings.hubspot_portal_id,
                zoom_account_id=settings.zoom_account_id,
                business_unit_id=0,
                is_primary=True,
            )
            session.add(conn)
            log.info("connection created", extra={"portal_id": conn.portal_id})
        if session.get(PortalSettings, settings.hubspot_portal_id) is None:
            session.add(PortalSettings(portal_id=settings.hubspot_portal_id))
        session.flush()
        return conn
