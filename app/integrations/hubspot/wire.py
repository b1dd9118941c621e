"""How values travel to HubSpot: URL segments, date-times, property and token values, batch sizes.

Pure functions shared by the HubSpot client's API areas (`HubSpotClient`); no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from app.integrations.hubspot.models import PropertyValue, TokenValue

BATCH_LIMIT = 100

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
JsonBody = dict[str, Any]


def segment(value: str | int) -> str:
    """One URL path segment; ids come from outside (Zoom), so never let them add path parts."""
    return quote(str(value), safe="")


def iso_utc(moment: datetime) -> str:
    """`2024-05-01T10:00:00.000Z`: the ISO-8601 form HubSpot's v3 APIs accept for date-times."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def epoch_ms(moment: datetime) -> int:
    return (moment.astimezone(UTC) - _EPOCH) // timedelta(milliseconds=1)


def attendance_time_value(moment: datetime) -> str:
    """The value sent for `joinedAt`/`leftAt` of the `attend` state.

    HubSpot does not document the format (ISO-8601 or epoch ms); this is the only place that
    decides it, so switching after a check against a real portal is a one-line change.
    """
    return iso_utc(moment)


def property_value(value: PropertyValue) -> str:
    # HubSpot keeps every property as a string; "" clears a value.
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def properties_json(values: Mapping[str, PropertyValue]) -> dict[str, str]:
    return {name: property_value(value) for name, value in values.items()}


def token_value(value: TokenValue) -> str:
    return value if isinstance(value, str) else str(value)


def check_batch(items: Sequence[Any], what: str) -> None:
    if len(items) > BATCH_LIMIT:
        raise ValueError(f"{what}: {len(items)} inputs, HubSpot takes at most {BATCH_LIMIT} per request")
