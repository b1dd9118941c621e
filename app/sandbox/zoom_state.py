"""In-memory state and behaviour of the fake Zoom served by :mod:`app.sandbox.zoom`.

This module knows nothing about HTTP routing. :class:`ZoomSandbox` holds the accounts and their OAuth
apps, issued access tokens, users, webinars (registrants, participant sessions, cloud recordings), the
faults and rate limits of the request gate, request statistics, and the webhook target with the record
of every delivery. Whole-request failures raise :class:`ZoomError`, rendered by the HTTP layer as
Zoom's ``{"code": int, "message": str}`` JSON (OAuth failures as ``{"reason", "error"}``).

:class:`ZoomSandbox` is :class:`~app.sandbox.zoom_core.ZoomCore` (setup, tokens, gate, users, webinar
lookup, on top of ``zoom_delivery``'s webhook sending) plus one mixin per resource
(``zoom_registrants``, ``zoom_sessions``, ``zoom_recordings``); what they store is in
``zoom_records``, the request bodies in ``zoom_bodies``, constants, helpers and errors in
``zoom_common``.

Webhook envelopes are built by one :class:`~app.sandbox.zoom_webhook_scenario.WebinarScenario` per
webinar (it also makes the webinar/instance uuids, registrant ids and join URLs, participant ids and
download tokens), then signed with :func:`~app.sandbox.zoom_webhook_signing.make_delivery` and POSTed
to the target.
State changes are synchronous (atomic within the event loop, done under :attr:`ZoomSandbox.lock`);
webhooks are sent afterwards, outside the lock, so the receiving service may call the sandbox's REST
API while it handles the webhook. Deliveries go out one at a time, in the order the events happened.

Choices where Zoom's behaviour is undocumented or simplified (see ``/work/shared/reference/zoom.md``):

* Registrants with status ``cancelled`` are not listed by ``GET /webinars/{id}/registrants`` under any
  ``status`` (``approved``/``pending``/``denied``; other values are a 400 code 300); the state snapshot
  shows them. A cancelled email that registers again gets a new registrant id; an email with an active
  (approved, pending or denied) registration gets that registration back (same id and join_url, 201, no
  webhook).
* Add registrant checks, in order: webinar (400 ``300`` invalid id, 404 ``3001``), registration enabled
  (``3000``), webinar not ended (``3038``), ``email``/``first_name`` present and well-formed (``300``),
  not the host nor an alternative host (``3027``), at most ``registrations_per_day`` requests per UTC day
  for the same email and webinar (429, counted before the duplicate check), then - when
  ``strict_questions`` - every required standard field and custom question answered (``300``; Zoom's
  enforcement is UNVERIFIED). Registrations made through the control API (Zoom's own form) skip the
  per-day limit and the question check.
* A webinar is "over" only after it ended (``/end``), not when its scheduled time has passed. It has
  one instance: it can be started and ended once.
* ``GET /past_webinars/{id}/participants`` and ``GET /report/webinars/{id}/participants`` answer 404
  ``3001`` until the webinar ended. Rows are one per join/leave session in join order; with
  ``include_fields=registrant_id`` every row has ``registrant_id`` (``""`` for non-registrants).
  Guests keep their email in the state, but ``user_email`` (and the webhook ``email``) is ``""``.
  Ending a webinar closes open sessions and sends ``webinar.participant_left`` for each, then
  ``webinar.ended``.
* Recordings need an ended webinar. ``recording.completed`` lists the MP4 and M4A files and is sent only
  when the recording is ``completed`` (a ``processing`` recording is listed by the REST API with
  ``processing`` files that cannot be downloaded). The transcript (``TRANSCRIPT``/``VTT``) is its own
  ``recording.transcript_completed`` event. A transcript file can exist but not be downloadable yet
  (404 code ``3301``, "not found yet"); ``set_transcript`` toggles that and may send the event either
  way, to model the race.
* Downloads accept ``Authorization: Bearer`` with an OAuth token of the recording's account or a
  ``download_token`` of that recording (valid 24 h); tokens in the query string are not accepted (401
  ``124``). With ``redirect_downloads`` the download answers 302 to a signed CDN-like URL on the sandbox.
* The token endpoint and downloads see the ``down``/``error_rate``/``slow_ms`` faults but not
  ``burst_429`` or the per-second rate limits. ``reset`` keeps issued tokens and the accounts.
* Webhooks caused by REST calls (``webinar.registration_created`` after ``POST .../registrants``) are
  sent in the background by default, as Zoom does (``await settle()`` waits for them); webhooks of
  control actions are awaited before the action returns.
"""

from __future__ import annotations

from app.sandbox.zoom_common import (
    JSON,
    iso,
)
from app.sandbox.zoom_recordings import RecordingsMixin
from app.sandbox.zoom_records import (
    Webinar,
)
from app.sandbox.zoom_sessions import SessionsMixin

__all__ = ["ZoomSandbox"]


class ZoomSandbox(SessionsMixin, RecordingsMixin):
    """Every account, its users and webinars, OAuth tokens, faults, rate limits, statistics and
    webhook deliveries. Synchronous methods are REST reads and setup; ``async`` methods change
    webinars and send the matching webhooks."""

    def webinar_snapshot(self, w: Webinar) -> JSON:
        body = w.to_json()
        body.update(
            account_id=w.account_id,
            status=w.status,
            instance_uuid=w.instance_uuid,
            actual_start=iso(w.scenario.actual_start) if w.scenario.actual_start else None,
            actual_end=iso(w.scenario.actual_end) if w.scenario.actual_end else None,
            questions=w.questions_json(),
            registrants=[{**r.to_json(), "source": r.source} for r in w.registrants.values()],
            participants=[s.snapshot() for s in w.sorted_sessions()],
            recording=None,
        )
        rec = w.recording
        if rec is not None:
            rec_json = self._recording_json(w, rec, rec.files)
            rec_json["status"] = rec.status
            for entry, rec_file in zip(rec_json["recording_files"], rec.files, strict=True):
                entry["available"] = rec_file.available
            body["recording"] = rec_json
        return body

    def snapshot(self) -> JSON:
        now = self.clock()
        return {
            "accounts": [{"account_id": a.id, "client_id": a.client_id} for a in self.accounts.values()],
            "public_url": self.public_url,
            "users": [{**u.to_json(), "account_id": u.account_id} for u in self.users.values()],
            "webinars": [self.webinar_snapshot(w) for w in self.webinars.values()],
            "deliveries": [d.to_json() for d in self.deliveries],
            "webhook": self.webhook.to_json() if self.webhook else None,
            "tokens": {
                "issued": len(self.tokens),
                "active": sum(1 for t in self.tokens.values() if t.expires_at > now),
            },
            "faults": self.settings(),
            "stats": self.stats.to_json(),
        }
