from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

import pytest

from app.sandbox.zoom_webhooks import (
    CONTENT_TYPE,
    Delivery,
    Participant,
    WebinarScenario,
    big_webinar,
    encrypted_token,
    make_delivery,
    reserialize,
    shuffled_with_duplicates,
    sign,
    url_validation,
    verify,
)

SECRET = "zm-test-secret"
START = datetime(2024, 6, 20, 16, 0, tzinfo=UTC)

# Computed once, independently of the code under test, with
#   python3 -c "import hmac,hashlib; print(hmac.new(b'zm-test-secret', b'v0:1718899205:'
#       + b'{\"event\":\"webinar.started\",\"event_ts\":1718899205000}', hashlib.sha256).hexdigest())"
# and cross-checked with `openssl dgst -sha256 -hmac zm-test-secret`.
VECTOR_TS = 1718899205
VECTOR_BODY = b'{"event":"webinar.started","event_ts":1718899205000}'
VECTOR_SIG = "v0=593b0114ada61420de227c4259da7e2f9b139f2a68d09b41f6cbc07d3b6c1cc9"
# hex HMAC-SHA256(b"zm-test-secret", b"qgg8vlvZRS6UYooatFL8Aw"), computed the same way.
VECTOR_ENCRYPTED_TOKEN = "18c3331142c9f3df28f5da1e3d4b4eac8b33c0acebb87a06ead91929025087db"


