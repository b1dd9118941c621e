"""Realistic, signed Zoom webhook deliveries for tests, benchmarks, the demo and the Zoom sandbox.

Two layers, each in its own module and re-exported here (the names tests and benchmarks import):

* Signing (:mod:`app.sandbox.zoom_webhook_signing`): :func:`sign`, :func:`make_delivery`,
  :func:`url_validation` and :func:`reserialize` turn an event envelope into the exact bytes and headers
  Zoom would POST (``x-zm-signature`` is ``v0=`` + hex HMAC-SHA256(secret, ``v0:{timestamp}:{body}``)).
* Scenarios (:mod:`app.sandbox.zoom_webhook_scenario`): :class:`WebinarScenario` builds the envelopes of
  one classic webinar's life (created, registrations, started, joins/leaves, ended, recording,
  transcript) with ids that are deterministic for a given ``seed``; :func:`big_webinar` (here) builds a
  large one in one call and :func:`shuffled_with_duplicates` models at-least-once, out-of-order delivery.

Payload shapes follow Zoom's documented webhook payloads (see the scenario module); ``event_ts`` is in
milliseconds, the ``x-zm-request-timestamp`` header in seconds.

Standard library only. Naive datetimes are taken as UTC.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from app.sandbox.zoom_webhook_scenario import Participant, Registrant, WebinarScenario
from app.sandbox.zoom_webhook_signing import (
    CONTENT_TYPE,
    URL_VALIDATION_EVENT,
    USER_AGENT,
    Delivery,
    Envelope,
    encrypted_token,
    make_delivery,
    reserialize,
    sign,
    url_validation,
    verify,
)

__all__ = [
    "BIG_WEBINAR_START",
    "CONTENT_TYPE",
    "URL_VALIDATION_EVENT",
    "USER_AGENT",
    "Delivery",
    "Envelope",
    "Participant",
    "Registrant",
    "WebinarScenario",
    "big_webinar",
    "encrypted_token",
    "make_delivery",
    "reserialize",
    "shuffled_with_duplicates",
    "sign",
    "url_validation",
    "verify",
]

# --------------------------------------------------------------------------------------------------
# Bulk helpers
# --------------------------------------------------------------------------------------------------

BIG_WEBINAR_START = datetime(2024, 6, 20, 16, 0, tzinfo=UTC)


def big_webinar(
    account_id: str,
    webinar_id: str,
    *,
    registrants: int,
    attendees: int,
    rejoin_share: float = 0.25,
    seed: int = 1,
    host_id: str = "host1",
    host_email: str = "host@hostco.com",
    start: datetime = BIG_WEBINAR_START,
    duration_minutes: int = 60,
) -> WebinarScenario:
    """A whole webinar in chronological order: created, ``registrants`` registrations (emails
    ``user{i}@example{i % 50}.com``), started, ``attendees`` of the registrants join and leave, of whom
    ``round(attendees * rejoin_share)`` leave early and rejoin once (with a fresh ``user_id`` /
    ``participant_uuid``), ended.

    Exactly ``registrants + 2 * attendees + 2 * round(attendees * rejoin_share) + 3`` events.
    """
    if registrants < 0 or not 0 <= attendees <= registrants:
        raise ValueError("need 0 <= attendees <= registrants")
    if not 0.0 <= rejoin_share <= 1.0:
        raise ValueError("rejoin_share must be within [0, 1]")
    if duration_minutes < 5:
        raise ValueError("duration_minutes must be at least 5")
    s = WebinarScenario(
        account_id=account_id,
        webinar_id=webinar_id,
        host_id=host_id,
        host_email=host_email,
        topic=f"Webinar {webinar_id}",
        start=start,
        duration_minutes=duration_minutes,
        seed=seed,
    )
    rng = random.Random(f"big_webinar:{seed}")
    begin = s.start
    s.created(at=begin - timedelta(days=14))

    # Registrations spread over the two weeks before the start, in time order.
    window = int(timedelta(days=14).total_seconds()) - 3600
    offsets = sorted(rng.randrange(window) for _ in range(registrants))
    registrant_ids: list[str] = []
    for i, offset in enumerate(offsets):
        registered_at = begin - timedelta(days=14) + timedelta(seconds=60 + offset)
        registrant_ids.append(
            s.register(f"user{i}@example{i % 50}.com", f"User{i}", f"Example{i % 50}", at=registered_at)
        )

    started_at = begin + timedelta(seconds=5)
    length = duration_minutes * 60
    ended_at = started_at + timedelta(seconds=length)
    attending = rng.sample(registrant_ids, attendees)
    rejoiners = set(rng.sample(range(attendees), round(attendees * rejoin_share)))

    # (seconds after started_at, tie-breaker, is_join, participant)
    actions: list[tuple[int, int, bool, Participant]] = []
    for n, registrant_id in enumerate(attending):
        p = s.participant_for(registrant_id)
        join_at = rng.randint(1, min(600, length // 4))
        if n in rejoiners:
            left_at = rng.randint(join_at + 60, join_at + length // 4)
            back_at = rng.randint(left_at + 30, left_at + length // 6)
            final_at = rng.randint(back_at + 60, length - 1)
            again = s.rejoin_as(p)
            actions += [
                (join_at, len(actions), True, p),
                (left_at, len(actions) + 1, False, p),
                (back_at, len(actions) + 2, True, again),
                (final_at, len(actions) + 3, False, again),
            ]
        else:
            leave_at = rng.randint(join_at + 60, length - 1)
            actions += [(join_at, len(actions), True, p), (leave_at, len(actions) + 1, False, p)]
    actions.sort(key=lambda a: (a[0], a[1]))

    s.started(at=started_at)
    for offset, _, is_join, p in actions:
        when = started_at + timedelta(seconds=offset)
        if is_join:
            s.join(p, at=when)
        else:
            s.leave(p, at=when)
    s.ended(at=ended_at)
    return s


def shuffled_with_duplicates(envelopes: Sequence[Mapping[str, Any]], seed: int) -> list[Mapping[str, Any]]:
    """Every envelope twice, in a shuffled order (deterministic for ``seed``): at-least-once, out of order."""
    out = [*envelopes, *envelopes]
    random.Random(seed).shuffle(out)
    return out
