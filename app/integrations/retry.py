"""The retry policy shared by the HubSpot and Zoom REST clients: how long to wait before retrying.

Pure functions, no I/O. The clients decide *whether* to retry (429, 5xx, transport errors) and how
long a server-requested wait they will sit out in-process, and `app.integrations.calls.CallRunner`
runs the attempts; this module only says how long to wait.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

# 2**64 times any sane base is far past any ceiling; capping the exponent keeps the maths finite.
_MAX_EXPONENT = 64


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from `now`, from a `Retry-After` value that is either seconds ("7"), an
    ISO-8601 date-time ("2020-05-31T00:00:00Z", as Zoom documents for daily limits) or an HTTP-date.

    A moment in the past (or negative seconds) gives 0; an absent, unreadable or non-finite value
    gives None, so the caller falls back to its own default. Naive times are UTC.
    """
    if value is None:
        return None
    raw = value.strip()
    if not raw:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    moment: datetime | None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        try:
            moment = parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            moment = None
    if moment is None:
        return None
    seconds = (_aware(moment) - _aware(now)).total_seconds()
    return max(seconds, 0.0) if math.isfinite(seconds) else None


def backoff_s(
    attempt: int,
    *,
    base_s: float,
    max_s: float,
    uniform: Callable[[float, float], float] = random.uniform,
) -> float:
    """Wait after failed attempt number `attempt` (1-based): exponential with "equal jitter".

    The ceiling is `base_s * 2^(attempt-1)`, capped at `max_s`; the wait is between half of it and
    all of it. Half is fixed so a retry never comes back at once; the random half spreads clients
    that failed together (e.g. during an outage) so they do not retry in lockstep.
    """
    exponent = min(max(attempt - 1, 0), _MAX_EXPONENT)
    ceiling = min(max_s, base_s * 2.0**exponent)
    return ceiling / 2 + uniform(0.0, ceiling / 2)