def _independent_ok(secret: str, d: Delivery) -> bool:
    """Verify a delivery with hmac directly, as the service must (raw bytes, header timestamp)."""
    ts = d.headers["x-zm-request-timestamp"]
    mac = hmac.new(secret.encode(), f"v0:{ts}:".encode() + d.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest("v0=" + mac, d.headers["x-zm-signature"])


def _check_headers(d: Delivery, timestamp: int) -> None:
    assert d.headers["content-type"] == CONTENT_TYPE == "application/json; charset=utf-8"
    assert d.headers["x-zm-request-timestamp"] == str(timestamp)
    assert d.headers["x-zm-signature"].startswith("v0=")
    assert re.fullmatch(
        r"[0-9a-f]{8}_[0-9a-f]{4}_[0-9a-f]{4}_[0-9a-f]{4}_[0-9a-f]{12}", d.headers["x-zm-request-id"]
    )
    assert all(k == k.lower() for k in d.headers)


def _scenario(seed: int = 1) -> WebinarScenario:
    return WebinarScenario(
        account_id="acct1",
        webinar_id="89412345678",
        host_id="host1",
        host_email="host@acme.com",
        topic="Q3 Product Webinar",
        start=START,
        duration_minutes=60,
        webinar_type=5,
        seed=seed,
    )


def _full_life(s: WebinarScenario) -> dict[str, Any]:
    s.created(at=START - timedelta(days=10))
    ada = s.register("ada@example.com", "Ada", "Lovelace", at=START - timedelta(days=5))
    bob = s.register("bob@example.com", "Bob", "Smith", at=START - timedelta(days=4))
    cy = s.register("cy@example.com", "Cy", "Young", at=START - timedelta(days=3))
    s.approve(ada, at=START - timedelta(days=4, hours=23))
    s.deny(bob, at=START - timedelta(days=3, hours=23))
    s.cancel(cy, at=START - timedelta(days=1))
    s.started(at=START + timedelta(seconds=5))
    pa = s.participant_for(ada)
    guest = s.guest("Anonymous Guest")
    s.join(pa, at=START + timedelta(minutes=2))
    s.join(guest, at=START + timedelta(minutes=3))
    s.leave(pa, at=START + timedelta(minutes=20))
    pa2 = s.rejoin_as(pa)
    s.join(pa2, at=START + timedelta(minutes=25))
    s.leave(pa2, at=START + timedelta(minutes=60))
    s.leave(guest, at=START + timedelta(minutes=30))
    s.ended(at=START + timedelta(minutes=63, seconds=20))
    s.recording_completed(at=START + timedelta(minutes=90), share_url="https://us06web.zoom.us/rec/share/abc")
    s.transcript_completed(at=START + timedelta(minutes=100))
    return {"ada": ada, "bob": bob, "cy": cy, "pa": pa, "pa2": pa2, "guest": guest}


def _by_event(envelopes: list[dict[str, Any]], event: str) -> list[dict[str, Any]]:
    return [e for e in envelopes if e["event"] == event]


# ---------------------------------------------------------------------------------------------- signing


def test_sign_matches_independent_vector() -> None:
    assert sign(SECRET, VECTOR_TS, VECTOR_BODY) == VECTOR_SIG
    assert sign(SECRET, VECTOR_TS + 1, VECTOR_BODY) != VECTOR_SIG
    assert sign("other", VECTOR_TS, VECTOR_BODY) != VECTOR_SIG
    assert sign(SECRET, VECTOR_TS, VECTOR_BODY + b" ") != VECTOR_SIG


def test_make_delivery_body_headers_and_signature() -> None:
    envelope = {"event": "webinar.started", "event_ts": 1718899205000}
    d = make_delivery(SECRET, envelope, timestamp=VECTOR_TS)
    assert d.event == "webinar.started"
    assert d.body == VECTOR_BODY  # compact, key order kept
    _check_headers(d, VECTOR_TS)
    assert d.headers["x-zm-signature"] == VECTOR_SIG
    assert _independent_ok(SECRET, d)
    assert verify(SECRET, d) and not verify("wrong", d)
    assert not _independent_ok("wrong", d)


def test_make_delivery_defaults_to_now_and_fresh_request_ids() -> None:
    before = int(datetime.now(UTC).timestamp())
    a = make_delivery(SECRET, {"event": "x", "payload": {}})
    b = make_delivery(SECRET, {"event": "x", "payload": {}})
    after = int(datetime.now(UTC).timestamp())
    assert before <= a.timestamp <= after
    assert a.request_id != b.request_id
    assert _independent_ok(SECRET, a)


def test_make_delivery_utf8_and_nested_mappings() -> None:
    envelope = MappingProxyType({"event": "e", "payload": MappingProxyType({"name": "Zoë", "t": (1, 2)})})
    d = make_delivery(SECRET, envelope, timestamp=1)
    assert "Zoë".encode() in d.body
    assert json.loads(d.body) == {"event": "e", "payload": {"name": "Zoë", "t": [1, 2]}}
    assert _independent_ok(SECRET, d)


def test_make_delivery_rejects_envelope_without_event() -> None:
    with pytest.raises(ValueError):
        make_delivery(SECRET, {"payload": {}})


def test_url_validation() -> None:
    d = url_validation(SECRET, "qgg8vlvZRS6UYooatFL8Aw", timestamp=1654503849)
    _check_headers(d, 1654503849)
    assert _independent_ok(SECRET, d)
    assert d.event == "endpoint.url_validation"
    body = json.loads(d.body)
    assert body == {
        "payload": {"plainToken": "qgg8vlvZRS6UYooatFL8Aw"},
        "event_ts": 1654503849000,
        "event": "endpoint.url_validation",
    }
    assert "account_id" not in body["payload"]
    assert encrypted_token(SECRET, "qgg8vlvZRS6UYooatFL8Aw") == VECTOR_ENCRYPTED_TOKEN
    # default timestamp also signs correctly
    assert _independent_ok(SECRET, url_validation(SECRET, "abc"))


def test_reserialize_changes_bytes_not_content_and_resigns() -> None:
    s = _scenario()
    _full_life(s)
    for envelope in s.envelopes:
        original = make_delivery(SECRET, envelope, timestamp=1_700_000_000)
        again = reserialize(original, SECRET, timestamp=1_700_000_300)
        _check_headers(again, 1_700_000_300)
        assert _independent_ok(SECRET, again)
        assert again.event == original.event
        assert again.body != original.body
        assert b"\n" in again.body and b"\n" not in original.body
        assert json.loads(again.body) == json.loads(original.body) == envelope
        assert list(json.loads(again.body)) == list(reversed(list(envelope)))
        assert again.headers["x-zm-signature"] != original.headers["x-zm-signature"]
        assert again.request_id != original.request_id
    # the original signature does not verify the new bytes
    d = make_delivery(SECRET, s.envelopes[0], timestamp=5)
    r = reserialize(d, SECRET, timestamp=5)
    assert sign(SECRET, 5, r.body) == r.headers["x-zm-signature"] != d.headers["x-zm-signature"]


def test_reserialize_default_timestamp_is_now() -> None:
    d = make_delivery(SECRET, {"event": "x", "payload": {"a": 1}}, timestamp=1)
    r = reserialize(d, SECRET)
    assert r.timestamp > 1_600_000_000
    assert _independent_ok(SECRET, r)


# ---------------------------------------------------------------------------------------------- scenario


def test_envelope_shapes_and_id_types() -> None:
    s = _scenario()
    _full_life(s)
    envs = s.envelopes
    assert [e["event"] for e in envs] == [
        "webinar.created",
        "webinar.registration_created",
        "webinar.registration_created",
        "webinar.registration_created",
        "webinar.registration_approved",
        "webinar.registration_denied",
        "webinar.registration_cancelled",
        "webinar.started",
        "webinar.participant_joined",
        "webinar.participant_joined",
        "webinar.participant_left",
        "webinar.participant_joined",
        "webinar.participant_left",
        "webinar.participant_left",
        "webinar.ended",
        "recording.completed",
        "recording.transcript_completed",
    ]
    number_id = {
        "webinar.created",
        "webinar.registration_created",
        "webinar.registration_approved",
        "webinar.registration_denied",
        "webinar.registration_cancelled",
        "recording.completed",
        "recording.transcript_completed",
    }
    for e in envs:
        assert set(e) >= {"event", "event_ts", "payload"}
        assert isinstance(e["event_ts"], int)
        assert e["payload"]["account_id"] == "acct1"
        obj = e["payload"]["object"]
        if e["event"] in number_id:
            assert obj["id"] == 89412345678 and type(obj["id"]) is int
        else:
            assert obj["id"] == "89412345678"
        assert obj["host_id"] == "host1"
        assert obj["type"] == 5
    created = envs[0]
    assert created["event_ts"] == int((START - timedelta(days=10)).timestamp()) * 1000
    assert created["payload"]["operator"] == "host@acme.com"
    assert created["payload"]["object"]["start_time"] == "2024-06-20T16:00:00Z"
    assert created["payload"]["object"]["duration"] == 60
    assert created["payload"]["object"]["topic"] == "Q3 Product Webinar"
    # scheduled uuid vs running-instance uuid
    assert envs[1]["payload"]["object"]["uuid"] == created["payload"]["object"]["uuid"]
    started = _by_event(envs, "webinar.started")[0]
    assert started["payload"]["object"]["uuid"] != created["payload"]["object"]["uuid"]
    assert started["payload"]["object"]["start_time"] == "2024-06-20T16:00:05Z"
    ended = _by_event(envs, "webinar.ended")[0]
    assert ended["payload"]["object"]["end_time"] == "2024-06-20T17:03:20Z"
    assert ended["event_ts"] == int(datetime(2024, 6, 20, 17, 3, 20, tzinfo=UTC).timestamp()) * 1000
    # everything is JSON-serialisable as is
    json.dumps(envs)


def test_registrations() -> None:
    s = _scenario()
    ids = _full_life(s)
    envs = s.envelopes
    created = _by_event(envs, "webinar.registration_created")
    reg_ids = [e["payload"]["object"]["registrant"]["id"] for e in created]
    assert reg_ids == [ids["ada"], ids["bob"], ids["cy"]]
    assert len(set(reg_ids)) == 3
    for e in created:
        r = e["payload"]["object"]["registrant"]
        assert r["status"] == "approved"
        assert r["join_url"].startswith("https://") and "89412345678" in r["join_url"]
    approved = _by_event(envs, "webinar.registration_approved")[0]["payload"]
    assert approved["object"]["registrant"]["id"] == ids["ada"]
    assert (
        approved["object"]["registrant"]["join_url"]
        == created[0]["payload"]["object"]["registrant"]["join_url"]
    )
    assert approved["operator_id"] == "host1"
    denied = _by_event(envs, "webinar.registration_denied")[0]["payload"]
    assert denied["object"]["registrant"]["id"] == ids["bob"]
    assert "join_url" not in denied["object"]["registrant"]
    cancelled = _by_event(envs, "webinar.registration_cancelled")[0]["payload"]
    assert cancelled["object"]["registrant"] == {
        "id": ids["cy"],
        "first_name": "Cy",
        "last_name": "Young",
        "email": "cy@example.com",
    }
    assert cancelled["operator"] == "cy@example.com"
    assert [r.status for r in s.registrants.values()] == ["approved", "denied", "cancelled"]
    with pytest.raises(KeyError):
        s.approve("nope", at=START)


def test_participants_registrant_id_stable_guest_email_empty() -> None:
    s = _scenario()
    ids = _full_life(s)
    pa: Participant = ids["pa"]
    pa2: Participant = ids["pa2"]
    guest: Participant = ids["guest"]
    assert (pa.email, pa.name, pa.registrant_id) == ("ada@example.com", "Ada Lovelace", ids["ada"])
    assert pa2.registrant_id == pa.registrant_id and pa2.email == pa.email
    assert pa2.user_id != pa.user_id and pa2.participant_uuid != pa.participant_uuid
    assert guest.email == "" and guest.registrant_id is None

    moves = [e for e in s.envelopes if e["event"].startswith("webinar.participant_")]
    parts = [e["payload"]["object"]["participant"] for e in moves]
    ada_parts = [p for p in parts if p["user_name"] == "Ada Lovelace"]
    assert len(ada_parts) == 4
    assert {p["registrant_id"] for p in ada_parts} == {ids["ada"]}
    assert len({p["participant_uuid"] for p in ada_parts}) == 2
    guest_parts = [p for p in parts if p["user_name"] == "Anonymous Guest"]
    assert len(guest_parts) == 2
    assert all(p["email"] == "" and "registrant_id" not in p for p in guest_parts)
    joined = moves[0]
    assert joined["event_ts"] == int((START + timedelta(minutes=2)).timestamp()) * 1000
    assert joined["payload"]["object"]["participant"]["join_time"] == "2024-06-20T16:02:00Z"
    left = moves[2]
    assert left["event"] == "webinar.participant_left"
    assert left["payload"]["object"]["participant"]["leave_time"] == "2024-06-20T16:20:00Z"
    assert "join_time" not in left["payload"]["object"]["participant"]
    assert all(isinstance(p["user_id"], str) for p in parts)


def test_recording_and_transcript() -> None:
    s = _scenario()
    _full_life(s)
    rec = _by_event(s.envelopes, "recording.completed")[0]
    tr = _by_event(s.envelopes, "recording.transcript_completed")[0]
    for e in (rec, tr):
        assert isinstance(e["download_token"], str) and e["download_token"]
        assert "download_token" not in e["payload"]
        obj = e["payload"]["object"]
        assert obj["share_url"] == "https://us06web.zoom.us/rec/share/abc"
        assert obj["host_email"] == "host@acme.com"
        assert obj["recording_count"] == len(obj["recording_files"])
        assert obj["total_size"] == sum(f["file_size"] for f in obj["recording_files"])
        for f in obj["recording_files"]:
            assert f["id"] and f["download_url"].startswith("https://")
            assert f["meeting_id"] == obj["uuid"]
    assert rec["download_token"] != tr["download_token"]
    rec_files = rec["payload"]["object"]["recording_files"]
    assert {f["file_type"] for f in rec_files} == {"MP4", "M4A"}
    assert len({f["id"] for f in rec_files}) == 2
    (tf,) = tr["payload"]["object"]["recording_files"]
    assert (tf["file_type"], tf["file_extension"], tf["recording_type"]) == (
        "TRANSCRIPT",
        "VTT",
        "audio_transcript",
    )
    assert tf["id"] not in {f["id"] for f in rec_files}

    bare = _scenario()
    bare.started(at=START)
    bare.ended(at=START + timedelta(minutes=30))
    no_files = bare.recording_completed(at=START + timedelta(minutes=40), with_files=False)
    assert no_files["payload"]["object"]["recording_files"] == []
    assert no_files["payload"]["object"]["recording_count"] == 0
    assert no_files["payload"]["object"]["share_url"].startswith("https://")


def test_updated_and_deleted() -> None:
    s = _scenario()
    s.created()
    up = s.updated(at=START - timedelta(days=1), topic="New topic", start=START + timedelta(days=1))
    p = up["payload"]
    assert p["object"] == {"id": 89412345678, "topic": "New topic", "start_time": "2024-06-21T16:00:00Z"}
    assert p["old_object"] == {
        "id": 89412345678,
        "topic": "Q3 Product Webinar",
        "start_time": "2024-06-20T16:00:00Z",
    }
    gone = s.deleted(at=START)
    assert gone["payload"]["object"]["topic"] == "New topic"
    assert gone["payload"]["object"]["id"] == 89412345678
    with pytest.raises(ValueError):
        s.updated(at=START, topic="New topic")


def test_deterministic_per_seed() -> None:
    a, b, c = _scenario(7), _scenario(7), _scenario(8)
    for s in (a, b, c):
        _full_life(s)
    assert a.envelopes == b.envelopes
    assert a.envelopes != c.envelopes


def test_envelopes_returns_a_copy() -> None:
    s = _scenario()
    s.created()
    s.envelopes.clear()
    assert len(s.envelopes) == 1


# ---------------------------------------------------------------------------------------------- bulk


@pytest.mark.parametrize(
    ("registrants", "attendees", "share"), [(200, 120, 0.25), (10, 0, 0.25), (30, 30, 1.0), (5, 4, 0.0)]
)
def test_big_webinar_counts(registrants: int, attendees: int, share: float) -> None:
    s = big_webinar(
        "acct1", "81234567890", registrants=registrants, attendees=attendees, rejoin_share=share, seed=3
    )
    envs = s.envelopes
    counts = Counter(e["event"] for e in envs)
    rejoiners = round(attendees * share)
    assert counts["webinar.created"] == counts["webinar.started"] == counts["webinar.ended"] == 1
    assert counts["webinar.registration_created"] == registrants
    assert counts["webinar.participant_joined"] == counts["webinar.participant_left"] == attendees + rejoiners
    assert len(envs) == registrants + 2 * attendees + 2 * rejoiners + 3

    regs = [
        e["payload"]["object"]["registrant"] for e in envs if e["event"] == "webinar.registration_created"
    ]
    emails = [r["email"] for r in regs]
    assert len(set(emails)) == registrants
    assert len({r["id"] for r in regs}) == registrants
    assert {f"user{i}@example{i % 50}.com" for i in range(registrants)} == set(emails)

    # chronological, every leave after its join, everyone inside the webinar's run
    ts = [e["event_ts"] for e in envs]
    assert ts == sorted(ts)
    start_ms = _by_event(envs, "webinar.started")[0]["event_ts"]
    end_ms = _by_event(envs, "webinar.ended")[0]["event_ts"]
    moves = [e for e in envs if e["event"].startswith("webinar.participant_")]
    open_sessions: dict[str, int] = {}
    for e in moves:
        p = e["payload"]["object"]["participant"]
        assert p["registrant_id"] in {r["id"] for r in regs}
        assert start_ms < e["event_ts"] < end_ms
        if e["event"] == "webinar.participant_joined":
            assert p["participant_uuid"] not in open_sessions
            open_sessions[p["participant_uuid"]] = e["event_ts"]
        else:
            assert open_sessions.pop(p["participant_uuid"]) < e["event_ts"]
    assert not open_sessions
    attendee_ids = {e["payload"]["object"]["participant"]["registrant_id"] for e in moves}
    assert len(attendee_ids) == attendees
    per_registrant = Counter(
        e["payload"]["object"]["participant"]["registrant_id"]
        for e in moves
        if e["event"] == "webinar.participant_joined"
    )
    assert sum(1 for n in per_registrant.values() if n == 2) == rejoiners
    assert all(n in (1, 2) for n in per_registrant.values())


def test_big_webinar_defaults_and_validation() -> None:
    s = big_webinar("acct1", "81234567890", registrants=8, attendees=4)
    created = s.envelopes[0]["payload"]
    assert created["operator"] == "host@hostco.com" and created["operator_id"] == "host1"
    assert (
        big_webinar("a", "1", registrants=8, attendees=4).envelopes
        == big_webinar("a", "1", registrants=8, attendees=4).envelopes
    )
    with pytest.raises(ValueError):
        big_webinar("a", "1", registrants=3, attendees=4)
    with pytest.raises(ValueError):
        big_webinar("a", "1", registrants=3, attendees=2, rejoin_share=1.5)


def test_shuffled_with_duplicates() -> None:
    envs = big_webinar("acct1", "81234567890", registrants=40, attendees=20, seed=2).envelopes
    out = shuffled_with_duplicates(envs, seed=9)
    assert len(out) == 2 * len(envs)

    def key(e: Any) -> str:
        return json.dumps(e, sort_keys=True)

    assert Counter(key(e) for e in out) == Counter(key(e) for e in envs + envs)
    assert [key(e) for e in out] != [key(e) for e in envs + envs]
    assert out == shuffled_with_duplicates(envs, seed=9)
    assert out != shuffled_with_duplicates(envs, seed=10)
    assert len(envs) == 40 + 2 * 20 + 2 * 5 + 3  # input untouched
