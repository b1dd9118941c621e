"""Per-portal health of the calls to HubSpot and Zoom: what an outcome changes, and when to write it.

Pure rules, no I/O. The delivery path sees thousands of successful calls a minute; storing each one
would cost a write per call, so a call's outcome is compared with what is stored and only a change
worth showing is written: a transition ok -> failing or failing -> ok, a new (or much longer) rate
limit, the audit warning of an outage coming due, and otherwise at most one refresh of `last_ok_at`
or `last_error` every `refresh_s`.

Which outcomes count: a call that HubSpot or Zoom answered is ok; 5xx, transport errors and
timeouts, and a refused token (401/403) mean the portal's calls are failing; a 429 is a rate limit
until its Retry-After. A 4xx about one item (400, 404, 409, 422: a bad email, a missing contact)
says nothing about the portal and changes nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from app.integrations.hubspot.errors import (
    HubSpotAuthError,
    HubSpotError,
    HubSpotRateLimited,
    HubSpotServerError,
    HubSpotUnavailable,
)
from app.integrations.zoom.errors import ZoomAuthError, ZoomError, ZoomRateLimited, ZoomUnavailable

REFRESH_S = 30.0  # at most one refresh of last_ok_at / last_error per portal and service in this time
RATE_LIMIT_EXTEND_S = 5.0  # a rate limit pushed further than this is written again
MAX_ERROR_CHARS = 300
_EMAIL = re.compile(r"[^\s@<>\"'(),;:]+@[^\s@<>\"'(),;:]+")
_BEARER = re.compile(r"(?i)bearer\s+\S+")


class Service(StrEnum):
    HUBSPOT = "hubspot"
    ZOOM = "zoom"


class OutcomeKind(StrEnum):
    OK = "ok"
    FAILING = "failing"
    RATE_LIMITED = "rate_limited"
    NEUTRAL = "neutral"  # about one item, not the portal: changes nothing


@dataclass(frozen=True)
class Outcome:
    kind: OutcomeKind
    at: datetime  # when the answer (or the failure) came
    error: str | None = None
    # FAILING: when the failing call began (its retries may have taken a while): the outage's start.
    began_at: datetime | None = None
    until: datetime | None = None  # RATE_LIMITED: no call before this


@dataclass(frozen=True)
class Health:
    """What is stored per portal and service (an empty Health: nothing known yet)."""

    last_ok_at: datetime | None = None
    failing_since: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    rate_limited_until: datetime | None = None
    warned_at: datetime | None = None


@dataclass(frozen=True)
class Change:
    """A new state to store, and the audit entry that goes with it."""

    health: Health
    warn: bool = False  # the outage has lasted past the threshold: write its warning now
    recovered: bool = False  # an outage that was warned about has ended: write the recovery


def decide(
    stored: Health,
    outcome: Outcome,
    now: datetime,
    *,
    warn_after_s: float,
    refresh_s: float = REFRESH_S,
) -> Change | None:
    """The change `outcome` makes to `stored`, or None when nothing needs writing."""
    refresh = timedelta(seconds=refresh_s)
    if outcome.kind is OutcomeKind.NEUTRAL:
        return None
    if outcome.kind is OutcomeKind.OK:
        if stored.failing_since is not None:
            health = replace(stored, last_ok_at=outcome.at, failing_since=None, warned_at=None)
            return Change(_tidy(health, now), recovered=stored.warned_at is not None)
        if stored.last_ok_at is None or outcome.at - stored.last_ok_at >= refresh:
            return Change(_tidy(replace(stored, last_ok_at=outcome.at), now))
        return None
    if outcome.kind is OutcomeKind.FAILING:
        since = stored.failing_since
        if since is None:
            since = outcome.began_at or outcome.at
            # A call that succeeded after this one began shows the outage started later.
            if stored.last_ok_at is not None and stored.last_ok_at > since:
                since = min(stored.last_ok_at, outcome.at)
        warn = warning_due(replace(stored, failing_since=since), now, warn_after_s)
        stale = stored.last_error_at is None or outcome.at - stored.last_error_at >= refresh
        if stored.failing_since is not None and not warn and not stale:
            return None
        health = replace(
            stored,
            failing_since=since,
            last_error=outcome.error,
            last_error_at=outcome.at,
            warned_at=now if warn else stored.warned_at,
        )
        return Change(_tidy(health, now), warn=warn)
    until = outcome.until or outcome.at
    current = stored.rate_limited_until
    fresh = current is None or current <= outcome.at
    extended = current is not None and until - current >= timedelta(seconds=RATE_LIMIT_EXTEND_S)
    if not fresh and not extended:
        return None
    health = replace(stored, rate_limited_until=until, last_error=outcome.error, last_error_at=outcome.at)
    return Change(health)


def _tidy(health: Health, now: datetime) -> Health:
    """A rate limit that is over is not kept."""
    if health.rate_limited_until is not None and health.rate_limited_until <= now:
        return replace(health, rate_limited_until=None)
    return health


@dataclass(frozen=True)
class HealthView:
    state: str  # "ok" | "failing" | "rate_limited" | "unknown"
    since: datetime | None
    last_ok_at: datetime | None
    last_error: str | None
    rate_limited_until: datetime | None


def view(health: Health | None, now: datetime) -> HealthView:
    """What /api/v1/status shows: an outage wins over a rate limit, which wins over ok."""
    h = health or Health()
    limited = h.rate_limited_until if h.rate_limited_until and h.rate_limited_until > now else None
    since: datetime | None
    if h.failing_since is not None:
        state, since = "failing", h.failing_since
    elif limited is not None:
        state, since = "rate_limited", h.last_error_at
    elif h.last_ok_at is not None:
        state, since = "ok", None
    else:
        state, since = "unknown", None
    return HealthView(state, since, h.last_ok_at, h.last_error, limited)


def warning_due(health: Health, now: datetime, warn_after_s: float) -> bool:
    return (
        health.failing_since is not None
        and health.warned_at is None
        and now - health.failing_since >= timedelta(seconds=warn_after_s)
    )


# ---- outcomes of the two platforms' calls -----------------------------------------------------------


def safe_error_text(status: int | None, category: str | None, message: str) -> str:
    """`503 SERVICE_UNAVAILABLE: message`, with anything looking like an email or a bearer token
    masked (a status page must not leak them), cut to what the column holds."""
    head = " ".join(str(p) for p in (status, category) if p)
    text = f"{head}: {message}" if head else message
    text = _BEARER.sub("Bearer [redacted]", text)
    return _EMAIL.sub("[email]", text)[:MAX_ERROR_CHARS]


def hubspot_outcome(error: HubSpotError | None, began_at: datetime, now: datetime) -> Outcome:
    if error is None:
        return Outcome(OutcomeKind.OK, now)
    text = safe_error_text(error.status, error.category, error.message)
    if isinstance(error, HubSpotRateLimited):
        return Outcome(
            OutcomeKind.RATE_LIMITED, now, text, until=now + timedelta(seconds=error.retry_after_s)
        )
    if isinstance(error, HubSpotServerError | HubSpotUnavailable | HubSpotAuthError):
        return Outcome(OutcomeKind.FAILING, now, text, began_at=began_at)
    return Outcome(OutcomeKind.NEUTRAL, now, text)


def zoom_outcome(error: ZoomError | None, began_at: datetime, now: datetime) -> Outcome:
    if error is None:
        return Outcome(OutcomeKind.OK, now)
    category = str(error.code) if error.code is not None else None
    text = safe_error_text(error.status, category, error.message)
    if isinstance(error, ZoomRateLimited):
        wait = error.retry_after_s if error.retry_after_s is not None else 1.0
        return Outcome(OutcomeKind.RATE_LIMITED, now, text, until=now + timedelta(seconds=wait))
    if isinstance(error, ZoomUnavailable | ZoomAuthError) or (error.status or 0) == 403:
        return Outcome(OutcomeKind.FAILING, now, text, began_at=began_at)
    return Outcome(OutcomeKind.NEUTRAL, now, text)
