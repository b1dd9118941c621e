"""The kinds of outbox operation: what the planner writes and the dispatcher knows how to send."""

from __future__ import annotations

from enum import StrEnum


class OpKind(StrEnum):
    CONTACT_REFRESH = "contact_refresh"  # upsert contact + P1-P4, values read when sent
    REGISTRATION_EVENT = "registration_event"  # E3 timeline event
    ATTENDANCE_EVENT = "attendance_event"  # E2 timeline event, once the webinar ended
    MARKETING_EVENT = "marketing_event"  # ME1: the event itself (create/update)
    MARKETING_STATE = "marketing_state"  # ME1: a contact's register/attend/cancel state
    MARKETING_COMPLETE = "marketing_complete"  # ME1: mark the event complete after it ended
    RECORDING_CALL = "recording_call"  # RC1/E1: call record + associations + recordable events
