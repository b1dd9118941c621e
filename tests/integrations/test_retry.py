"""The shared retry policy: `Retry-After` parsing and exponential backoff with equal jitter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.integrations.retry import backoff_s, parse_retry_after

NOW = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


class TestParseRetryAfter:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            (None, None),
            ("", None),
            ("   ", None),
            ("7", 7.0),
            (" 2.5 ", 2.5),
            ("0", 0.0),
            ("-3", 0.0),
            ("nan", None),
            ("inf", None),
            ("-inf", None),
            ("soon", None),
            ("2024-05-01T10:00:30Z", 30.0),
            ("2024-05-01T10:00:30+00:00", 30.0),
            ("2024-05-01T12:00:30+02:00", 30.0),
            ("2024-05-01T10:00:30", 30.0),  # naive: UTC
            ("2024-05-02T00:00:00Z", 14 * 3600.0),  # a daily limit's reset, as Zoom sends it
            ("2020-05-31T00:00:00Z", 0.0),  # in the past
            ("Wed, 01 May 2024 10:01:00 GMT", 60.0),
            ("Wed, 01 May 2024 10:01:00 -0000", 60.0),  # an HTTP-date without a zone: UTC
            ("Wed, 01 May 2024 09:00:00 GMT", 0.0),
            ("Wed, 99 Foo 2024", None),
        ],
    )
    def test_values(self, value: str | None, expected: float | None) -> None:
        assert parse_retry_after(value, NOW) == expected

    def test_now_in_another_zone(self) -> None:
        now = datetime(2024, 5, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))  # == NOW
        assert parse_retry_after("2024-05-01T10:00:10Z", now) == 10.0

    @given(st.text())
    def test_junk_never_raises_and_never_goes_negative(self, value: str) -> None:
        seconds = parse_retry_after(value, NOW)
        assert seconds is None or seconds >= 0.0

    @given(st.floats(min_value=0, max_value=1e9, allow_nan=False))
    def test_seconds_round_trip(self, seconds: float) -> None:
        assert parse_retry_after(repr(seconds), NOW) == seconds


class TestBackoff:
    @pytest.mark.parametrize(
        ("attempt", "low", "high"),
        [(1, 0.25, 0.5), (2, 0.5, 1.0), (3, 1.0, 2.0), (10, 15.0, 30.0), (0, 0.25, 0.5)],
    )
    def test_bounds_of_the_jitter(self, attempt: int, low: float, high: float) -> None:
        assert backoff_s(attempt, base_s=0.5, max_s=30.0, uniform=lambda a, b: a) == low
        assert backoff_s(attempt, base_s=0.5, max_s=30.0, uniform=lambda a, b: b) == high

    @given(
        attempt=st.integers(min_value=-5, max_value=10_000),
        base_s=st.floats(min_value=0.0, max_value=100.0),
        max_s=st.floats(min_value=0.0, max_value=3600.0),
    )
    def test_between_half_and_all_of_the_capped_ceiling(
        self, attempt: int, base_s: float, max_s: float
    ) -> None:
        ceiling = min(max_s, base_s * 2.0 ** min(max(attempt - 1, 0), 64))
        waited = backoff_s(attempt, base_s=base_s, max_s=max_s)
        assert ceiling / 2 <= waited <= ceiling

    @given(st.integers(min_value=1, max_value=60))
    def test_never_shrinks_from_one_attempt_to_the_next(self, attempt: int) -> None:
        def lowest(a: float, b: float) -> float:
            return a

        def highest(a: float, b: float) -> float:
            return b

        for uniform in (lowest, highest):
            assert backoff_s(attempt, base_s=0.5, max_s=30.0, uniform=uniform) <= backoff_s(
                attempt + 1, base_s=0.5, max_s=30.0, uniform=uniform
            )
