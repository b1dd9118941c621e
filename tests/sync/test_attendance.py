from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.sync.attendance import (
    Attendance,
    Interval,
    Mark,
    MarkKind,
    attendance_from_sessions,
    attendance_percent,
    average_percent,
    compute_attendance,
    pair_marks,
    union_seconds,
)

T0 = datetime(2024, 5, 14, 15, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def join(minutes: float) -> Mark:
    return Mark(MarkKind.JOIN, at(minutes))


def leave(minutes: float) -> Mark:
    return Mark(MarkKind.LEAVE, at(minutes))


def iv(start_min: float, end_min: float) -> Interval:
    return Interval(at(start_min), at(end_min))


# --------------------------------------------------------------------------- compute_attendance

# A webinar as (actual start, actual end or None while running, now), in minutes.
HOUR = (0, 60, 90)
RUNNING = (0, None, 30)
NOTHING = Attendance(0, 0.0, None, None)
SUB_SECOND = T0 + timedelta(seconds=10, microseconds=999_999)


def att(seconds: int, percent: float, first: float, last: float) -> Attendance:
    return Attendance(seconds, percent, at(first), at(last))


ATTENDANCE_CASES = [
    pytest.param([join(0), leave(60)], HOUR, att(3600, 100.0, 0, 60), id="full-session"),
    pytest.param([join(10), leave(40)], HOUR, att(1800, 50.0, 10, 40), id="partial-session"),
    pytest.param(
        [join(0), leave(10), join(20), leave(30)], HOUR, att(1200, 33.3, 0, 30), id="rejoin-with-gap"
    ),
    # Marks carry no device id: the second device's join is absorbed into the open
    # session and the first leave closes it; the trailing leave has nothing open.
    pytest.param(
        [join(0), join(10), leave(30), leave(50)], HOUR, att(1800, 50.0, 0, 30), id="two-devices-overlapping"
    ),
    pytest.param(
        [join(0), join(10), leave(20), leave(40)], HOUR, att(1200, 33.3, 0, 20), id="two-devices-nested"
    ),
    pytest.param([leave(30), join(0)], HOUR, att(1800, 50.0, 0, 30), id="leave-arrives-first"),
    pytest.param(
        [join(0), join(0), leave(30), join(0), leave(30)], HOUR, att(1800, 50.0, 0, 30), id="duplicates"
    ),
    pytest.param([join(-10), leave(70)], HOUR, att(3600, 100.0, 0, 60), id="clipped-both-sides"),
    pytest.param([join(-10), leave(20)], HOUR, att(1200, 33.3, 0, 20), id="joined-before-start"),
    pytest.param([join(-30), leave(-10)], HOUR, NOTHING, id="entirely-before-start"),
    pytest.param([join(45)], HOUR, att(900, 25.0, 45, 60), id="open-closed-at-end"),
    pytest.param([join(70)], HOUR, NOTHING, id="open-join-after-end"),
    pytest.param([join(10)], RUNNING, att(1200, 66.7, 10, 30), id="running-closes-at-now"),
    pytest.param([join(10), leave(20), join(25)], RUNNING, att(900, 50.0, 10, 30), id="running-rejoined"),
    pytest.param([join(10), leave(20)], RUNNING, att(600, 33.3, 10, 20), id="running-already-left"),
    pytest.param([leave(20)], HOUR, NOTHING, id="leave-without-join"),
    pytest.param([join(0), leave(10), leave(20)], HOUR, att(600, 16.7, 0, 10), id="extra-leave-ignored"),
    # A join and leave at the same instant pair up; the leave must not be dropped,
    # which would leave the join open until the end.
    pytest.param([leave(10), join(10)], HOUR, NOTHING, id="join-leave-same-instant"),
    pytest.param([], HOUR, NOTHING, id="no-marks"),
    pytest.param([join(0), leave(10)], (0, 0, 90), NOTHING, id="zero-length-webinar"),
    pytest.param([join(0), leave(10)], (10, 0, 90), NOTHING, id="negative-length-webinar"),
    pytest.param([join(0)], (10, None, 5), NOTHING, id="now-before-start"),
    pytest.param(
        [join(0), Mark(MarkKind.LEAVE, SUB_SECOND)],
        HOUR,
        Attendance(10, 0.3, at(0), SUB_SECOND),
        id="seconds-rounded-down",
    ),
]


@pytest.mark.parametrize(("marks", "webinar", "expected"), ATTENDANCE_CASES)
def test_compute_attendance(
    marks: list[Mark], webinar: tuple[float, float | None, float], expected: Attendance
) -> None:
    start, end, now = webinar
    actual_end = None if end is None else at(end)
    assert compute_attendance(marks, at(start), actual_end, at(now)) == expected


def test_compute_attendance_accepts_a_one_shot_iterator() -> None:
    marks = iter([join(0), leave(30)])
    assert compute_attendance(marks, at(0), at(60), at(90)).attended_seconds == 1800


def test_arrival_order_does_not_matter() -> None:
    marks = [join(0), leave(10), join(20), leave(30), join(40)]
    expected = compute_attendance(marks, at(0), at(60), at(90))
    assert expected == Attendance(2400, 66.7, at(0), at(60))
    for shuffled in (marks[::-1], marks[1:] + marks[:1], [marks[i] for i in (3, 0, 4, 2, 1)]):
        assert compute_attendance(shuffled, at(0), at(60), at(90)) == expected


# --------------------------------------------------------------------------- pair_marks

PAIR_CASES = [
    pytest.param([], [], id="empty"),
    pytest.param([join(0), leave(10)], [iv(0, 10)], id="single"),
    pytest.param([leave(30), join(20), leave(10), join(0)], [iv(0, 10), iv(20, 30)], id="unsorted"),
    pytest.param([join(0), join(5), leave(10)], [iv(0, 10)], id="earliest-join-wins"),
    pytest.param([join(0), leave(10), leave(15)], [iv(0, 10)], id="orphan-leave"),
    pytest.param([leave(5), join(10)], [iv(10, 60)], id="orphan-leave-then-open"),
    pytest.param([join(10), leave(10)], [], id="zero-length-dropped"),
    pytest.param([join(70)], [], id="open-after-close-at-dropped"),
    pytest.param([join(0), leave(0), join(0)], [], id="duplicate-join-at-same-instant"),
]


@pytest.mark.parametrize(("marks", "expected"), PAIR_CASES)
def test_pair_marks(marks: list[Mark], expected: list[Interval]) -> None:
    assert pair_marks(marks, at(60)) == expected


# --------------------------------------------------------------------------- union_seconds

UNION_CASES = [
    pytest.param([], 0.0, id="empty"),
    pytest.param([iv(0, 10)], 600.0, id="single"),
    pytest.param([iv(0, 10), iv(20, 30)], 1200.0, id="disjoint"),
    pytest.param([iv(0, 30), iv(10, 40)], 2400.0, id="overlapping"),
    pytest.param([iv(10, 40), iv(0, 30)], 2400.0, id="overlapping-unsorted"),
    pytest.param([iv(0, 40), iv(10, 20)], 2400.0, id="nested"),
    pytest.param([iv(0, 10), iv(10, 20)], 1200.0, id="touching"),
    pytest.param([iv(0, 10), iv(0, 10)], 600.0, id="identical"),
    pytest.param([iv(-20, 10), iv(50, 90)], 1200.0, id="clipped"),
    pytest.param([iv(-20, -10), iv(70, 80)], 0.0, id="outside-window"),
    pytest.param([iv(20, 10)], 0.0, id="inverted-interval"),
]


@pytest.mark.parametrize(("intervals", "expected"), UNION_CASES)
def test_union_seconds(intervals: list[Interval], expected: float) -> None:
    assert union_seconds(intervals, at(0), at(60)) == expected


def test_union_seconds_empty_window() -> None:
    assert union_seconds([iv(0, 60)], at(30), at(30)) == 0.0
    assert union_seconds([iv(0, 60)], at(40), at(30)) == 0.0


def test_union_seconds_keeps_sub_second_precision() -> None:
    interval = Interval(T0, T0 + timedelta(seconds=1, microseconds=500_000))
    assert union_seconds([interval], T0, at(60)) == 1.5


# --------------------------------------------------------------------------- attendance_percent

PERCENT_CASES = [
    pytest.param(1800.0, 0, 60, 50.0, id="half"),
    pytest.param(1200.0, 0, 60, 33.3, id="one-third-rounded"),
    pytest.param(2400.0, 0, 60, 66.7, id="two-thirds-rounded"),
    pytest.param(3600.0, 0, 60, 100.0, id="full"),
    pytest.param(4000.0, 0, 60, 100.0, id="capped-at-100"),
    pytest.param(-5.0, 0, 60, 0.0, id="never-negative"),
    pytest.param(0.0, 0, 60, 0.0, id="nothing"),
    pytest.param(600.0, 0, 0, 0.0, id="zero-length-webinar"),
    pytest.param(600.0, 10, 0, 0.0, id="negative-length-webinar"),
]


@pytest.mark.parametrize(("attended", "start", "end", "expected"), PERCENT_CASES)
def test_attendance_percent(attended: float, start: float, end: float, expected: float) -> None:
    assert attendance_percent(attended, at(start), at(end)) == expected


# --------------------------------------------------------------------------- average_percent

AVERAGE_CASES = [
    pytest.param([], None, id="empty"),
    pytest.param([50.0, 100.0], 75.0, id="two"),
    pytest.param([42.5], 42.5, id="single"),
    pytest.param([33.3, 33.3, 33.4], 33.3, id="rounded"),
    pytest.param([10.0, 20.0, 25.0], 18.3, id="repeating-decimal"),
    pytest.param([0.0, 0.0], 0.0, id="zeros"),
]


@pytest.mark.parametrize(("percents", "expected"), AVERAGE_CASES)
def test_average_percent(percents: list[float], expected: float | None) -> None:
    assert average_percent(percents) == expected


def test_average_percent_accepts_a_generator() -> None:
    assert average_percent(p for p in (50.0, 100.0)) == 75.0
    assert average_percent(p for p in [0.0][:0]) is None


# --------------------------------------------------------------------------- properties

# Offsets are drawn from a small range so that marks often collide or tie, mixed with
# microsecond offsets so that sub-second arithmetic is exercised too.
offsets = st.one_of(
    st.integers(min_value=-10, max_value=70).map(lambda m: timedelta(minutes=m)),
    st.integers(min_value=-600_000_000, max_value=4_200_000_000).map(lambda us: timedelta(microseconds=us)),
)
times = offsets.map(lambda d: T0 + d)
marks_lists = st.lists(st.builds(Mark, st.sampled_from(MarkKind), times), max_size=12)
intervals_lists = st.lists(st.builds(Interval, times, times), max_size=10)


@st.composite
def webinars(draw: st.DrawFn) -> tuple[datetime, datetime | None, datetime]:
    start = draw(times)
    end = draw(st.none() | times)
    now = draw(times)
    return start, end, now


@given(marks=marks_lists, webinar=webinars(), data=st.data())
def test_property_invariant_under_permutation_and_duplication(
    marks: list[Mark], webinar: tuple[datetime, datetime | None, datetime], data: st.DataObject
) -> None:
    extra = data.draw(st.lists(st.sampled_from(marks), max_size=12)) if marks else []
    reordered = data.draw(st.permutations([*marks, *extra]))
    assert compute_attendance(reordered, *webinar) == compute_attendance(marks, *webinar)


@given(marks=marks_lists, webinar=webinars())
def test_property_percent_within_bounds(
    marks: list[Mark], webinar: tuple[datetime, datetime | None, datetime]
) -> None:
    assert 0.0 <= compute_attendance(marks, *webinar).percent <= 100.0


@given(marks=marks_lists, webinar=webinars())
def test_property_attended_within_webinar(
    marks: list[Mark], webinar: tuple[datetime, datetime | None, datetime]
) -> None:
    start, end, now = webinar
    close_at = end if end is not None else now
    result = compute_attendance(marks, start, end, now)
    assert 0 <= result.attended_seconds <= max(0.0, (close_at - start).total_seconds())
    if result.first_join is None:
        assert result.last_leave is None
        assert result.attended_seconds == 0
        assert result.percent == 0.0
    else:
        assert result.last_leave is not None
        assert start <= result.first_join < result.last_leave <= close_at
        span = math.floor((result.last_leave - result.first_join).total_seconds())
        assert result.attended_seconds <= span


@given(marks=marks_lists, close_at=times)
def test_property_pair_marks_yields_sorted_disjoint_positive_intervals(
    marks: list[Mark], close_at: datetime
) -> None:
    intervals = pair_marks(marks, close_at)
    assert all(i.start < i.end for i in intervals)
    assert all(a.end <= b.start for a, b in itertools.pairwise(intervals))
    # Every interval starts at a join the participant actually sent.
    joins = {m.at for m in marks if m.kind is MarkKind.JOIN}
    assert all(i.start in joins for i in intervals)


@given(intervals=intervals_lists, window_start=times, window_end=times)
def test_property_union_not_more_than_sum_of_clipped_lengths(
    intervals: list[Interval], window_start: datetime, window_end: datetime
) -> None:
    clipped = [(min(i.end, window_end) - max(i.start, window_start)).total_seconds() for i in intervals]
    positive = [c for c in clipped if c > 0]
    total = union_seconds(intervals, window_start, window_end)
    # Float sums of microsecond lengths round differently in the last bit: compare within 1 us.
    assert total <= sum(positive) + 1e-6
    assert total >= max(positive, default=0.0) - 1e-6


@given(
    spans=st.lists(st.tuples(st.integers(-5, 40), st.integers(-5, 40)), max_size=8),
    window=st.tuples(st.integers(-5, 40), st.integers(-5, 40)),
)
def test_property_union_matches_brute_force(spans: list[tuple[int, int]], window: tuple[int, int]) -> None:
    # On a whole-second grid the union is simply the number of covered seconds.
    lo, hi = window
    covered = {s for a, b in spans for s in range(max(a, lo), min(b, hi))}
    intervals = [Interval(T0 + timedelta(seconds=a), T0 + timedelta(seconds=b)) for a, b in spans]
    assert union_seconds(intervals, T0 + timedelta(seconds=lo), T0 + timedelta(seconds=hi)) == len(covered)


class TestSessions:
    """Several device sessions of one person: pair inside each session, then take the union."""

    def test_two_devices_overlapping_count_once_over_their_union(self) -> None:
        start = datetime(2024, 1, 1, 10, tzinfo=UTC)
        end = start + timedelta(minutes=60)
        phone = [Mark(MarkKind.JOIN, start), Mark(MarkKind.LEAVE, start + timedelta(minutes=30))]
        laptop = [
            Mark(MarkKind.JOIN, start + timedelta(minutes=10)),
            Mark(MarkKind.LEAVE, start + timedelta(minutes=50)),
        ]
        got = attendance_from_sessions([phone, laptop], start, end, end)
        assert got.attended_seconds == 50 * 60
        assert got.percent == pytest.approx(83.3)

    def test_reconnect_in_the_same_second_keeps_both_sessions(self) -> None:
        start = datetime(2024, 1, 1, 10, tzinfo=UTC)
        end = start + timedelta(seconds=20)
        first = [Mark(MarkKind.JOIN, start), Mark(MarkKind.LEAVE, start + timedelta(seconds=10))]
        second = [Mark(MarkKind.JOIN, start + timedelta(seconds=10)), Mark(MarkKind.LEAVE, end)]
        got = attendance_from_sessions([first, second], start, end, end)
        assert got.attended_seconds == 20
        assert got.percent == 100.0
