"""Attendance computed from Zoom join/leave marks.

Zoom delivers participant webhooks at least once, possibly duplicated and in any
order, so everything here works on the *set* of marks and is a pure function of it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class MarkKind(StrEnum):
    JOIN = "join"
    LEAVE = "leave"


@dataclass(frozen=True, slots=True)
class Mark:
    kind: MarkKind
    at: datetime


@dataclass(frozen=True, slots=True)
class Interval:
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class Attendance:
    attended_seconds: int
    percent: float
    first_join: datetime | None
    last_leave: datetime | None


def _sort_key(mark: Mark) -> tuple[datetime, int]:
    # A join and a leave at the same instant must pair up (join first); otherwise the
    # leave would be dropped and the join would stay open until the webinar ends.
    return (mark.at, 0 if mark.kind is MarkKind.JOIN else 1)


def pair_marks(marks: Iterable[Mark], close_open_at: datetime) -> list[Interval]:
    """Pair marks into join-leave intervals, sorted by start, zero-length ones dropped."""
    intervals: list[Interval] = []
    open_since: datetime | None = None
    # The contract is defined on the set of marks; redelivered webhooks are plain duplicates.
    for mark in sorted(set(marks), key=_sort_key):
        if mark.kind is MarkKind.JOIN:
            # A second join while open (another device) keeps the earliest start.
            if open_since is None:
                open_since = mark.at
        elif open_since is not None:
            intervals.append(Interval(open_since, mark.at))
            open_since = None
        # A leave with nothing open lost its join; there is nothing to close.
    if open_since is not None:
        intervals.append(Interval(open_since, close_open_at))
    return [iv for iv in intervals if iv.end > iv.start]


def _clipped_union(
    intervals: Iterable[Interval], window_start: datetime, window_end: datetime
) -> list[Interval]:
    """Disjoint, sorted intervals covering the union of ``intervals`` inside the window."""
    clipped = sorted(
        (Interval(max(iv.start, window_start), min(iv.end, window_end)) for iv in intervals),
        key=lambda iv: iv.start,
    )
    merged: list[Interval] = []
    for iv in clipped:
        if iv.end <= iv.start:
            continue
        if merged and iv.start <= merged[-1].end:
            last = merged[-1]
            merged[-1] = Interval(last.start, max(last.end, iv.end))
        else:
            merged.append(iv)
    return merged


def _total(intervals: Iterable[Interval]) -> timedelta:
    # Summing timedeltas stays exact (microseconds); converting once avoids float drift.
    return sum((iv.end - iv.start for iv in intervals), timedelta())


def union_seconds(intervals: Iterable[Interval], window_start: datetime, window_end: datetime) -> float:
    """Seconds covered by the union of ``intervals`` clipped to ``[window_start, window_end]``."""
    return _total(_clipped_union(intervals, window_start, window_end)).total_seconds()


def attendance_percent(attended_seconds: float, webinar_start: datetime, webinar_end: datetime) -> float:
    """Share of the webinar attended, in [0, 100] with one decimal; 0.0 for an empty webinar."""
    duration = (webinar_end - webinar_start).total_seconds()
    if duration <= 0:
        return 0.0
    percent = 100.0 * attended_seconds / duration
    return round(min(100.0, max(0.0, percent)), 1)


def compute_attendance(
    marks: Iterable[Mark], actual_start: datetime, actual_end: datetime | None, now: datetime
) -> Attendance:
    """Attendance of one participant; a webinar still running is measured up to ``now``."""
    return attendance_from_sessions([marks], actual_start, actual_end, now)


def attendance_from_sessions(
    sessions: Iterable[Iterable[Mark]], actual_start: datetime, actual_end: datetime | None, now: datetime
) -> Attendance:
    """Attendance of one person over several device sessions (rejoins, two devices).

    Marks pair up inside their own session, where a join and its leave always belong together;
    the person's time is the union of every session's intervals.
    """
    close_at = actual_end if actual_end is not None else now
    intervals = [iv for marks in sessions for iv in pair_marks(marks, close_at)]
    covered = _clipped_union(intervals, actual_start, close_at)
    attended = _total(covered).total_seconds()
    return Attendance(
        attended_seconds=math.floor(attended),
        percent=attendance_percent(attended, actual_start, close_at),
        first_join=covered[0].start if covered else None,
        last_leave=covered[-1].end if covered else None,
    )


def average_percent(percents: Iterable[float]) -> float | None:
    """Mean of per-webinar percents, one decimal; None when there is nothing to average."""
    values = list(percents)
    if not values:
        return None
    return round(sum(values) / len(values), 1)
