"""app.ingest.zoom_events: envelope parsing and the delivery key that de-duplicates redeliveries."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.ingest.zoom_events import EnvelopeError, delivery_key, parse_envelope
from app.sandbox.zoom_webhooks import WebinarScenario, make_delivery, reserialize
from tests.fixtures.factories import joined_event
from tests.fixtures.service import ACCOUNT_ID, ZOOM_SECRET

START = datetime(2026, 1, 1, 16, tzinfo=UTC)


def _scenario() -> WebinarScenario:
    return WebinarScenario(
        account_id=ACCOUNT_ID,
        webinar_id="89412345678",
        host_id="host1",
        host_email="host@hostco.com",
        topic="T",
        start=START,
        duration_minutes=60,
        webinar_type=5,
        seed=7,
    )


def _key(envelope: dict[str, Any] | bytes) -> str:
    raw = envelope if isinstance(envelope, bytes) else json.dumps(envelope).encode()
    return delivery_key(parse_envelope(raw))


class TestParseEnvelope:
    def test_fields(self) -> None:
        env = parse_envelope(json.dumps(joined_event(3)).encode())
        assert env.event == "webinar.participant_joined"
        assert env.event_ts == 1718899320003
        assert env.account_id == ACCOUNT_ID
        assert env.webinar_id == "89412345678"
        assert env.body["payload"]["object"]["participant"]["registrant_id"] == "reg-3"

    def test_numeric_webinar_id_becomes_string(self) -> None:
        event = joined_event()
        event["payload"]["object"]["id"] = 89412345678
        assert parse_envelope(json.dumps(event).encode()).webinar_id == "89412345678"

    def test_float_event_ts_becomes_int(self) -> None:
        event = joined_event()
        event["event_ts"] = 1718899320000.0
        env = parse_envelope(json.dumps(event).encode())
        assert env.event_ts == 1718899320000
        assert isinstance(env.event_ts, int)

    def test_missing_event_ts_is_allowed(self) -> None:
        event = joined_event()
        del event["event_ts"]
        assert parse_envelope(json.dumps(event).encode()).event_ts is None

    def test_non_webinar_event_has_no_webinar_id(self) -> None:
        raw = b'{"event":"meeting.started","event_ts":1,"payload":{"account_id":"a","object":{"id":123}}}'
        env = parse_envelope(raw)
        assert env.event == "meeting.started"
        assert env.webinar_id is None

    def test_url_validation(self) -> None:
        env = parse_envelope(b'{"event":"endpoint.url_validation","payload":{"plainToken":"p"},"event_ts":1}')
        assert env.event == "endpoint.url_validation"
        assert env.account_id is None

    @pytest.mark.parametrize(
        ("raw", "message"),
        [
            (b'{"event": "webinar.started", "payload": ', "not valid JSON"),
            (b"", "not valid JSON"),
            (b"\xff\xfe{}", "not valid JSON"),
            (b"[1, 2]", "must be a JSON object, got list"),
            (b'"webinar.started"', "must be a JSON object, got str"),
            (b"null", "must be a JSON object"),
            (b'{"payload": {}}', "no 'event'"),
            (b'{"event": "", "payload": {}}', "no 'event'"),
            (b'{"event": 5, "payload": {}}', "no 'event'"),
            (b'{"event": "webinar.started"}', "no 'payload'"),
            (b'{"event": "webinar.started", "payload": []}', "no 'payload'"),
            (b'{"event": "webinar.started", "payload": {}, "event_ts": "1718899320000"}', "'event_ts'"),
            (b'{"event": "webinar.started", "payload": {}, "event_ts": true}', "'event_ts'"),
            (b'{"event": "webinar.started", "payload": {}, "event_ts": [1]}', "'event_ts'"),
        ],
    )
    def test_errors_say_why(self, raw: bytes, message: str) -> None:
        with pytest.raises(EnvelopeError) as info:
            parse_envelope(raw)
        assert message in str(info.value)

    @pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e999"])
    def test_non_finite_event_ts_is_an_envelope_error(self, value: str) -> None:
        # Python's json accepts these literals; they are not numbers of milliseconds, so the endpoint must
        # answer 400 (EnvelopeError), not crash with a bare ValueError/OverflowError (a 500).
        raw = b'{"event": "webinar.started", "payload": {}, "event_ts": ' + value.encode() + b"}"
        with pytest.raises(EnvelopeError, match="event_ts"):
            parse_envelope(raw)


class TestDeliveryKey:
    def test_is_sha256_hex(self) -> None:
        key = _key(joined_event())
        assert len(key) == 64
        int(key, 16)

    def test_equal_for_reserialised_json(self) -> None:
        first = make_delivery(ZOOM_SECRET, joined_event())
        again = reserialize(first, ZOOM_SECRET)
        assert again.body != first.body
        assert _key(first.body) == _key(again.body)

    def test_equal_for_key_order_and_whitespace(self) -> None:
        event = joined_event()
        compact = json.dumps(event, separators=(",", ":")).encode()
        pretty = json.dumps(event, indent=4, sort_keys=True).encode()
        assert _key(compact) == _key(pretty)

    def test_equal_for_numeric_and_string_webinar_id(self) -> None:
        as_string = joined_event()
        as_number = copy.deepcopy(as_string)
        as_number["payload"]["object"]["id"] = 89412345678
        assert _key(as_string) == _key(as_number)

    def test_equal_for_int_and_float_event_ts(self) -> None:
        as_int = joined_event()
        as_float = copy.deepcopy(as_int)
        as_float["event_ts"] = float(as_int["event_ts"])
        assert _key(as_int) == _key(as_float)

    def test_differs_for_different_participants(self) -> None:
        a = joined_event(1)
        b = joined_event(2)
        b["event_ts"] = a["event_ts"]  # same instant, other person
        assert _key(a) != _key(b)

    def test_differs_for_rejoin_of_the_same_registrant(self) -> None:
        s = _scenario()
        s.started(at=START)
        p = s.participant_for(s.register("ada@example.com", "Ada", at=START - timedelta(days=1)))
        first = s.join(p, at=START + timedelta(minutes=1))
        again = s.join(s.rejoin_as(p), at=START + timedelta(minutes=20))
        assert _key(first) != _key(again)

    def test_differs_for_join_and_leave(self) -> None:
        s = _scenario()
        s.started(at=START)
        p = s.participant_for(s.register("ada@example.com", "Ada", at=START - timedelta(days=1)))
        joined = s.join(p, at=START + timedelta(minutes=1))
        left = s.leave(p, at=START + timedelta(minutes=1))  # same event_ts on purpose
        assert joined["event_ts"] == left["event_ts"]
        assert _key(joined) != _key(left)
        # Even with the very same object, the event name alone keeps them apart.
        renamed = copy.deepcopy(joined)
        renamed["event"] = "webinar.participant_left"
        assert _key(joined) != _key(renamed)

    def test_differs_for_different_registrants(self) -> None:
        s = _scenario()
        s.register("a@example.com", "A", "One", at=START)
        s.register("b@example.com", "B", "Two", at=START)
        first, second = s.envelopes
        assert first["event_ts"] == second["event_ts"]
        assert _key(first) != _key(second)

    def test_differs_for_registration_status_changes(self) -> None:
        s = _scenario()
        rid = s.register("a@example.com", "A", "One", at=START)
        s.cancel(rid, at=START)
        created, cancelled = s.envelopes
        assert _key(created) != _key(cancelled)

    def test_differs_for_different_event_ts(self) -> None:
        a = joined_event()
        b = copy.deepcopy(a)
        b["event_ts"] = a["event_ts"] + 1
        assert _key(a) != _key(b)

    def test_differs_for_different_accounts(self) -> None:
        assert _key(joined_event(account_id="acct_a")) != _key(joined_event(account_id="acct_b"))

    def test_differs_for_different_webinars(self) -> None:
        assert _key(joined_event(webinar_id="111")) != _key(joined_event(webinar_id="222"))

    def test_equal_for_recording_redelivered_with_new_download_token(self) -> None:
        s = _scenario()
        event = s.recording_completed(at=START + timedelta(hours=1))
        other = copy.deepcopy(event)
        other["download_token"] = "a-completely-different-token"
        for f in other["payload"]["object"]["recording_files"]:
            f["download_url"] += "?redelivered=1"
        assert other != event
        assert _key(event) == _key(other)
        # Re-serialised on top of that: still the same occurrence.
        again = reserialize(make_delivery(ZOOM_SECRET, other), ZOOM_SECRET)
        assert _key(event) == _key(again.body)

    def test_differs_for_recording_with_other_files(self) -> None:
        s = _scenario()
        event = s.recording_completed(at=START + timedelta(hours=1))
        other = copy.deepcopy(event)
        other["payload"]["object"]["recording_files"][0]["id"] = "another-file-id"
        assert _key(event) != _key(other)

    def test_recording_and_transcript_differ(self) -> None:
        s = _scenario()
        at = START + timedelta(hours=1)
        recording = s.recording_completed(at=at)
        transcript = s.transcript_completed(at=at)
        assert _key(recording) != _key(transcript)

    def test_webinar_updates_with_different_content_differ(self) -> None:
        base: dict[str, Any] = {
            "event": "webinar.updated",
            "event_ts": 1718899320000,
            "payload": {"account_id": ACCOUNT_ID, "object": {"id": 89412345678, "topic": "Old"}},
        }
        changed = copy.deepcopy(base)
        changed["payload"]["object"]["topic"] = "New"
        assert _key(base) != _key(changed)
        assert _key(base) == _key(json.loads(json.dumps(base)))

    def test_without_event_ts_whole_body_is_the_key(self) -> None:
        a = joined_event()
        del a["event_ts"]
        b = copy.deepcopy(a)
        b["payload"]["object"]["participant"]["user_name"] = "Someone else"
        assert _key(a) == _key(json.dumps(a, indent=2, sort_keys=True).encode())
        assert _key(a) != _key(b)
