"""A successful registration enters the local model as Zoom's own `webinar.registration_created`
event would: an event made from Zoom's answer goes into the inbox, and the normal pipeline
refreshes the contact's properties."""

from __future__ import annotations

import time
from typing import Any

from app.actions.executor import Executed
from app.actions.rules import ActionSuccess, Contact
from app.ingest.synthetic import envelope, store_envelopes
from app.integrations.zoom.models import ZoomWebinar


def registration_object(webinar: ZoomWebinar, success: ActionSuccess, contact: Contact) -> dict[str, Any]:
    """The `object` of the event, shaped like Zoom's webhook payload."""
    obj: dict[str, Any] = {
        "id": int(webinar.id) if webinar.id.isdigit() else webinar.id,
        "uuid": webinar.uuid,
        "host_id": webinar.host_id,
        "topic": webinar.topic,
        "type": webinar.type,
        "start_time": webinar.start_time.isoformat().replace("+00:00", "Z") if webinar.start_time else None,
        "duration": webinar.duration,
        "timezone": webinar.timezone,
        "join_url": webinar.join_url,
        "registration_url": webinar.registration_url,
        "registrant": {
            "id": success.registrant_id,
            "email": contact.email,
            "first_name": contact.first_name,
            "last_name": contact.last_name,
            # Manual approval (1) leaves a new registrant pending at Zoom.
            "status": "pending" if webinar.settings.approval_type == 1 else "approved",
            "join_url": success.join_url,
        },
    }
    return {k: v for k, v in obj.items() if v is not None}


def store_registration_event(session: Any, account_id: str | None, executed: Executed) -> None:
    """In the transaction that records the execution: a success without its webinar or Zoom
    account has nothing to say to the local model."""
    outcome = executed.outcome
    if not (isinstance(outcome, ActionSuccess) and executed.webinar is not None and account_id):
        return
    if executed.contact is None:
        # execute() registers a contact it has checked: a success always carries it.
        raise ValueError("a successful workflow action execution carries no contact")
    obj = registration_object(executed.webinar, outcome, executed.contact)
    event_ts = int(time.time() * 1000)
    store_envelopes(
        session,
        [envelope("webinar.registration_created", event_ts, account_id, obj, source="action")],
    )
