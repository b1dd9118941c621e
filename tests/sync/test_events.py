"""Parsing Zoom envelopes into typed facts (app.sync.events)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from app.sync.events import BadEventError, parse_event, parse_time, person_key
from tests.fixtures.factories import joined_event


def _body(env: dict[str, Any]) -> bytes:
    return json.dumps(env).encode()


class TestParseTime:
    @pytest.mark.parametrize(
        ("raw", "expected"),
        [
            ("2024-06-20T16:02:00Z", datetime(2024, 6, 20, 16, 2, tzinfo=UTC)),
            ("2024-06-20T18:02:00+02:00", datetime(2024, 6, 20, 16, 2, tzinfo=UTC)),
            ("2024-06-20T16:02:00", datetime(2024, 6, 20, 16, 2, tzinfo=UTC)),
            ("", None),
            ("yesterday", None),
            (None, None),
            (12345, None),
        ],
    )
    def test_parse_time(self, raw: object, expected: datetime | None) -> None:
        assert parse_time(raw) == expected


class TestParticipantEvents:
    def test_join_mark_keyed_by_registrant_and_device_session(self) -> None:
        parsed = parse_event(_body(joined_event(3)))
        assert parsed.mark is not None
        assert parsed.mark.kind == "join"
        assert parsed.mark.person_key == "r:reg-3"
        assert parsed.mark.session_key == "uuid-3"
        assert parsed.mark.at == datetime(2024, 6, 20, 16, 2, tzinfo=UTC)
        assert parsed.meta is not None and parsed.meta.webinar_id == "89412345678"
        # A participant event never overwrites the scheduled start with the instance's.
        assert "scheduled_start_at" not in parsed.meta.fields

    def test_numeric_id_becomes_string(self) -> None:
        env = joined_event()
        env["payload"]["object"]["id"] = 89412345678
        parsed = parse_event(_body(env))
        assert parsed.meta is not None and parsed.meta.webinar_id == "89412345678"

    def test_guest_without_email_is_keyed_by_name(self) -> None:
        env = joined_event()
        p = env["payload"]["object"]["participant"]
        p["email"] = ""
        del p["registrant_id"]
        parsed = parse_event(_body(env))
        assert parsed.mark is not None
        assert parsed.mark.person_key == "n:person 0"
        assert parsed.mark.raw_email is None

    def test_leave_without_time_uses_event_ts(self) -> None:
        env = joined_event()
        env["event"] = "webinar.participant_left"
        del env["payload"]["object"]["participant"]["join_time"]
        parsed = parse_event(_body(env))
        assert parsed.mark is not None and parsed.mark.kind == "leave"
        assert parsed.mark.at == datetime.fromtimestamp(env["event_ts"] / 1000, UTC)

    @pytest.mark.parametrize(
        ("mutate", "message"),
        [
            (lambda e: e["payload"].pop("object"), "payload.object"),
            (lambda e: e["payload"].pop("account_id"), "account_id"),
            (lambda e: e["payload"]["object"].update(id="not-a-number"), "webinar id"),
            (lambda e: e["payload"]["object"].pop("participant"), "participant"),
        ],
    )
    def test_unprocessable(self, mutate: Any, message: str) -> None:
        env = joined_event()
        mutate(env)
        with pytest.raises(BadEventError, match=message):
            parse_event(_body(env))


class TestRegistrationEvents:
    def _env(self, event: str, **registrant: Any) -> dict[str, Any]:
        reg = {"id": "r1", "first_name": "Ada", "last_name": "L", "email": "Ada@Example.com"} | registrant
        return {
            "event": event,
            "event_ts": 1000,
            "payload": {
                "account_id": "a",
                "object": {"id": 123, "host_id": "h", "topic": "T", "registrant": reg},
            },
        }

    @pytest.mark.parametrize(
        ("event", "status", "expected"),
        [
            ("webinar.registration_created", "approved", "approved"),
            ("webinar.registration_created", "pending", "pending"),
            ("webinar.registration_approved", None, "approved"),
            ("webinar.registration_cancelled", None, "cancelled"),
            ("webinar.registration_denied", None, "denied"),
        ],
    )
    def test_status(self, event: str, status: str | None, expected: str) -> None:
        extra = {"status": status} if status else {}
        parsed = parse_event(_body(self._env(event, **extra)))
        assert parsed.registration is not None
        assert parsed.registration.status == expected
        assert parsed.registration.raw_email == "Ada@Example.com"
        assert parsed.meta is not None and not parsed.meta.authoritative

    def test_missing_registrant_id(self) -> None:
        env = self._env("webinar.registration_created")
        del env["payload"]["object"]["registrant"]["id"]
        with pytest.raises(BadEventError, match=r"registrant\.id"):
            parse_event(_body(env))


class TestWebinarEvents:
    def test_created_is_authoritative_and_names_the_host_email(self) -> None:
        env = {
            "event": "webinar.created",
            "event_ts": 5,
            "payload": {
                "account_id": "a",
                "operator": "Host@HostCo.com",
                "operator_id": "h1",
                "object": {
                    "id": 1,
                    "host_id": "h1",
                    "topic": "T",
                    "type": 5,
                    "start_time": "2024-01-01T00:00:00Z",
                },
            },
        }
        parsed = parse_event(_body(env))
        assert parsed.meta is not None and parsed.meta.authoritative
        assert parsed.meta.host_email == "host@hostco.com"
        assert parsed.meta.fields["webinar_type"] == 5
        assert parsed.meta.fields["scheduled_start_at"] == datetime(2024, 1, 1, tzinfo=UTC)

    def test_operator_other_than_host_is_not_the_host_email(self) -> None:
        env = {
            "event": "webinar.updated",
            "event_ts": 5,
            "payload": {
                "account_id": "a",
                "operator": "admin@hostco.com",
                "operator_id": "admin1",
                "object": {"id": 1, "host_id": "h1", "topic": "New"},
            },
        }
        parsed = parse_event(_body(env))
        assert parsed.meta is not None and parsed.meta.host_email is None
        assert parsed.meta.fields == {"host_id": "h1", "topic": "New"}

    def test_ended_sets_actual_end(self) -> None:
        env = {
            "event": "webinar.ended",
            "event_ts": 5,
            "payload": {
                "account_id": "a",
                "object": {
                    "id": "1",
                    "start_time": "2024-01-01T10:00:00Z",
                    "end_time": "2024-01-01T11:00:00Z",
                },
            },
        }
        parsed = parse_event(_body(env))
        assert parsed.meta is not None
        assert parsed.meta.fields["actual_start_at"] == datetime(2024, 1, 1, 10, tzinfo=UTC)
        assert parsed.meta.fields["actual_end_at"] == datetime(2024, 1, 1, 11, tzinfo=UTC)

    def test_events_webinar_is_marked_unsupported(self) -> None:
        env = {
            "event": "webinar.created",
            "event_ts": 5,
            "payload": {"account_id": "a", "object": {"id": 1, "creation_source": "zoom_events"}},
        }
        parsed = parse_event(_body(env))
        assert parsed.meta is not None and parsed.meta.fields["unsupported_reason"]


def test_person_key_precedence() -> None:
    assert person_key("r1", "a@b.co", "Ann", "s") == "r:r1"
    assert person_key(None, "a@b.co", "Ann", "s") == "e:a@b.co"
    assert person_key(None, None, "Ann", "s") == "n:ann"
    assert person_key(None, None, None, "s") == "s:s"
