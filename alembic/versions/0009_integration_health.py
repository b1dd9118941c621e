"""integration health: per portal, how calls to HubSpot and Zoom went lately

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
import app.db


revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'integration_health',
        sa.Column('portal_id', sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column('service', sa.String(length=16), nullable=False),
        sa.Column('last_ok_at', app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column('failing_since', app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column('last_error', sa.String(length=300), nullable=True),
        sa.Column('last_error_at', app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column('rate_limited_until', app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column('warned_at', app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column('updated_at', app.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('portal_id', 'service', name=op.f('pk_integration_health')),
    )


def downgrade() -> None:
    op.drop_table('integration_health')
