"""When a fact is final enough to send as something HubSpot never lets us change (pure; no I/O).

Timeline events are immutable at HubSpot: an attendance event sent while a join or leave is still
on its way (Zoom retries deliveries for hours, and a short outage of ours makes it re-send them
late) would keep a wrong duration forever. So immutable things wait until the facts behind them
have settled, while mutable ones (contact properties) go out at once and are corrected later.

- Attendance is final when the webinar has ended, nothing about it waits in the inbox or in a pull
  from Zoom (the reconciliation after the end, a Sync now), and no new join/leave nor the end itself
  has been stored for `settle_s`.
- A registration's time is final when Zoom's creation time is known (registration_created, or
  create_time from a pull), or when it has not changed for `settle_s` (the creation event may never
  come: the best time known then stands).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

# While something is still being processed, look again soon; otherwise wake when the quiet period
# ends, but at least this often (a new mark may have moved it).
BUSY_RECHECK_S = 1.0
MAX_WAIT_S = 60.0


@dataclass(frozen=True, slots=True)
class AttendanceClock:
    """What decides whether one webinar's attendance is final."""

    ended: bool
    ended_seen_at: datetime | None  # when the end was stored here
    last_mark_at: datetime | None  # when the newest join/leave was stored here
    inbox_pending: bool  # events of this webinar not processed yet
    pull_pending: bool  # a pull from Zoom (reconciliation, Sync now, backfill) queued or running


def attendance_wait_s(clock: AttendanceClock, now: datetime, settle_s: float) -> float | None:
    """None when the webinar's attendance is final, else how long to wait before asking again."""
    if not clock.ended:
        return MAX_WAIT_S
    if clock.inbox_pending or clock.pull_pending:
        return BUSY_RECHECK_S
    return _quiet_wait([t for t in (clock.ended_seen_at, clock.last_mark_at) if t is not None], now, settle_s)


@dataclass(frozen=True, slots=True)
class RegistrationClock:
    exact: bool  # registered_at is Zoom's creation time
    changed_at: datetime | None  # when the registration last changed here


def registration_wait_s(
    registrations: Iterable[RegistrationClock], now: datetime, settle_s: float
) -> float | None:
    """None when every registration's time is final, else how long to wait."""
    return _quiet_wait(
        [r.changed_at for r in registrations if not r.exact and r.changed_at is not None], now, settle_s
    )


def _quiet_wait(changes: list[datetime], now: datetime, settle_s: float) -> float | None:
    if not changes:
        return None
    remaining = (max(changes) - now).total_seconds() + settle_s
    if remaining <= 0:
        return None
    return min(remaining, MAX_WAIT_S)
