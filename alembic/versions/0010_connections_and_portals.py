"""connections and portals: Zoom app credentials per connection, HubSpot portal tokens (static or
OAuth) and set-up state, single-use OAuth states, marketing events by objectId, notes created once

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 20:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
import app.db


revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "hubspot_marketing_event",
        sa.Column("portal_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("zoom_account_id", sa.String(length=64), nullable=False),
        sa.Column("webinar_id", sa.String(length=32), nullable=False),
        sa.Column("external_event_id", sa.String(length=100), nullable=False),
        sa.Column("object_id", sa.String(length=32), nullable=False),
        sa.Column("app_id", sa.String(length=32), nullable=True),
        sa.Column("updated_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "portal_id", "zoom_account_id", "webinar_id", name=op.f("pk_hubspot_marketing_event")
        ),
    )
    op.create_table(
        "hubspot_note",
        sa.Column("portal_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("activity_key", sa.String(length=400), nullable=False),
        sa.Column("contact_id", sa.String(length=32), nullable=True),
        sa.Column("note_id", sa.String(length=32), nullable=True),
        sa.Column("attempted_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("portal_id", "activity_key", name=op.f("pk_hubspot_note")),
    )
    op.create_table(
        "hubspot_portal",
        sa.Column("portal_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("auth_mode", sa.String(length=16), nullable=False),
        sa.Column("access_token", sa.Text(), nullable=True),
        sa.Column("refresh_token", sa.Text(), nullable=True),
        sa.Column("access_expires_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("token_version", sa.Integer(), nullable=False),
        sa.Column("refresh_lease_until", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("needs_reinstall", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("reinstall_reason", sa.String(length=300), nullable=True),
        sa.Column("rate_limit_per_10s", sa.Integer(), nullable=True),
        sa.Column("timeline_backend", sa.String(length=16), nullable=True),
        sa.Column("app_id", sa.String(length=32), nullable=True),
        sa.Column("installed_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("portal_id", name=op.f("pk_hubspot_portal")),
    )
    op.create_table(
        "oauth_state",
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("nonce", name=op.f("pk_oauth_state")),
    )
    with op.batch_alter_table("connection", schema=None) as batch_op:
        batch_op.add_column(sa.Column("zoom_client_id", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("zoom_client_secret", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("updated_at", app.db.UTCDateTime(timezone=True), nullable=True))
    # Existing connections were last changed when they were made.
    op.execute("UPDATE connection SET updated_at = created_at")
    with op.batch_alter_table("connection", schema=None) as batch_op:
        batch_op.alter_column("updated_at", existing_type=app.db.UTCDateTime(timezone=True), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("connection", schema=None) as batch_op:
        batch_op.drop_column("updated_at")
        batch_op.drop_column("zoom_client_secret")
        batch_op.drop_column("zoom_client_id")

    op.drop_table("oauth_state")
    op.drop_table("hubspot_portal")
    op.drop_table("hubspot_note")
    op.drop_table("hubspot_marketing_event")
