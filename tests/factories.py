"""Plain factory functions for test data."""

from __future__ import annotations

from typing import Any


def joined_event(
    i: int = 0, *, webinar_id: str = "89412345678", account_id: str = "acct_test_01"
) -> dict[str, Any]:
    """A minimal, realistic webinar.participant_joined envelope for participant number i."""
    return {
        "event": "webinar.participant_joined",
        "event_ts": 1718899320000 + i,
        "payload": {
            "account_id": account_id,
            "object": {
                "id": webinar_id,
                "uuid": "Zt5p8bQ2Rx6m0yS1aK9wVg==",
                "host_id": "h0StUsErId00000001",
                "topic": "Q3 Product Webinar",
                "type": 5,
                "start_time": "2024-06-20T16:00:05Z",
                "timezone": "America/New_York",
                "duration": 60,
                "participant": {
                    "user_id": str(16778240 + i),
                    "user_name": f"Person {i}",
                    "id": "",
                    "join_time": "2024-06-20T16:02:00Z",
                    "email": f"person{i}@example.com",
                    "registrant_id": f"reg-{i}",
                    "participant_user_id": "",
                    "participant_uuid": f"uuid-{i}",
                },
            },
        },
    }
