"""convergence: attendance finality, exact registration times, HubSpot name facts, S5 defaults, held re-sends

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
import app.db


revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('webinar', schema=None) as batch_op:
        batch_op.add_column(sa.Column('host_default_sync', sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column('ended_seen_at', app.db.UTCDateTime(timezone=True), nullable=True))
    with op.batch_alter_table('registration', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('registered_at_exact', sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    with op.batch_alter_table('attendance_mark', schema=None) as batch_op:
        batch_op.add_column(sa.Column('received_at', app.db.UTCDateTime(timezone=True), nullable=True))
    with op.batch_alter_table('outbox_op', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pending_since', app.db.UTCDateTime(timezone=True), nullable=True))
    with op.batch_alter_table('hubspot_contact', schema=None) as batch_op:
        batch_op.add_column(sa.Column('has_firstname', sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column('has_lastname', sa.Boolean(), nullable=True))
    # Webinars seen before this change keep the state they had: capture each host's current default
    # (a host never seen as a zoom_user row defaults to true).
    op.execute(
        "UPDATE webinar SET host_default_sync = COALESCE(("
        "SELECT zoom_user.sync_new_webinars_by_default FROM zoom_user "
        "WHERE zoom_user.zoom_account_id = webinar.zoom_account_id "
        "AND zoom_user.zoom_user_id = webinar.host_id), true) "
        "WHERE host_id IS NOT NULL"
    )
    # Webinars that ended before this change have settled long ago.
    op.execute("UPDATE webinar SET ended_seen_at = actual_end_at WHERE actual_end_at IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table('hubspot_contact', schema=None) as batch_op:
        batch_op.drop_column('has_lastname')
        batch_op.drop_column('has_firstname')
    with op.batch_alter_table('outbox_op', schema=None) as batch_op:
        batch_op.drop_column('pending_since')
    with op.batch_alter_table('attendance_mark', schema=None) as batch_op:
        batch_op.drop_column('received_at')
    with op.batch_alter_table('registration', schema=None) as batch_op:
        batch_op.drop_column('registered_at_exact')
    with op.batch_alter_table('webinar', schema=None) as batch_op:
        batch_op.drop_column('ended_seen_at')
        batch_op.drop_column('host_default_sync')
