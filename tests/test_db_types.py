"""State and status columns hold their StrEnum (`app.db.StrEnumString`), on SQLite and PostgreSQL:
members round-trip, a typo'd value is refused when bound, and a value this version does not know
reads back as its text instead of failing the read."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, cast

import pytest
from sqlalchemy import func, text
from sqlalchemy.exc import StatementError
from sqlmodel import Session, SQLModel, col, select

from app.db import StrEnumString, UnknownEnumValue, metadata
from app.models import (
    ActionExecution,
    ActionState,
    AuditEntry,
    AuditStatus,
    AuthMode,
    CallbackState,
    HubSpotPortal,
    InboxEvent,
    InboxState,
    JobState,
    OutboxOp,
    OutboxState,
    PortalSettings,
    Recording,
    RecordingSync,
    Registration,
    RegistrationStatus,
    SyncJob,
    TimelineBackend,
    TranscriptState,
)
from tests.fixtures.databases import Database
from tests.fixtures.service import ACCOUNT_ID, PORTAL_ID


def _row(model: type[SQLModel], n: int) -> SQLModel:
    """A row of `model` with its required columns filled; `n` keeps keys unique."""
    at = datetime(2026, 1, 1, tzinfo=UTC)
    makers: dict[type[SQLModel], Callable[[], SQLModel]] = {
        PortalSettings: lambda: PortalSettings(portal_id=PORTAL_ID + n),
        InboxEvent: lambda: InboxEvent(delivery_key=f"d{n}", event="webinar.updated", raw_body=b"{}"),
        AuditEntry: lambda: AuditEntry(
            portal_id=PORTAL_ID, zoom_account_id=ACCOUNT_ID, status=AuditStatus.SUCCESS, code="c", message="m"
        ),
        Registration: lambda: Registration(
            zoom_account_id=ACCOUNT_ID, webinar_id="w1", registrant_id=f"r{n}"
        ),
        Recording: lambda: Recording(zoom_account_id=ACCOUNT_ID, webinar_id="w1", instance_uuid=f"u{n}"),
        OutboxOp: lambda: OutboxOp(
            portal_id=PORTAL_ID, kind="contact_upsert", target_key=f"t{n}", zoom_account_id=ACCOUNT_ID
        ),
        ActionExecution: lambda: ActionExecution(callback_id=f"cb{n}", portal_id=PORTAL_ID, object_id="1"),
        SyncJob: lambda: SyncJob(
            id=f"j{n}", kind="sync_now", portal_id=PORTAL_ID, zoom_account_id=ACCOUNT_ID, run_after=at
        ),
        HubSpotPortal: lambda: HubSpotPortal(portal_id=PORTAL_ID + n),
    }
    return makers[model]()


# Every enum column: (model, attribute, its enum).
ENUM_COLUMNS: list[tuple[type[SQLModel], str, type[StrEnum]]] = [
    (PortalSettings, "recording_sync", RecordingSync),
    (InboxEvent, "state", InboxState),
    (AuditEntry, "status", AuditStatus),
    (Registration, "status", RegistrationStatus),
    (Recording, "transcript_state", TranscriptState),
    (OutboxOp, "state", OutboxState),
    (ActionExecution, "state", ActionState),
    (ActionExecution, "callback_state", CallbackState),
    (SyncJob, "state", JobState),
    (HubSpotPortal, "auth_mode", AuthMode),
    (HubSpotPortal, "timeline_backend", TimelineBackend),
]
_IDS = [f"{model.__name__}.{attr}" for model, attr, _ in ENUM_COLUMNS]


def _table(model: type[SQLModel]) -> str:
    return str(model.__tablename__)


def test_every_enum_column_is_listed_here() -> None:
    """A new StrEnumString column gets its round-trip test by being added to ENUM_COLUMNS."""
    in_metadata = {
        (table.name, column.name, column.type.enum_class)
        for table in metadata.sorted_tables
        for column in table.columns
        if isinstance(column.type, StrEnumString)
    }
    assert in_metadata == {(_table(m), attr, enum) for m, attr, enum in ENUM_COLUMNS}


@pytest.mark.parametrize(("model", "attr", "enum"), ENUM_COLUMNS, ids=_IDS)
def test_members_round_trip_as_members_and_are_stored_as_their_value(
    database: Database, model: type[SQLModel], attr: str, enum: type[StrEnum]
) -> None:
    with Session(database.engine) as session:
        for n, member in enumerate(enum):
            row = _row(model, n)
            # Members and their plain value strings (what writers still pass) both bind.
            setattr(row, attr, member if n % 2 == 0 else member.value)
            session.add(row)
        session.commit()
    with Session(database.engine) as session:
        read = sorted(getattr(row, attr) for row in session.exec(select(model)).all())
        stored = sorted(session.execute(text(f'SELECT "{attr}" FROM "{_table(model)}"')).scalars().all())
    assert read == sorted(enum)
    assert all(type(value) is enum for value in read)
    assert stored == sorted(member.value for member in enum)
    assert all(type(value) is str for value in stored)


def test_a_new_rows_default_is_stored_as_the_default_members_value(database: Database) -> None:
    with Session(database.engine) as session:
        session.add(_row(OutboxOp, 1))
        session.add(_row(Recording, 1))
        session.commit()
        assert session.execute(text("SELECT state FROM outbox_op")).scalar_one() == "pending"
        assert session.execute(text("SELECT transcript_state FROM recording")).scalar_one() == "none"
        assert session.exec(select(OutboxOp)).one().state is OutboxState.PENDING


def test_a_typo_in_a_writer_is_refused_naming_the_enum(database: Database) -> None:
    with Session(database.engine) as session:
        session.add(
            OutboxOp(
                portal_id=PORTAL_ID,
                kind="contact_upsert",
                target_key="t",
                zoom_account_id=ACCOUNT_ID,
                # The typo a writer could make without a type checker (cast: mypy would refuse it).
                state=cast(OutboxState, "pendng"),
            )
        )
        with pytest.raises(StatementError) as caught:
            session.flush()
        assert isinstance(caught.value.orig, ValueError)
        assert "'pendng' is not a OutboxState value (one of: pending, done, failed)" in str(caught.value.orig)
        session.rollback()
        assert session.execute(text("SELECT count(*) FROM outbox_op")).scalar_one() == 0


def test_a_typo_in_a_query_is_refused_instead_of_matching_nothing(database: Database) -> None:
    with Session(database.engine) as session:
        with pytest.raises(StatementError) as caught:
            session.exec(select(SyncJob).where(col(SyncJob.state) == "queud")).all()
        assert "JobState" in str(caught.value.orig)
        # A value of the wrong type is no better than a typo.
        with pytest.raises(StatementError):
            session.exec(select(SyncJob).where(col(SyncJob.state).in_([JobState.QUEUED, 1]))).all()


def test_an_unknown_stored_value_reads_as_its_text_and_can_be_written_back(database: Database) -> None:
    """A newer version's state (rolling deploy) must not make reads of the row fail: it comes
    back as the stored text, equal to no member, and a row read that way can be saved."""
    with Session(database.engine) as session:
        session.add(_row(OutboxOp, 1))
        session.add(_row(OutboxOp, 2))
        session.commit()
        # As a newer version would write it: the column is plain VARCHAR, no check constraint.
        session.execute(text("UPDATE outbox_op SET state = 'paused' WHERE target_key = 't1'"))
        session.commit()
    with Session(database.engine) as session:
        op = session.exec(select(OutboxOp).where(col(OutboxOp.target_key) == "t1")).one()
        assert isinstance(op.state, UnknownEnumValue)
        assert op.state == "paused"
        assert str(op.state) not in {member.value for member in OutboxState}
        counts: dict[Any, int] = dict(
            session.exec(select(col(OutboxOp.state), func.count()).group_by(col(OutboxOp.state))).all()
        )
        assert counts == {"paused": 1, OutboxState.PENDING: 1}
        # Saved with another column changed, and the unknown value itself bound back unchanged.
        op.attempts = 3
        other = session.exec(select(OutboxOp).where(col(OutboxOp.target_key) == "t2")).one()
        other.state = op.state
        session.commit()
        stored = session.execute(
            text("SELECT target_key, state, attempts FROM outbox_op ORDER BY target_key")
        )
        assert [tuple(r) for r in stored] == [("t1", "paused", 3), ("t2", "paused", 0)]
