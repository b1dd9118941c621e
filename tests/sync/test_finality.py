"""When facts are final enough for what HubSpot never lets us change (app.sync.finality)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.sync.finality import (
    BUSY_RECHECK_S,
    MAX_WAIT_S,
    AttendanceClock,
    RegistrationClock,
    attendance_wait_s,
    registration_wait_s,
)

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
SETTLE = 600.0


def clock(**kw: Any) -> AttendanceClock:
    values: dict[str, Any] = {
        "ended": True,
        "ended_seen_at": NOW - timedelta(minutes=20),
        "last_mark_at": NOW - timedelta(minutes=15),
        "inbox_pending": False,
        "pull_pending": False,
    }
    values.update(kw)
    return AttendanceClock(**values)


@pytest.mark.parametrize(
    ("case", "attendance", "wait"),
    [
        ("quiet for longer than the settle period", clock(), None),
        ("not ended: attendance can still grow", clock(ended=False), MAX_WAIT_S),
        ("events of it still in the inbox", clock(inbox_pending=True), BUSY_RECHECK_S),
        ("a reconciliation pull queued or running", clock(pull_pending=True), BUSY_RECHECK_S),
        (
            "a mark stored 4 minutes ago: 6 more minutes",
            clock(last_mark_at=NOW - timedelta(minutes=4)),
            MAX_WAIT_S,
        ),
        ("a mark stored 9.5 minutes ago: 30 s more", clock(last_mark_at=NOW - timedelta(seconds=570)), 30.0),
        ("the end stored just now", clock(ended_seen_at=NOW, last_mark_at=None), MAX_WAIT_S),
        ("marks stored before this rule existed (no time)", clock(last_mark_at=None), None),
        ("exactly at the end of the quiet period", clock(last_mark_at=NOW - timedelta(seconds=SETTLE)), None),
    ],
)
def test_attendance_is_final_only_after_the_end_and_a_quiet_period(
    case: str, attendance: AttendanceClock, wait: float | None
) -> None:
    got = attendance_wait_s(attendance, NOW, SETTLE)
    assert got == (pytest.approx(wait) if wait is not None else None), case


def test_no_settle_period_means_final_as_soon_as_nothing_is_pending() -> None:
    assert attendance_wait_s(clock(last_mark_at=NOW, ended_seen_at=NOW), NOW, 0.0) is None
    assert attendance_wait_s(clock(inbox_pending=True), NOW, 0.0) == BUSY_RECHECK_S


@pytest.mark.parametrize(
    ("case", "registrations", "wait"),
    [
        ("no registration", [], None),
        ("Zoom's creation time known", [RegistrationClock(True, NOW)], None),
        ("only a status change seen, just now", [RegistrationClock(False, NOW)], MAX_WAIT_S),
        (
            "a status change seen long ago: the best time known stands",
            [RegistrationClock(False, NOW - timedelta(hours=1))],
            None,
        ),
        (
            "one of two registrations still unsettled",
            [RegistrationClock(True, NOW), RegistrationClock(False, NOW - timedelta(seconds=590))],
            10.0,
        ),
    ],
)
def test_registration_time_is_final_once_zoom_stated_it_or_it_settled(
    case: str, registrations: list[RegistrationClock], wait: float | None
) -> None:
    got = registration_wait_s(registrations, NOW, SETTLE)
    assert got == (pytest.approx(wait) if wait is not None else None), case
