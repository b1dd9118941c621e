"""A portal's HubSpot credentials as stored in `hubspot_portal` (encrypted with APP_SECRET_KEY)."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from app.config import Settings
from app.db import unit_of_work
from app.models import HubSpotPortal
from app.secret_box import SecretBox


def stored_access_token(engine: Engine, settings: Settings, portal_id: int) -> str | None:
    """The portal's stored access token, decrypted; None when none is stored or the portal waits
    for a re-install (its work is parked). A stored token without APP_SECRET_KEY (or with another
    key) raises the secret box's clear error rather than falling back to another token."""
    with unit_of_work(engine) as session:
        row = session.get(HubSpotPortal, portal_id)
        if row is None or row.needs_reinstall or not row.access_token:
            return None
        stored = row.access_token
    return SecretBox.for_key(settings.app_secret_key).decrypt(stored)
