"""POST /webhooks/zoom: signatures, validation, durable storage, duplicates."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlmodel import col

from app.models import InboxEvent
from app.sandbox.zoom_webhooks import WebinarScenario, make_delivery, reserialize, sign, url_validation
from app.security import SignatureFailure, verify_zoom_signature, zoom_signature, zoom_url_validation_token
from tests.fixtures.databases import Database
from tests.fixtures.factories import joined_event
from tests.fixtures.service import ZOOM_SECRET, make_settings, running_app

pytestmark = pytest.mark.anyio

# Computed by hand with hmac.new(b"test-zoom-secret", b"v0:1700000000:" + BODY, sha256).
KNOWN_BODY = b'{"event":"webinar.started","payload":{}}'
KNOWN_SIGNATURE = "v0=744e6316a9642e9eb1a2c795eb2a1a99d7743b7184861e3193992fe6c923360c"
# hmac.new(b"test-zoom-secret", b"qgg8vlvZRS6UYooatFL8Aw", sha256) - Zoom's own example token.
KNOWN_ENCRYPTED = "2af7990b454c165b75909f45365a2b51f86f43cc9cf572d62e47556702ac0a13"


class TestSignatureFunctions:
    def test_known_vector(self) -> None:
        assert zoom_signature(ZOOM_SECRET, "1700000000", KNOWN_BODY) == KNOWN_SIGNATURE
        assert zoom_url_validation_token(ZOOM_SECRET, "qgg8vlvZRS6UYooatFL8Aw") == KNOWN_ENCRYPTED

    def test_verify_accepts_any_rotated_secret(self) -> None:
        got = verify_zoom_signature(
            secrets=("old-secret", ZOOM_SECRET),
            signature=KNOWN_SIGNATURE,
            timestamp="1700000000",
            body=KNOWN_BODY,
            now=1700000100,
            tolerance_s=300,
        )
        assert got == ZOOM_SECRET

    @pytest.mark.parametrize(
        ("signature", "timestamp", "now", "reason"),
        [
            (None, "1700000000", 1700000000, "missing x-zm-signature"),
            (KNOWN_SIGNATURE, None, 1700000000, "missing x-zm-request-timestamp"),
            (KNOWN_SIGNATURE, "17e8", 1700000000, "whole seconds"),
            (KNOWN_SIGNATURE, "1700000000", 1700000000 + 360, "more than 300 s"),
            (KNOWN_SIGNATURE, "1700000000", 1700000000 - 360, "more than 300 s"),
            (KNOWN_SIGNATURE.replace("v0=", "v1="), "1700000000", 1700000000, "start with v0="),
            (KNOWN_SIGNATURE[:-1] + "0", "1700000000", 1700000000, "does not match"),
        ],
    )
    def test_verify_rejects(
        self, signature: str | None, timestamp: str | None, now: int, reason: str
    ) -> None:
        with pytest.raises(SignatureFailure) as info:
            verify_zoom_signature(
                secrets=(ZOOM_SECRET,),
                signature=signature,
                timestamp=timestamp,
                body=KNOWN_BODY,
                now=now,
                tolerance_s=300,
            )
        assert reason in info.value.reason


async def _stored(db: Database) -> int:
    with db.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(InboxEvent)).scalar_one())


async def _post(client: httpx.AsyncClient, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return await client.post("/webhooks/zoom", content=body, headers=headers)


class TestUrlValidation:
    async def test_answers_challenge(self, client: httpx.AsyncClient, database: Database) -> None:
        d = url_validation(ZOOM_SECRET, "qgg8vlvZRS6UYooatFL8Aw")
        r = await _post(client, d.body, d.headers)
        assert r.status_code == 200
        assert r.json() == {"plainToken": "qgg8vlvZRS6UYooatFL8Aw", "encryptedToken": KNOWN_ENCRYPTED}
        assert await _stored(database) == 0

    async def test_unsigned_challenge_rejected(self, client: httpx.AsyncClient) -> None:
        d = url_validation("another-secret", "abc")
        r = await _post(client, d.body, d.headers)
        assert r.status_code == 401

    async def test_answers_with_the_secret_that_signed(self, database: Database) -> None:
        settings = make_settings(database, zoom_webhook_secret_token=f"new-secret, {ZOOM_SECRET}")
        async with running_app(settings) as client:
            d = url_validation(ZOOM_SECRET, "tok")
            r = await _post(client, d.body, d.headers)
        assert r.json()["encryptedToken"] == zoom_url_validation_token(ZOOM_SECRET, "tok")


class TestBadInput:
    """Each case gets a clear 4xx and stores nothing."""

    async def _assert_rejected(
        self,
        client: httpx.AsyncClient,
        db: Database,
        body: bytes,
        headers: dict[str, str],
        status: int,
        text: str,
    ) -> None:
        r = await _post(client, body, headers)
        assert r.status_code == status, r.text
        assert text in r.json()["detail"]
        assert await _stored(db) == 0

    def _signed(self, body: bytes, *, secret: str = ZOOM_SECRET, ts: int | None = None) -> dict[str, str]:
        ts = int(time.time()) if ts is None else ts
        return {
            "content-type": "application/json; charset=utf-8",
            "x-zm-request-timestamp": str(ts),
            "x-zm-signature": sign(secret, ts, body),
        }

    async def test_missing_signature_headers(self, client: httpx.AsyncClient, database: Database) -> None:
        body = json.dumps(joined_event()).encode()
        await self._assert_rejected(
            client, database, body, {"content-type": "application/json"}, 401, "missing x-zm-signature"
        )

    async def test_malformed_signature(self, client: httpx.AsyncClient, database: Database) -> None:
        body = json.dumps(joined_event()).encode()
        headers = self._signed(body) | {"x-zm-signature": "garbage"}
        await self._assert_rejected(client, database, body, headers, 401, "v0=")

    async def test_malformed_timestamp(self, client: httpx.AsyncClient, database: Database) -> None:
        body = json.dumps(joined_event()).encode()
        headers = self._signed(body) | {"x-zm-request-timestamp": "yesterday"}
        await self._assert_rejected(client, database, body, headers, 401, "seconds")

    async def test_other_secret(self, client: httpx.AsyncClient, database: Database) -> None:
        body = json.dumps(joined_event()).encode()
        await self._assert_rejected(
            client, database, body, self._signed(body, secret="not-ours"), 401, "does not match"
        )

    async def test_stale_timestamp(self, client: httpx.AsyncClient, database: Database) -> None:
        body = json.dumps(joined_event()).encode()
        headers = self._signed(body, ts=int(time.time()) - 360)
        await self._assert_rejected(client, database, body, headers, 401, "300 s")

    async def test_body_altered_after_signing(self, client: httpx.AsyncClient, database: Database) -> None:
        body = json.dumps(joined_event()).encode()
        headers = self._signed(body)
        await self._assert_rejected(
            client, database, body.replace(b"}", b" }", 1), headers, 401, "does not match"
        )

    async def test_invalid_json(self, client: httpx.AsyncClient, database: Database) -> None:
        body = b'{"event": "webinar.started", "payload": '
        await self._assert_rejected(client, database, body, self._signed(body), 400, "not valid JSON")

    async def test_json_array(self, client: httpx.AsyncClient, database: Database) -> None:
        body = b"[1, 2]"
        await self._assert_rejected(client, database, body, self._signed(body), 400, "JSON object")

    async def test_object_without_event(self, client: httpx.AsyncClient, database: Database) -> None:
        body = b'{"payload": {}}'
        await self._assert_rejected(client, database, body, self._signed(body), 400, "'event'")

    async def test_object_without_payload(self, client: httpx.AsyncClient, database: Database) -> None:
        body = b'{"event": "webinar.started"}'
        await self._assert_rejected(client, database, body, self._signed(body), 400, "'payload'")

    async def test_validation_without_token(self, client: httpx.AsyncClient, database: Database) -> None:
        body = b'{"event": "endpoint.url_validation", "payload": {}}'
        await self._assert_rejected(client, database, body, self._signed(body), 400, "plainToken")

    async def test_body_over_one_mib(self, client: httpx.AsyncClient, database: Database) -> None:
        event = joined_event()
        event["padding"] = "x" * (1024 * 1024)
        body = json.dumps(event).encode()
        await self._assert_rejected(client, database, body, self._signed(body), 413, "larger than")

    async def test_wrong_content_type(self, client: httpx.AsyncClient, database: Database) -> None:
        body = json.dumps(joined_event()).encode()
        headers = self._signed(body) | {"content-type": "text/plain"}
        await self._assert_rejected(client, database, body, headers, 415, "application/json")

    async def test_disabled_without_secret(self, database: Database) -> None:
        settings = make_settings(database, zoom_webhook_secret_token=None)
        async with running_app(settings) as client:
            body = json.dumps(joined_event()).encode()
            r = await _post(client, body, self._signed(body))
        assert r.status_code == 503
        assert "ZOOM_WEBHOOK_SECRET_TOKEN" in r.json()["detail"]
        assert await _stored(database) == 0


class TestStorage:
    async def test_accepted_event_is_stored_raw(self, client: httpx.AsyncClient, database: Database) -> None:
        d = make_delivery(ZOOM_SECRET, joined_event())
        r = await _post(client, d.body, d.headers)
        assert r.status_code == 200
        assert r.json() == {"status": "accepted"}
        with database.engine.connect() as conn:
            # SQLModel's types declare no __table__ on table models (it exists at runtime).
            row = conn.execute(select(InboxEvent.__table__)).one()  # type: ignore[attr-defined]
        assert row.raw_body == d.body
        assert row.event == "webinar.participant_joined"
        assert row.webinar_id == "89412345678"
        assert row.state == "pending"

    async def test_reserialised_duplicate_stored_once(
        self, client: httpx.AsyncClient, database: Database
    ) -> None:
        d = make_delivery(ZOOM_SECRET, joined_event())
        again = reserialize(d, ZOOM_SECRET)
        assert again.body != d.body
        first = await _post(client, d.body, d.headers)
        second = await _post(client, again.body, again.headers)
        assert (first.json()["status"], second.json()["status"]) == ("accepted", "duplicate")
        assert await _stored(database) == 1

    async def test_recording_redelivery_with_new_download_token_is_duplicate(
        self, client: httpx.AsyncClient, database: Database
    ) -> None:
        s = _scenario()
        event = s.recording_completed(at=s.start)
        other = json.loads(json.dumps(event))
        other["download_token"] = "a-different-token"
        for f in other["payload"]["object"]["recording_files"]:
            f["download_url"] += "?other"
        statuses = []
        for env in (event, other):
            d = make_delivery(ZOOM_SECRET, env)
            statuses.append((await _post(client, d.body, d.headers)).json()["status"])
        assert statuses == ["accepted", "duplicate"]

    async def test_distinct_events_are_not_merged(
        self, client: httpx.AsyncClient, database: Database
    ) -> None:
        s = _scenario()
        rid = s.register("a@example.com", "A", "One", at=s.start)
        s.register("b@example.com", "B", "Two", at=s.start)  # same event_ts, other registrant
        s.cancel(rid, at=s.start)
        for env in s.envelopes:
            d = make_delivery(ZOOM_SECRET, env)
            assert (await _post(client, d.body, d.headers)).json()["status"] == "accepted"
        assert await _stored(database) == 3

    async def test_unused_event_stored_as_ignored(
        self, client: httpx.AsyncClient, database: Database
    ) -> None:
        env: dict[str, Any] = {
            "event": "meeting.started",
            "event_ts": 1,
            "payload": {"account_id": "x", "object": {}},
        }
        d = make_delivery(ZOOM_SECRET, env)
        r = await _post(client, d.body, d.headers)
        assert r.status_code == 200
        assert r.json()["ignored"] is True
        with database.engine.connect() as conn:
            assert conn.execute(select(col(InboxEvent.state))).scalar_one() == "ignored"

    async def test_concurrent_deliveries_all_stored(
        self, client: httpx.AsyncClient, database: Database
    ) -> None:
        deliveries = [make_delivery(ZOOM_SECRET, joined_event(i)) for i in range(200)]
        responses = await asyncio.gather(*(_post(client, d.body, d.headers) for d in deliveries))
        assert [r.status_code for r in responses] == [200] * 200
        assert {r.json()["status"] for r in responses} == {"accepted"}
        assert await _stored(database) == 200

    async def test_concurrent_duplicates_stored_once(
        self, client: httpx.AsyncClient, database: Database
    ) -> None:
        deliveries = [make_delivery(ZOOM_SECRET, joined_event(i % 10)) for i in range(100)]
        responses = await asyncio.gather(*(_post(client, d.body, d.headers) for d in deliveries))
        statuses = [r.json()["status"] for r in responses]
        assert statuses.count("accepted") == 10
        assert statuses.count("duplicate") == 90
        assert await _stored(database) == 10


def _scenario() -> WebinarScenario:
    from datetime import UTC, datetime

    return WebinarScenario(
        account_id="acct_test_01",
        webinar_id="89412345678",
        host_id="host1",
        host_email="host@hostco.com",
        topic="T",
        start=datetime(2026, 1, 1, 16, tzinfo=UTC),
        duration_minutes=60,
        webinar_type=5,
        seed=3,
    )
