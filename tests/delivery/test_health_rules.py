"""What a call's outcome changes in a portal's HubSpot/Zoom health, and when it is worth a write
(app.delivery.health_rules)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.delivery.health_rules import (
    RATE_LIMIT_EXTEND_S,
    REFRESH_S,
    Health,
    Outcome,
    OutcomeKind,
    decide,
    hubspot_outcome,
    safe_error_text,
    view,
    zoom_outcome,
)
from app.integrations.hubspot.errors import (
    HubSpotAuthError,
    HubSpotError,
    HubSpotNotFound,
    HubSpotRateLimited,
    HubSpotServerError,
    HubSpotUnavailable,
    HubSpotValidationError,
)
from app.integrations.zoom.errors import (
    ZoomAuthError,
    ZoomError,
    ZoomRateLimited,
    ZoomUnavailable,
    ZoomWebinarNotFound,
)

T0 = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
WARN_S = 300.0


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def ok(t: float) -> Outcome:
    return Outcome(OutcomeKind.OK, at(t))


def failing(t: float, began: float | None = None, error: str = "503 SERVICE_UNAVAILABLE: down") -> Outcome:
    return Outcome(OutcomeKind.FAILING, at(t), error, began_at=at(began if began is not None else t))


def limited(t: float, wait_s: float) -> Outcome:
    return Outcome(OutcomeKind.RATE_LIMITED, at(t), "429 RATE_LIMIT: slow down", until=at(t + wait_s))


@dataclass
class Store:
    """Applies outcomes the way the recorder does: only a decided change is stored."""

    health: Health = field(default_factory=Health)
    writes: int = 0
    warnings: list[datetime] = field(default_factory=list)
    recoveries: list[datetime] = field(default_factory=list)

    def apply(self, outcome: Outcome, now: datetime | None = None) -> bool:
        change = decide(self.health, outcome, now or outcome.at, warn_after_s=WARN_S)
        if change is None:
            return False
        self.writes += 1
        if change.warn:
            assert change.health.failing_since is not None
            self.warnings.append(change.health.failing_since)
        if change.recovered:
            self.recoveries.append(outcome.at)
        self.health = change.health
        return True


# ---- successes ----------------------------------------------------------------------------------


def test_successes_are_written_once_per_refresh_period_not_per_call() -> None:
    store = Store()
    assert store.apply(ok(0))  # nothing known yet: written
    assert not any(store.apply(ok(t)) for t in range(1, int(REFRESH_S)))
    assert store.apply(ok(REFRESH_S))
    assert store.health.last_ok_at == at(REFRESH_S)
    assert view(store.health, at(REFRESH_S)).state == "ok"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=2.0), min_size=1, max_size=400))
def test_writes_for_a_run_of_successes_are_bounded_by_time_not_by_calls(gaps: list[float]) -> None:
    store = Store()
    t = 0.0
    for gap in gaps:
        t += gap
        store.apply(ok(t))
    assert store.writes <= 1 + int(t // REFRESH_S)


def test_an_outcome_about_one_item_changes_nothing() -> None:
    for health in (Health(), Health(last_ok_at=at(0)), Health(failing_since=at(0), last_error="x")):
        assert decide(health, Outcome(OutcomeKind.NEUTRAL, at(5), "404"), at(5), warn_after_s=0) is None


# ---- outages ------------------------------------------------------------------------------------


def test_an_outage_is_written_when_it_starts_and_refreshed_only_now_and_then() -> None:
    store = Store(Health(last_ok_at=at(0)))
    # The failing call began at 10 s and ended (after its own retries) at 19 s.
    assert store.apply(failing(19, began=10))
    assert store.health.failing_since == at(10)
    assert view(store.health, at(19)).state == "failing"
    assert view(store.health, at(19)).since == at(10)
    assert not store.apply(failing(25, error="502 Bad Gateway"))
    assert store.apply(failing(19 + REFRESH_S, error="502 Bad Gateway"))
    assert store.health.failing_since == at(10)  # still the same outage
    assert store.health.last_error == "502 Bad Gateway"


def test_an_outage_never_starts_before_a_success_seen_after_the_failing_call_began() -> None:
    store = Store(Health(last_ok_at=at(15)))
    assert store.apply(failing(20, began=5))
    assert store.health.failing_since == at(15)


def test_the_warning_comes_once_after_the_threshold_and_the_recovery_once_after_it() -> None:
    store = Store(Health(last_ok_at=at(0)))
    store.apply(failing(10))
    assert not store.warnings
    store.apply(failing(10 + WARN_S - 1))
    assert not store.warnings
    assert store.apply(failing(10 + WARN_S))  # due: written even inside the refresh period
    assert store.warnings == [at(10)]
    assert store.health.warned_at == at(10 + WARN_S)
    for t in range(1, 200):
        store.apply(failing(10 + WARN_S + t))
    assert store.warnings == [at(10)]
    assert store.apply(ok(1000))
    assert store.recoveries == [at(1000)]
    assert store.health.failing_since is None and store.health.warned_at is None
    assert view(store.health, at(1000)).state == "ok"


def test_a_short_outage_recovers_without_any_audit_entry() -> None:
    store = Store(Health(last_ok_at=at(0)))
    store.apply(failing(10))
    assert store.apply(ok(20))
    assert not store.warnings and not store.recoveries


OUTCOME = st.one_of(
    st.tuples(st.just("ok"), st.floats(0, 120)),
    st.tuples(st.just("failing"), st.floats(0, 120)),
    st.tuples(st.just("neutral"), st.floats(0, 120)),
    st.tuples(st.just("limited"), st.floats(0, 120)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(OUTCOME, max_size=120))
def test_each_outage_is_warned_at_most_once_and_only_a_warned_one_recovers(
    events: list[tuple[str, float]],
) -> None:
    store = Store()
    t = 0.0
    outages: list[datetime] = []
    for kind, gap in events:
        t += gap
        was_failing = store.health.failing_since
        if kind == "ok":
            store.apply(ok(t))
        elif kind == "failing":
            store.apply(failing(t))
        elif kind == "neutral":
            assert not store.apply(Outcome(OutcomeKind.NEUTRAL, at(t)))
        else:
            store.apply(limited(t, gap))
        if was_failing is None and store.health.failing_since is not None:
            outages.append(store.health.failing_since)
        # The warning only once the outage is older than the threshold.
        if store.health.warned_at is not None:
            assert store.health.failing_since is not None
            assert store.health.warned_at - store.health.failing_since >= timedelta(seconds=WARN_S)
    assert len(store.warnings) == len(set(store.warnings))  # at most one per outage
    assert set(store.warnings) <= set(outages)
    assert len(store.recoveries) <= len(store.warnings)
    assert len(store.warnings) - len(store.recoveries) == (1 if store.health.warned_at else 0)


# ---- rate limits --------------------------------------------------------------------------------


def test_a_rate_limit_is_written_when_new_or_much_longer_and_shows_until_it_ends() -> None:
    store = Store(Health(last_ok_at=at(0)))
    assert store.apply(limited(10, 1))
    assert view(store.health, at(10)).state == "rate_limited"
    assert view(store.health, at(10)).rate_limited_until == at(11)
    assert not store.apply(limited(10.5, 1))  # a burst of 429s: one write
    assert store.apply(limited(10.6, RATE_LIMIT_EXTEND_S + 1))
    assert store.health.rate_limited_until == at(10.6 + RATE_LIMIT_EXTEND_S + 1)
    later = view(store.health, at(100))
    assert later.state == "ok" and later.rate_limited_until is None
    assert store.apply(limited(100, 2))  # the earlier one is over: a new one


def test_an_outage_shows_before_a_rate_limit() -> None:
    health = Health(last_ok_at=at(0), failing_since=at(5), rate_limited_until=at(60))
    assert view(health, at(10)).state == "failing"
    assert view(None, at(10)).state == "unknown"


# ---- which errors mean what -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (None, OutcomeKind.OK),
        (HubSpotServerError(503, "SERVICE_UNAVAILABLE", "down"), OutcomeKind.FAILING),
        (HubSpotServerError(500, "INTERNAL_ERROR", "oops"), OutcomeKind.FAILING),
        (HubSpotUnavailable(None, "TRANSPORT_ERROR", "ConnectTimeout"), OutcomeKind.FAILING),
        (HubSpotAuthError(401, "INVALID_AUTHENTICATION", "expired"), OutcomeKind.FAILING),
        (HubSpotAuthError(403, "MISSING_SCOPES", "scope"), OutcomeKind.FAILING),
        (HubSpotRateLimited(429, "RATE_LIMIT", "slow", retry_after_s=7), OutcomeKind.RATE_LIMITED),
        (HubSpotValidationError(400, "VALIDATION_ERROR", "bad email"), OutcomeKind.NEUTRAL),
        (HubSpotValidationError(409, "CONFLICT", "exists"), OutcomeKind.NEUTRAL),
        (HubSpotNotFound(404, "OBJECT_NOT_FOUND", "no contact"), OutcomeKind.NEUTRAL),
        (HubSpotError(None, "UNEXPECTED_RESPONSE", "not JSON"), OutcomeKind.NEUTRAL),
    ],
)
def test_hubspot_errors(error: HubSpotError | None, kind: OutcomeKind) -> None:
    outcome = hubspot_outcome(error, at(0), at(3))
    assert outcome.kind is kind
    if kind is OutcomeKind.RATE_LIMITED:
        assert outcome.until == at(10)
    if kind is OutcomeKind.FAILING:
        assert outcome.began_at == at(0)
        assert error is not None and outcome.error is not None
        assert outcome.error.startswith(str(error.status or error.category))


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (None, OutcomeKind.OK),
        (ZoomUnavailable(503, None, "down"), OutcomeKind.FAILING),
        (ZoomUnavailable(None, None, "ConnectError"), OutcomeKind.FAILING),
        (ZoomAuthError(401, 124, "Invalid access token."), OutcomeKind.FAILING),
        (ZoomRateLimited(429, 429, "too many", retry_after_s=4), OutcomeKind.RATE_LIMITED),
        (ZoomWebinarNotFound(404, 3001, "Webinar does not exist"), OutcomeKind.NEUTRAL),
        (ZoomError(400, 300, "bad request"), OutcomeKind.NEUTRAL),
    ],
)
def test_zoom_errors(error: ZoomError | None, kind: OutcomeKind) -> None:
    outcome = zoom_outcome(error, at(0), at(3))
    assert outcome.kind is kind
    if kind is OutcomeKind.RATE_LIMITED:
        assert outcome.until == at(7)


def test_error_text_never_carries_an_email_or_a_token() -> None:
    text = safe_error_text(502, "BAD_GATEWAY", "failed for ada@example.com with Bearer abc.def " + "x" * 400)
    assert "ada@example.com" not in text and "abc.def" not in text
    assert text.startswith("502 BAD_GATEWAY: failed for [email]")
    assert len(text) <= 300
