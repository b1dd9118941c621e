"""Events the service makes itself from Zoom REST answers (workflow action, Sync now, backfill).

They are stored in the inbox exactly like webhook deliveries, in Zoom's webhook shape, so one
pipeline turns both into the local model with the same keys: a registration learnt from the REST
API and later from its webhook is one registration. `x_source` says where an event came from.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from app.db import dialect_insert, utcnow
from app.ingest.zoom_events import inbox_row, parse_envelope
from app.models import InboxEvent

SOURCE_KEY = "x_source"


def envelope(
    event: str, event_ts: int, account_id: str, obj: Mapping[str, Any], *, source: str
) -> dict[str, Any]:
    return {
        "event": event,
        "event_ts": event_ts,
        SOURCE_KEY: source,
        "payload": {"account_id": account_id, "object": dict(obj)},
    }


def store_envelopes(
    session: Session, envelopes: Sequence[Mapping[str, Any]], received_at: datetime | None = None
) -> int:
    """Add the events to the inbox in the caller's transaction; already-stored ones are skipped."""
    if not envelopes:
        return 0
    at = received_at or utcnow()
    rows = []
    for env in envelopes:
        raw = json.dumps(env, separators=(",", ":"), default=str).encode()
        rows.append(inbox_row(parse_envelope(raw), raw, at))
    table = InboxEvent.__table__  # type: ignore[attr-defined]
    stmt = dialect_insert(session, table).on_conflict_do_nothing(index_elements=["delivery_key"])
    result = session.execute(stmt, rows)
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
