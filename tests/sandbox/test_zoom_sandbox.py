"""The fake Zoom: OAuth, REST endpoints and their error codes, paging, recordings and downloads, the
request gate (faults, per-label rate limits), control actions and signed webhooks, through httpx +
ASGITransport."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import uvicorn

from app.sandbox import zoom as zoom_module
from app.sandbox.zoom import create_zoom_sandbox, zoom_sandbox_of
from app.sandbox.zoom_common import transcript_vtt
from app.sandbox.zoom_state import ZoomSandbox
from app.security import SignatureFailure, verify_zoom_signature

pytestmark = pytest.mark.anyio

ACCOUNT = "sandbox-account"
CLIENT_ID = "sandbox-client-id"
CLIENT_SECRET = "sandbox-client-secret"
HOST_EMAIL = "host@zoom-sandbox.example"
SECRET = "whsec-test"
PUBLIC = "http://zoom.test"
START = datetime(2024, 6, 20, 16, 0, tzinfo=UTC)


class Clock:
    """A settable epoch clock for token expiry, rate windows and the per-day registration limit."""

    def __init__(self, start: float = 1_718_800_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Receiver:
    """A webhook endpoint (ASGI): records every request, answers ``status``; ``on_event`` may call
    back into the sandbox while handling the delivery, as the service may."""

    def __init__(self, status: int = 200, on_event: Any = None) -> None:
        self.status = status
        self.on_event = on_event
        self.requests: list[tuple[dict[str, str], bytes]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        self.requests.append((headers, body))
        if self.on_event is not None:
            await self.on_event(json.loads(body))
        await send({"type": "http.response.start", "status": self.status, "headers": []})
        await send({"type": "http.response.body", "body": b'{"received":true}'})

    @property
    def events(self) -> list[str]:
        return [json.loads(body)["event"] for _, body in self.requests]

    def envelopes(self, event: str) -> list[dict[str, Any]]:
        found = [json.loads(body) for _, body in self.requests]
        return [e for e in found if e["event"] == event]


@asynccontextmanager
async def zoom_client(
    receiver: Receiver | None = None, **options: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, ZoomSandbox]]:
    options.setdefault("public_url", PUBLIC)
    if receiver is not None:
        options.setdefault("webhook_transport", httpx.ASGITransport(app=receiver))
        options.setdefault("webhook_secret", SECRET)
    app = create_zoom_sandbox(**options)
    sandbox = zoom_sandbox_of(app)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PUBLIC) as client:
        yield client, sandbox
    await sandbox.aclose()


def basic(client_id: str = CLIENT_ID, secret: str = CLIENT_SECRET) -> dict[str, str]:
    encoded = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


async def get_token(client: httpx.AsyncClient, account: str = ACCOUNT, **kwargs: Any) -> dict[str, str]:
    r = await client.post(
        "/oauth/token",
        params={"grant_type": "account_credentials", "account_id": account},
        headers=basic(**kwargs),
    )
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def new_webinar(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    fields.setdefault("start_time", START.isoformat())
    fields.setdefault("topic", "Q3 Product Webinar")
    r = await client.post("/_sandbox/webinars", json=fields)
    assert r.status_code == 201, r.text
    result: dict[str, Any] = r.json()["result"]
    return result


async def control(client: httpx.AsyncClient, webinar_id: Any, action: str, **body: Any) -> dict[str, Any]:
    r = await client.post(f"/_sandbox/webinars/{webinar_id}/{action}", json=body)
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


async def add_registrant(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    webinar_id: Any,
    email: str,
    first_name: str = "Ada",
    **extra: Any,
) -> httpx.Response:
    body = {"email": email, "first_name": first_name, **extra}
    return await client.post(f"/v2/webinars/{webinar_id}/registrants", headers=auth, json=body)


def assert_error(r: httpx.Response, status: int, code: int, message: str | None = None) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["code"] == code
    assert isinstance(body["message"], str) and body["message"]
    if message is not None:
        assert body["message"] == message


# --------------------------------------------------------------------------------------------------
# OAuth
# --------------------------------------------------------------------------------------------------


class TestOAuth:
    async def test_token_grants_api_access(self) -> None:
        async with zoom_client() as (client, _):
            r = await client.post(
                "/oauth/token",
                params={"grant_type": "account_credentials", "account_id": ACCOUNT},
                headers=basic(),
            )
            assert r.status_code == 200
            body = r.json()
            assert body["token_type"] == "bearer"
            assert body["expires_in"] == 3600
            assert body["scope"] and body["api_url"] == PUBLIC
            auth = {"Authorization": f"Bearer {body['access_token']}"}
            users = await client.get("/v2/users", headers=auth)
            assert users.status_code == 200
            assert [u["email"] for u in users.json()["users"]] == [HOST_EMAIL]

    async def test_form_body_is_accepted_too(self) -> None:
        async with zoom_client() as (client, _):
            form = {"grant_type": "account_credentials", "account_id": ACCOUNT}
            r = await client.post("/oauth/token", data=form, headers=basic())
            assert r.status_code == 200, r.text

    @pytest.mark.parametrize(
        ("headers", "params", "status", "error"),
        [
            (basic(secret="wrong"), {"account_id": ACCOUNT}, 401, "invalid_client"),
            (basic(client_id="nobody"), {"account_id": ACCOUNT}, 401, "invalid_client"),
            ({}, {"account_id": ACCOUNT}, 401, "invalid_client"),
            ({"Authorization": "Basic !!!"}, {"account_id": ACCOUNT}, 401, "invalid_client"),
            (basic(), {"account_id": "other-account"}, 400, "invalid_request"),
            (
                basic(),
                {"account_id": ACCOUNT, "grant_type": "client_credentials"},
                400,
                "unsupported_grant_type",
            ),
        ],
    )
    async def test_bad_credentials(
        self, headers: dict[str, str], params: dict[str, str], status: int, error: str
    ) -> None:
        async with zoom_client() as (client, sandbox):
            query = {"grant_type": "account_credentials", **params}
            r = await client.post("/oauth/token", params=query, headers=headers)
            assert r.status_code == status
            assert r.json()["error"] == error
            if error == "invalid_client":
                assert r.json() == {"reason": "Invalid client_id or client_secret", "error": "invalid_client"}
            assert sandbox.tokens == {}

    async def test_expired_unknown_and_missing_tokens_are_401_code_124(self) -> None:
        clock = Clock()
        async with zoom_client(token_ttl_s=60, clock=clock) as (client, sandbox):
            auth = await get_token(client)
            assert (await client.get("/v2/users", headers=auth)).status_code == 200
            clock.advance(59)
            assert (await client.get("/v2/users", headers=auth)).status_code == 200
            clock.advance(2)
            for headers in (auth, {"Authorization": "Bearer nope"}, {}, basic()):
                r = await client.get("/v2/users", headers=headers)
                assert r.json() == {"code": 124, "message": "Invalid access token."}
                assert r.status_code == 401
            assert sandbox.stats.unauthorized == 4
            fresh = await get_token(client)
            assert (await client.get("/v2/users", headers=fresh)).status_code == 200

    async def test_control_api_expires_tokens(self) -> None:
        async with zoom_client() as (client, _):
            auth = await get_token(client)
            assert (await client.post("/_sandbox/tokens/expire")).json() == {"expired": 1}
            assert (await client.get("/v2/users", headers=auth)).status_code == 401

    async def test_accounts_are_isolated(self) -> None:
        accounts = {"acct-a": ("id-a", "secret-a"), "acct-b": ("id-b", "secret-b")}
        async with zoom_client(accounts=accounts) as (client, sandbox):
            auth_b = await get_token(client, "acct-b", client_id="id-b", secret="secret-b")
            r = await client.post(
                "/oauth/token",
                params={"grant_type": "account_credentials", "account_id": "acct-b"},
                headers=basic("id-a", "secret-a"),
            )
            assert r.status_code == 400
            webinar = await new_webinar(client, account_id="acct-a")
            assert_error(await client.get(f"/v2/webinars/{webinar['id']}", headers=auth_b), 404, 3001)
            users_b = (await client.get("/v2/users", headers=auth_b)).json()["users"]
            assert [u["email"] for u in users_b] == ["host2@zoom-sandbox.example"]
            host_a = sandbox.users[webinar["host_id"]]
            assert_error(await client.get(f"/v2/users/{host_a.id}", headers=auth_b), 404, 1001)


# --------------------------------------------------------------------------------------------------
# Users and webinars
# --------------------------------------------------------------------------------------------------


class TestUsersAndWebinars:
    async def test_users_by_id_or_email_and_404(self) -> None:
        async with zoom_client() as (client, _):
            auth = await get_token(client)
            r = await client.post(
                "/_sandbox/users",
                json={
                    "users": [
                        {
                            "id": "u-grace",
                            "email": "grace@example.com",
                            "first_name": "Grace",
                            "last_name": "Hopper",
                        }
                    ]
                },
            )
            assert r.status_code == 201
            by_id = (await client.get("/v2/users/u-grace", headers=auth)).json()
            by_email = (await client.get("/v2/users/Grace@Example.com", headers=auth)).json()
            assert by_id == by_email
            assert by_id["email"] == "grace@example.com"
            assert by_id["first_name"] == "Grace"
            assert by_id["account_id"] == ACCOUNT
            assert_error(
                await client.get("/v2/users/nobody@example.com", headers=auth),
                404,
                1001,
                "User does not exist: nobody@example.com.",
            )
            duplicate = await client.post("/_sandbox/users", json={"users": [{"email": "grace@example.com"}]})
            assert duplicate.status_code == 409

    async def test_user_webinars_are_paged(self) -> None:
        async with zoom_client() as (client, sandbox):
            auth = await get_token(client)
            ids = [(await new_webinar(client, topic=f"W{i}"))["id"] for i in range(3)]
            host = next(iter(sandbox.users))
            first = (
                await client.get(f"/v2/users/{host}/webinars", headers=auth, params={"page_size": 2})
            ).json()
            assert first["total_records"] == 3
            second = (
                await client.get(
                    f"/v2/users/{host}/webinars",
                    headers=auth,
                    params={"page_size": 2, "next_page_token": first["next_page_token"]},
                )
            ).json()
            assert [w["id"] for w in first["webinars"] + second["webinars"]] == ids
            assert second["next_page_token"] == ""

    async def test_get_webinar_by_id_and_uuid(self) -> None:
        async with zoom_client() as (client, _):
            auth = await get_token(client)
            created = await new_webinar(
                client, id="89412345678", approval_type=1, type=9, alternative_hosts=["alt@example.com"]
            )
            r = await client.get("/v2/webinars/89412345678", headers=auth)
            assert r.status_code == 200
            body = r.json()
            assert body == created
            assert body["id"] == 89412345678
            assert body["host_email"] == HOST_EMAIL
            assert body["host_id"] and body["type"] == 9
            assert body["settings"]["approval_type"] == 1
            assert body["settings"]["alternative_hosts"] == "alt@example.com"
            assert body["registration_url"].startswith("https://")
            assert body["join_url"].endswith("/j/89412345678")
            assert body["start_time"] == "2024-06-20T16:00:00Z"
            double_encoded = quote(quote(body["uuid"], safe=""), safe="")
            by_uuid = await client.get(f"/v2/webinars/{double_encoded}", headers=auth)
            assert by_uuid.status_code == 200
            assert by_uuid.json()["id"] == 89412345678

    async def test_webinar_errors(self) -> None:
        async with zoom_client() as (client, _):
            auth = await get_token(client)
            assert_error(
                await client.get("/v2/webinars/12345678901", headers=auth),
                404,
                3001,
                'Webinar "12345678901" not found or has expired.',
            )
            assert_error(
                await client.get("/v2/webinars/not-a-number", headers=auth), 400, 300, "Invalid webinar ID"
            )

    async def test_no_registration_webinar_has_no_registration_url(self) -> None:
        async with zoom_client() as (client, _):
            auth = await get_token(client)
            webinar = await new_webinar(client, approval_type=2)
            body = (await client.get(f"/v2/webinars/{webinar['id']}", headers=auth)).json()
            assert body["settings"]["approval_type"] == 2
            assert "registration_url" not in body

    async def test_registrant_questions(self) -> None:
        async with zoom_client() as (client, _):
            auth = await get_token(client)
            webinar = await new_webinar(
                client,
                questions=[{"field_name": "org", "required": True}, {"field_name": "job_title"}],
                custom_questions=[
                    {
                        "title": "How did you hear about us?",
                        "type": "single_radio",
                        "required": True,
                        "answers": ["Ad", "Friend"],
                    }
                ],
            )
            r = await client.get(f"/v2/webinars/{webinar['id']}/registrants/questions", headers=auth)
            assert r.json() == {
                "questions": [
                    {"field_name": "org", "required": True},
                    {"field_name": "job_title", "required": False},
                ],
                "custom_questions": [
                    {
                        "title": "How did you hear about us?",
                        "type": "single_radio",
                        "required": True,
                        "answers": ["Ad", "Friend"],
                    }
                ],
            }


# --------------------------------------------------------------------------------------------------
# Add registrant
# --------------------------------------------------------------------------------------------------


class TestAddRegistrant:
    async def test_success_is_listed_and_emits_a_verifiable_webhook(self) -> None:
        receiver = Receiver()
        async with zoom_client(receiver) as (client, sandbox):
            auth = await get_token(client)
            webinar = await new_webinar(client, emit=False)
            r = await add_registrant(
                client, auth, webinar["id"], "ada@example.com", last_name="Lovelace", org="AE"
            )
            assert r.status_code == 201
            body = r.json()
            assert set(body) == {"id", "registrant_id", "join_url", "start_time", "topic", "occurrences"}
            assert body["id"] == webinar["id"]
            assert body["topic"] == "Q3 Product Webinar"
            assert body["start_time"] == "2024-06-20T16:00:00Z"
            await sandbox.settle()
            assert receiver.events == ["webinar.registration_created"]
            headers, raw = receiver.requests[0]
            assert (
                verify_zoom_signature(
                    secrets=["other", SECRET],
                    signature=headers["x-zm-signature"],
                    timestamp=headers["x-zm-request-timestamp"],
                    body=raw,
                    now=time.time(),
                    tolerance_s=300,
                )
                == SECRET
            )
            with pytest.raises(SignatureFailure):
                verify_zoom_signature(
                    secrets=["other"],
                    signature=headers["x-zm-signature"],
                    timestamp=headers["x-zm-request-timestamp"],
                    body=raw,
                    now=time.time(),
                    tolerance_s=300,
                )
            envelope = json.loads(raw)
            obj = envelope["payload"]["object"]
            assert envelope["payload"]["account_id"] == ACCOUNT
            assert obj["id"] == webinar["id"] and isinstance(obj["id"], int)
            assert obj["registrant"]["id"] == body["registrant_id"]
            assert obj["registrant"]["status"] == "approved"
            assert obj["registrant"]["join_url"] == body["join_url"]
            assert obj["registrant"]["org"] == "AE"
            listed = (await client.get(f"/v2/webinars/{webinar['id']}/registrants", headers=auth)).json()
            assert listed["total_records"] == 1
            row = listed["registrants"][0]
            assert (row["id"], row["email"], row["last_name"], row["org"], row["status"]) == (
                body["registrant_id"],
                "ada@example.com",
                "Lovelace",
                "AE",
                "approved",
            )
            delivery = sandbox.deliveries[0]
            assert delivery.status_code == 200 and delivery.ok
            assert delivery.response_body == '{"received":true}'

    async def test_inline_api_webhooks_arrive_before_the_response(self) -> None:
        receiver = Receiver()
        async with zoom_client(receiver, background_api_webhooks=False) as (client, _):
            auth = await get_token(client)
            webinar = await new_webinar(client, emit=False)
            assert (await add_registrant(client, auth, webinar["id"], "ada@example.com")).status_code == 201
            assert receiver.events == ["webinar.registration_created"]

    async def test_manual_approval_gives_pending(self) -> None:
        receiver = Receiver()
        async with zoom_client(receiver) as (client, sandbox):
            auth = await get_token(client)
            webinar = await new_webinar(client, approval_type=1, emit=False)
            r = await add_registrant(client, auth, webinar["id"], "bob@example.com")
            await sandbox.settle()
            assert (
                receiver.envelopes("webinar.registration_created")[0]["payload"]["object"]["registrant"][
                    "status"
                ]
                == "pending"
            )
            url = f"/v2/webinars/{webinar['id']}/registrants"
            assert (await client.get(url, headers=auth)).json()["total_records"] == 0
            pending = (await client.get(url, headers=auth, params={"status": "pending"})).json()
            assert [x["id"] for x in pending["registrants"]] == [r.json()["registrant_id"]]
            await control(client, webinar["id"], "approve", registrant_id=r.json()["registrant_id"])
            assert (await client.get(url, headers=auth)).json()["total_records"] == 1
            assert receiver.events[-1] == "webinar.registration_approved"
            assert_error(await client.get(url, headers=auth, params={"status": "bogus"}), 400, 300)

    async def test_not_found_3001(self) -> None:
        async with zoom_client() as (client, _):
            auth = await get_token(client)
            r = await add_registrant(client, auth, "99999999999", "ada@example.com")
            assert_error(r, 404, 3001, 'Webinar "99999999999" not found or has expired.')

    async def test_registration_off_3000(self) -> None:
        async with zoom_client() as (client, _):
            auth = await get_token(client)
            webinar = await new_webinar(client, approval_type=2)
            r = await add_registrant(client, auth, webinar["id"], "ada@example.com")
            assert_error(
                r, 400, 3000, f"This webinar does not have registration as required: {webinar['id']}"
            )

    @pytest.mark.parametrize("email", [HOST_EMAIL, "HOST@zoom-sandbox.example", "alt@example.com"])
    async def test_host_cannot_register_3027(self, email: str) -> None:
        async with zoom_client() as (client, _):
            auth = await get_token(client)
            webinar = await new_webinar(client, alternative_hosts=["Alt@Example.com"])
            assert_error(
                await add_registrant(client, auth, webinar["id"], email), 400, 3027, "Host cannot register."
            )

    async def test_ended_webinar_3038(self) -> None:
        async with zoom_client() as (client, _):
            auth = await get_token(client)
            webinar = await new_webinar(client)
            await control(client, webinar["id"], "start")
            assert (await add_registrant(client, auth, webinar["id"], "early@example.com")).status_code == 201
            await control(client, webinar["id"], "end")
            r = await add_registrant(client, auth, webinar["id"], "late@example.com")
            assert_error(r, 400, 3038, "Webinar is over, you cannot register now.")

    @pytest.mark.parametrize(
        ("body", "fields"),
        [
            ({"first_name": "Ada"}, ["email"]),
            ({"email": "ada@example.com"}, ["first_name"]),
            ({"email": "not-an-email", "first_name": " "}, ["email", "first_name"]),
            ({}, ["email", "first_name"]),
        ],
    )
    async def test_validation_300(self, body: dict[str, Any], fields: list[str]) -> None:
        async with zoom_client() as (client, _):
            auth = await get_token(client)
            webinar = await new_webinar(client)
            r = await client.post(f"/v2/webinars/{webinar['id']}/registrants", headers=auth, json=body)
            assert_error(r, 400, 300, "Validation Failed.")
            assert [e["field"] for e in r.json()["errors"]] == fields

    async def test_unparseable_body_is_300(self) -> None:
        async with zoom_client() as (client, _):
            auth = await get_token(client)
            webinar = await new_webinar(client)
            r = await client.post(
                f"/v2/webinars/{webinar['id']}/registrants",
                headers={**auth, "content-type": "application/json"},
                content=b"{not json",
            )
            assert_error(r, 400, 300, "Validation Failed.")

    async def test_required_questions_are_enforced(self) -> None:
        async with zoom_client() as (client, _):
            auth = await get_token(client)
            webinar = await new_webinar(
                client,
                questions=[{"field_name": "org", "required": True}],
                custom_questions=[{"title": "Why?", "required": True}],
            )
            r = await add_registrant(client, auth, webinar["id"], "ada@example.com")
            assert_error(r, 400, 300)
            assert [e["field"] for e in r.json()["errors"]] == ["org", "custom_questions.Why?"]
            ok = await add_registrant(
                client,
                auth,
                webinar["id"],
                "ada@example.com",
                org="AE",
                custom_questions=[{"title": "Why?", "value": "Curious"}],
            )
            assert ok.status_code == 201

    async def test_repeated_registration_returns_the_same_registrant(self) -> None:
        receiver = Receiver()
        async with zoom_client(receiver) as (client, sandbox):
            auth = await get_token(client)
            webinar = await new_webinar(client, emit=False)
            first = await add_registrant(client, auth, webinar["id"], "ada@example.com")
            again = await add_registrant(client, auth, webinar["id"], "ADA@example.com", first_name="Ada L.")
            assert again.status_code == 201
            assert again.json()["registrant_id"] == first.json()["registrant_id"]
            assert again.json()["join_url"] == first.json()["join_url"]
            listed = (await client.get(f"/v2/webinars/{webinar['id']}/registrants", headers=auth)).json()
            assert listed["total_records"] == 1
            await sandbox.settle()
            assert receiver.events == ["webinar.registration_created"]

    async def test_fourth_request_in_a_day_is_429(self) -> None:
        clock = Clock(datetime(2024, 6, 1, 12, tzinfo=UTC).timestamp())
        async with zoom_client(clock=clock) as (client, _):
            auth = await get_token(client)
            webinar = await new_webinar(client)
            ids = {
                (await add_registrant(client, auth, webinar["id"], "ada@example.com")).json()["registrant_id"]
                for _ in range(3)
            }
            assert len(ids) == 1
            r = await add_registrant(client, auth, webinar["id"], "ada@example.com")
            assert_error(r, 429, 429)
            assert "daily rate limit" in r.json()["message"]
            assert r.headers["X-RateLimit-Type"] == "Daily-limit"
            assert int(r.headers["Retry-After"]) == 12 * 3600
            # Another registrant or another day is fine.
            assert (await add_registrant(client, auth, webinar["id"], "bob@example.com")).status_code == 201
            clock.advance(12 * 3600 + 1)
            auth = await get_token(client)  # the old one expired meanwhile
            assert (await add_registrant(client, auth, webinar["id"], "ada@example.com")).status_code == 201

    async def test_cancelled_registrants_are_not_listed_and_may_register_again(self) -> None:
        receiver = Receiver()
        async with zoom_client(receiver) as (client, _):
            auth = await get_token(client)
            webinar = await new_webinar(client, emit=False)
            first = (
                await control(client, webinar["id"], "register", email="ada@example.com", first_name="Ada")
            )["result"]
            assert first["created"] is True
            again = await control(
                client, webinar["id"], "register", email="ada@example.com", first_name="Ada"
            )
            assert again["result"]["id"] == first["id"] and again["result"]["created"] is False
            assert again["deliveries"] == []
            cancelled = await control(client, webinar["id"], "cancel", registrant_id=first["id"])
            assert cancelled["result"]["status"] == "cancelled"
            envelope = receiver.envelopes("webinar.registration_cancelled")[0]
            assert envelope["payload"]["operator"] == "ada@example.com"
            url = f"/v2/webinars/{webinar['id']}/registrants"
            for status in ("approved", "pending", "denied"):
                assert (await client.get(url, headers=auth, params={"status": status})).json()[
                    "total_records"
                ] == 0
            r = await add_registrant(client, auth, webinar["id"], "ada@example.com")
            assert r.status_code == 201 and r.json()["registrant_id"] != first["id"]


# --------------------------------------------------------------------------------------------------
# Paging, participants
# --------------------------------------------------------------------------------------------------


async def _pages(
    client: httpx.AsyncClient, url: str, auth: dict[str, str], key: str, **params: Any
) -> list[dict[str, Any]]:
    pages: list[dict[str, Any]] = []
    token = ""
    while True:
        query = {**params, "page_size": 2, **({"next_page_token": token} if token else {})}
        r = await client.get(url, headers=auth, params=query)
        assert r.status_code == 200, r.text
        pages.append(r.json())
        token = r.json()["next_page_token"]
        if not token:
            return pages


class TestPaging:
    async def test_registrants_page_size_two_over_five(self) -> None:
        async with zoom_client() as (client, _):
            auth = await get_token(client)
            webinar = await new_webinar(client)
            for i in range(5):
                assert (
                    await add_registrant(client, auth, webinar["id"], f"user{i}@example.com")
                ).status_code == 201
            url = f"/v2/webinars/{webinar['id']}/registrants"
            pages = await _pages(client, url, auth, "registrants")
            assert [len(p["registrants"]) for p in pages] == [2, 2, 1]
            assert all(
                p["total_records"] == 5 and p["page_count"] == 3 and p["page_size"] == 2 for p in pages
            )
            emails = [r["email"] for p in pages for r in p["registrants"]]
            assert emails == [f"user{i}@example.com" for i in range(5)]
            bad = await client.get(url, headers=auth, params={"next_page_token": "garbage"})
            assert_error(bad, 400, 300)
            # A token of another listing is refused too.
            first = (await client.get(url, headers=auth, params={"page_size": 2})).json()
            other = await client.get(
                url, headers=auth, params={"status": "pending", "next_page_token": first["next_page_token"]}
            )
            assert other.status_code == 400
            assert (await client.get(url, headers=auth, params={"page_size": 1000})).json()[
                "page_size"
            ] == 300
            assert_error(await client.get(url, headers=auth, params={"page_size": 0}), 400, 300)

    async def _ended_webinar_with_five_sessions(
        self, client: httpx.AsyncClient, auth: dict[str, str]
    ) -> tuple[int, list[str]]:
        webinar = await new_webinar(client)
        wid = webinar["id"]
        ids = [
            (await add_registrant(client, auth, wid, f"p{i}@example.com", first_name=f"P{i}")).json()[
                "registrant_id"
            ]
            for i in range(3)
        ]
        await control(client, wid, "start", at=(START + timedelta(seconds=5)).isoformat())
        t = START + timedelta(minutes=1)
        for n, rid in enumerate(ids):
            await control(client, wid, "join", registrant_id=rid, at=(t + timedelta(minutes=n)).isoformat())
        await control(client, wid, "leave", registrant_id=ids[0], at=(t + timedelta(minutes=10)).isoformat())
        await control(client, wid, "join", registrant_id=ids[0], at=(t + timedelta(minutes=12)).isoformat())
        await control(
            client,
            wid,
            "join",
            name="Guest Person",
            email="guest@elsewhere.com",
            guest=True,
            at=(t + timedelta(minutes=15)).isoformat(),
        )
        await control(client, wid, "end", at=(START + timedelta(minutes=60)).isoformat())
        return wid, ids

    @pytest.mark.parametrize(
        "path", ["/v2/past_webinars/{id}/participants", "/v2/report/webinars/{id}/participants"]
    )
    async def test_participants_paging_registrant_ids_and_guests(self, path: str) -> None:
        async with zoom_client() as (client, _):
            auth = await get_token(client)
            wid, ids = await self._ended_webinar_with_five_sessions(client, auth)
            url = path.format(id=wid)
            with_ids = await _pages(client, url, auth, "participants", include_fields="registrant_id")
            assert [len(p["participants"]) for p in with_ids] == [2, 2, 1]
            rows = [row for p in with_ids for row in p["participants"]]
            assert [r["registrant_id"] for r in rows] == [ids[0], ids[1], ids[2], ids[0], ""]
            assert rows[0]["user_id"] != rows[3]["user_id"]  # a rejoin is a new session with a new user_id
            assert rows[0]["duration"] == 10 * 60
            assert rows[0]["leave_time"] == "2024-06-20T16:11:00Z"
            assert rows[3]["leave_time"] == "2024-06-20T17:00:00Z"  # closed by the end
            assert [r["user_email"] for r in rows] == [
                "p0@example.com",
                "p1@example.com",
                "p2@example.com",
                "p0@example.com",
                "",
            ]
            assert rows[4]["name"] == "Guest Person"
            assert ("participant_user_id" in rows[0]) is ("report" in path)
            without = await _pages(client, url, auth, "participants")
            assert all("registrant_id" not in row for p in without for row in p["participants"])

    async def test_participants_before_the_end_are_404(self) -> None:
        async with zoom_client() as (client, _):
            auth = await get_token(client)
            webinar = await new_webinar(client)
            for path in ("/v2/past_webinars/{}/participants", "/v2/report/webinars/{}/participants"):
                assert_error(await client.get(path.format(webinar["id"]), headers=auth), 404, 3001)
            await control(client, webinar["id"], "start")
            assert_error(
                await client.get(f"/v2/past_webinars/{webinar['id']}/participants", headers=auth), 404, 3001
            )

    async def test_guest_email_is_blank_in_webhooks_and_kept_in_state(self) -> None:
        receiver = Receiver()
        async with zoom_client(receiver) as (client, sandbox):
            webinar = await new_webinar(client, emit=False)
            await control(client, webinar["id"], "start")
            joined = await control(
                client, webinar["id"], "join", name="Guest", email="g@elsewhere.com", guest=True
            )
            shown = await control(client, webinar["id"], "join", name="Invitee", email="inv@elsewhere.com")
            host = await control(client, webinar["id"], "join", email=HOST_EMAIL)
            assert joined["result"]["user_email"] == "" and joined["result"]["raw_email"] == "g@elsewhere.com"
            assert joined["result"]["guest"] is True
            participants = [
                e["payload"]["object"]["participant"]
                for e in receiver.envelopes("webinar.participant_joined")
            ]
            assert [p["email"] for p in participants] == ["", "inv@elsewhere.com", HOST_EMAIL]
            assert participants[2]["participant_user_id"] == sandbox.webinar(webinar["id"]).host.id
            assert host["result"]["name"] == "Ada Lovelace"
            assert shown["result"]["guest"] is False
            await control(client, webinar["id"], "leave", user_id=joined["result"]["user_id"])
            left = receiver.envelopes("webinar.participant_left")[0]["payload"]["object"]["participant"]
            assert left["email"] == "" and left["user_id"] == joined["result"]["user_id"]


# --------------------------------------------------------------------------------------------------
# Recordings and downloads
# --------------------------------------------------------------------------------------------------


async def _ended(client: httpx.AsyncClient, **fields: Any) -> int:
    webinar = await new_webinar(client, **fields)
    await control(client, webinar["id"], "start")
    await control(client, webinar["id"], "end")
    return int(webinar["id"])


class TestRecordings:
    async def test_3301_then_files_and_webhooks(self) -> None:
        receiver = Receiver()
        async with zoom_client(receiver) as (client, _):
            auth = await get_token(client)
            wid = await _ended(client)
            url = f"/v2/meetings/{wid}/recordings"
            assert_error(
                await client.get(url, headers=auth), 404, 3301, "There is no recording for this meeting."
            )
            assert_error(await client.get("/v2/meetings/1/recordings", headers=auth), 404, 3301)
            action = await control(client, wid, "recording")
            assert action["events"] == ["recording.completed", "recording.transcript_completed"]
            body = (await client.get(url, headers=auth)).json()
            files = body["recording_files"]
            assert [(f["file_type"], f["file_extension"], f["status"]) for f in files] == [
                ("MP4", "MP4", "completed"),
                ("M4A", "M4A", "completed"),
                ("TRANSCRIPT", "VTT", "completed"),
            ]
            assert files[2]["recording_type"] == "audio_transcript"
            assert all(f["download_url"] == f"{PUBLIC}/rec/download/{f['id']}" for f in files)
            assert body["id"] == wid and body["share_url"].startswith("https://")
            by_uuid = await client.get(
                f"/v2/meetings/{quote(quote(body['uuid'], safe=''), safe='')}/recordings", headers=auth
            )
            assert by_uuid.json()["recording_files"] == files
            completed = receiver.envelopes("recording.completed")[0]
            assert completed["download_token"] and "download_token" not in completed["payload"]
            assert completed["payload"]["object"]["id"] == wid
            assert [f["file_type"] for f in completed["payload"]["object"]["recording_files"]] == [
                "MP4",
                "M4A",
            ]
            transcript = receiver.envelopes("recording.transcript_completed")[0]
            assert [f["id"] for f in transcript["payload"]["object"]["recording_files"]] == [files[2]["id"]]

    async def test_download_needs_a_bearer_token(self) -> None:
        receiver = Receiver()
        async with zoom_client(receiver) as (client, _):
            auth = await get_token(client)
            wid = await _ended(client, topic="Launch")
            await control(client, wid, "recording")
            files = (await client.get(f"/v2/meetings/{wid}/recordings", headers=auth)).json()[
                "recording_files"
            ]
            transcript_url = files[2]["download_url"]
            with_oauth = await client.get(transcript_url, headers=auth)
            assert with_oauth.status_code == 200
            assert with_oauth.headers["content-type"].startswith("text/vtt")
            text = with_oauth.text
            assert text.startswith(
                "WEBVTT\n\n1\n00:00:01.000 --> 00:00:04.000\nAda Lovelace: Welcome everyone to Launch."
            )
            assert text.count(" --> ") >= 5
            download_token = receiver.envelopes("recording.completed")[0]["download_token"]
            with_download_token = await client.get(
                transcript_url, headers={"Authorization": f"Bearer {download_token}"}
            )
            assert with_download_token.status_code == 200 and with_download_token.text == text
            mp4 = await client.get(
                files[0]["download_url"], headers={"Authorization": f"Bearer {download_token}"}
            )
            assert mp4.status_code == 200 and mp4.headers["content-type"] == "video/mp4"
            assert len(mp4.content) == files[0]["file_size"]
            for headers in ({}, {"Authorization": "Bearer wrong"}, basic()):
                assert_error(
                    await client.get(transcript_url, headers=headers), 401, 124, "Invalid access token."
                )
            query_token = await client.get(transcript_url, params={"access_token": download_token})
            assert_error(query_token, 401, 124)
            assert_error(await client.get(f"{PUBLIC}/rec/download/unknown", headers=auth), 404, 3301)

    async def test_download_token_of_another_recording_is_refused(self) -> None:
        receiver = Receiver()
        async with zoom_client(receiver) as (client, sandbox):
            first, second = await _ended(client), await _ended(client)
            await control(client, first, "recording")
            await control(client, second, "recording")
            token_of_first = receiver.envelopes("recording.completed")[0]["download_token"]
            recording_of_second = sandbox.webinar(second).recording
            assert recording_of_second is not None
            file_of_second = recording_of_second.files[0]
            r = await client.get(
                f"/rec/download/{file_of_second.id}", headers={"Authorization": f"Bearer {token_of_first}"}
            )
            assert r.status_code == 401

    async def test_transcript_not_found_then_present(self) -> None:
        receiver = Receiver()
        async with zoom_client(receiver) as (client, _):
            auth = await get_token(client)
            wid = await _ended(client)
            action = await control(client, wid, "recording", transcript_available=False)
            assert action["events"] == ["recording.completed"]
            transcript = (await client.get(f"/v2/meetings/{wid}/recordings", headers=auth)).json()[
                "recording_files"
            ][2]
            assert transcript["file_type"] == "TRANSCRIPT"
            assert_error(await client.get(transcript["download_url"], headers=auth), 404, 3301)
            ready = await control(
                client, wid, "transcript", vtt="WEBVTT\n\n1\n00:00:00.000 --> 00:00:01.000\nX: hi\n"
            )
            assert ready["events"] == ["recording.transcript_completed"]
            r = await client.get(transcript["download_url"], headers=auth)
            assert r.status_code == 200 and r.text.endswith("X: hi\n")
            # The race: the event arrives, the file is not there yet.
            await control(client, wid, "transcript", available=False)
            assert receiver.events.count("recording.transcript_completed") == 2
            assert (await client.get(transcript["download_url"], headers=auth)).status_code == 404

    async def test_transcript_added_later_and_processing_recordings(self) -> None:
        receiver = Receiver()
        async with zoom_client(receiver) as (client, _):
            auth = await get_token(client)
            wid = await _ended(client)
            processing = await control(client, wid, "recording", status="processing", with_transcript=False)
            assert processing["events"] == []
            body = (await client.get(f"/v2/meetings/{wid}/recordings", headers=auth)).json()
            assert {f["status"] for f in body["recording_files"]} == {"processing"}
            assert (
                await client.get(body["recording_files"][0]["download_url"], headers=auth)
            ).status_code == 404
            done = await control(client, wid, "recording", with_transcript=False)
            assert done["events"] == ["recording.completed"]
            assert (
                await client.get(body["recording_files"][0]["download_url"], headers=auth)
            ).status_code == 200
            later = await control(client, wid, "transcript")
            assert later["events"] == ["recording.transcript_completed"]
            assert (
                len(
                    (await client.get(f"/v2/meetings/{wid}/recordings", headers=auth)).json()[
                        "recording_files"
                    ]
                )
                == 3
            )
            again = await client.post(f"/_sandbox/webinars/{wid}/recording", json={})
            assert again.status_code == 409

    async def test_recording_needs_an_ended_webinar(self) -> None:
        async with zoom_client() as (client, _):
            webinar = await new_webinar(client)
            r = await client.post(f"/_sandbox/webinars/{webinar['id']}/recording", json={})
            assert r.status_code == 400 and r.json()["code"] == 400

    async def test_redirected_downloads(self) -> None:
        async with zoom_client(redirect_downloads=True) as (client, _):
            auth = await get_token(client)
            wid = await _ended(client)
            await control(client, wid, "recording")
            url = (await client.get(f"/v2/meetings/{wid}/recordings", headers=auth)).json()[
                "recording_files"
            ][2]["download_url"]
            r = await client.get(url, headers=auth)
            assert r.status_code == 302
            followed = await client.get(url, headers=auth, follow_redirects=True)
            assert followed.status_code == 200 and followed.text.startswith("WEBVTT")
            tampered = r.headers["location"].rsplit("=", 1)[0] + "=forged"
            assert (await client.get(tampered)).status_code == 403

    async def test_download_access_token_field(self) -> None:
        async with zoom_client() as (client, _):
            auth = await get_token(client)
            wid = await _ended(client)
            await control(client, wid, "recording", emit=False)
            body = (
                await client.get(
                    f"/v2/meetings/{wid}/recordings",
                    headers=auth,
                    params={"include_fields": "download_access_token"},
                )
            ).json()
            r = await client.get(
                body["recording_files"][0]["download_url"],
                headers={"Authorization": f"Bearer {body['download_access_token']}"},
            )
            assert r.status_code == 200


def test_transcript_vtt_is_wellformed() -> None:
    vtt = transcript_vtt("Topic", ["Host Name", "Guest One"])
    cues = vtt.split("\n\n")[1:]
    assert vtt.startswith("WEBVTT\n\n")
    assert all(len(c.strip().split("\n")) == 3 for c in cues if c.strip())
    assert "Guest One: " in vtt and "Host Name: Welcome everyone to Topic." in vtt


# --------------------------------------------------------------------------------------------------
# Gate: rate limits and faults
# --------------------------------------------------------------------------------------------------


class TestRateLimits:
    @pytest.mark.parametrize("mode", ["seconds", "date", "http_date", "absent"])
    async def test_light_burst_gives_429_with_the_configured_retry_after(self, mode: str) -> None:
        clock = Clock()
        async with zoom_client(clock=clock, rate_limits={"LIGHT": 3}, retry_after=mode) as (client, sandbox):
            auth = await get_token(client)
            webinar = await new_webinar(client)
            url = f"/v2/webinars/{webinar['id']}"
            for _ in range(3):
                ok = await client.get(url, headers=auth)
                assert ok.status_code == 200
                assert ok.headers["X-RateLimit-Category"] == "Light"
            r = await client.get(url, headers=auth)
            assert r.status_code == 429
            assert r.json() == {
                "code": 429,
                "message": "You have reached the maximum per-second rate limit for this API. "
                "Try again later.",
            }
            assert r.headers["X-RateLimit-Category"] == "Light"
            assert r.headers["X-RateLimit-Type"] == "QPS"
            if mode == "seconds":
                assert r.headers["Retry-After"] == "1"
            elif mode == "date":
                expected = datetime.fromtimestamp(clock.now + 1, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                assert r.headers["Retry-After"] == expected
            elif mode == "http_date":
                assert parsedate_to_datetime(r.headers["Retry-After"]).timestamp() == pytest.approx(
                    clock.now + 1, abs=1
                )
            else:
                assert "Retry-After" not in r.headers
            # Other labels have their own budget; the window rolls over after a second.
            assert (await client.get("/v2/users", headers=auth)).status_code == 200
            clock.advance(1.01)
            assert (await client.get(url, headers=auth)).status_code == 200
            assert sandbox.stats.throttled["GET /v2/webinars/{webinar_id}"] == 1
            assert sandbox.stats.requests["GET /v2/webinars/{webinar_id}"] == 5

    async def test_limits_are_per_account(self) -> None:
        clock = Clock()
        accounts = {"acct-a": ("id-a", "secret-a"), "acct-b": ("id-b", "secret-b")}
        async with zoom_client(clock=clock, accounts=accounts, rate_limits={"MEDIUM": 1}) as (client, _):
            a = await get_token(client, "acct-a", client_id="id-a", secret="secret-a")
            b = await get_token(client, "acct-b", client_id="id-b", secret="secret-b")
            assert (await client.get("/v2/users", headers=a)).status_code == 200
            assert (await client.get("/v2/users", headers=a)).status_code == 429
            assert (await client.get("/v2/users", headers=b)).status_code == 200

    async def test_heavy_report_label_and_control_api_not_limited(self) -> None:
        clock = Clock()
        async with zoom_client(clock=clock, rate_limits={"HEAVY": 1}) as (client, _):
            auth = await get_token(client)
            wid = await _ended(client)
            url = f"/v2/report/webinars/{wid}/participants"
            assert (await client.get(url, headers=auth)).headers["X-RateLimit-Category"] == "Heavy"
            throttled = await client.get(url, headers=auth)
            assert throttled.status_code == 429 and throttled.headers["X-RateLimit-Category"] == "Heavy"
            for _ in range(5):
                assert (await client.get("/_sandbox/state")).status_code == 200

    async def test_rate_limit_can_be_disabled_and_changed_at_runtime(self) -> None:
        clock = Clock()
        async with zoom_client(clock=clock, rate_limits={"MEDIUM": 1}, rate_limit_enabled=False) as (
            client,
            _,
        ):
            auth = await get_token(client)
            for _ in range(3):
                assert (await client.get("/v2/users", headers=auth)).status_code == 200
            settings = (
                await client.post(
                    "/_sandbox/faults", json={"rate_limit_enabled": True, "rate_limits": {"MEDIUM": 2}}
                )
            ).json()
            assert settings["rate_limits"]["MEDIUM"] == 2 and settings["rate_limit_enabled"] is True
            codes = [(await client.get("/v2/users", headers=auth)).status_code for _ in range(3)]
            assert codes == [200, 200, 429]

    async def test_burst_429(self) -> None:
        async with zoom_client() as (client, sandbox):
            auth = await get_token(client)
            await client.post("/_sandbox/faults", json={"burst_429": 2})
            codes = [(await client.get("/v2/users", headers=auth)).status_code for _ in range(3)]
            assert codes == [429, 429, 200]
            assert sandbox.faults.burst_429 == 0


class TestFaults:
    async def test_down_is_503_everywhere_but_the_control_api(self) -> None:
        async with zoom_client() as (client, sandbox):
            auth = await get_token(client)
            await client.post("/_sandbox/faults", json={"down": True})
            r = await client.get("/v2/users", headers=auth)
            assert_error(r, 503, 503)
            token = await client.post(
                "/oauth/token",
                params={"grant_type": "account_credentials", "account_id": ACCOUNT},
                headers=basic(),
            )
            assert token.status_code == 503
            assert (await client.get("/_sandbox/health")).json() == {"status": "ok"}
            await client.post("/_sandbox/faults", json={"down": False})
            assert (await client.get("/v2/users", headers=auth)).status_code == 200
            assert sandbox.stats.faults == 2
            assert sandbox.stats.statuses["503"] == 2

    async def test_error_rate(self) -> None:
        async with zoom_client(fault_seed=7) as (client, _):
            auth = await get_token(client)
            await client.post("/_sandbox/faults", json={"error_rate": 1.0})
            codes = {(await client.get("/v2/users", headers=auth)).status_code for _ in range(20)}
            assert codes <= {500, 502, 503} and len(codes) >= 2
            r = await client.get("/v2/users", headers=auth)
            assert set(r.json()) == {"code", "message"}
            await client.post("/_sandbox/faults", json={"error_rate": 0.25, "seed": 3})
            codes_list = [(await client.get("/v2/users", headers=auth)).status_code for _ in range(40)]
            assert 200 in codes_list and any(c >= 500 for c in codes_list)

    async def test_slow_ms(self) -> None:
        async with zoom_client(slow_ms=60) as (client, _):
            auth = await get_token(client)
            started = time.perf_counter()
            assert (await client.get("/v2/users", headers=auth)).status_code == 200
            assert time.perf_counter() - started >= 0.06

    async def test_unknown_endpoint_and_stats(self) -> None:
        async with zoom_client() as (client, sandbox):
            auth = await get_token(client)
            assert_error(await client.get("/v2/nothing/here", headers=auth), 404, 2300)
            state = (await client.get("/_sandbox/state")).json()
            assert state["stats"]["requests"] == {"GET /v2/nothing/here": 1, "POST /oauth/token": 1}
            assert sandbox.stats.statuses["404"] == 1


# --------------------------------------------------------------------------------------------------
# Control actions and webhooks
# --------------------------------------------------------------------------------------------------


class TestWebhooks:
    async def test_full_life_payload_shapes(self) -> None:
        receiver = Receiver()
        async with zoom_client(receiver) as (client, _):
            webinar = await new_webinar(client)
            wid = webinar["id"]
            reg = (
                await control(
                    client, wid, "register", email="ada@example.com", first_name="Ada", last_name="L"
                )
            )["result"]
            await control(client, wid, "start")
            joined = await control(client, wid, "join", registrant_id=reg["id"])
            assert joined["deliveries"][0]["status_code"] == 200
            await control(client, wid, "end")
            await control(client, wid, "recording")
            assert receiver.events == [
                "webinar.created",
                "webinar.registration_created",
                "webinar.started",
                "webinar.participant_joined",
                "webinar.participant_left",
                "webinar.ended",
                "recording.completed",
                "recording.transcript_completed",
            ]
            by_event = {e: receiver.envelopes(e)[0] for e in receiver.events}
            for event in ("webinar.created", "webinar.registration_created", "recording.completed"):
                assert by_event[event]["payload"]["object"]["id"] == wid
            for event in (
                "webinar.started",
                "webinar.participant_joined",
                "webinar.participant_left",
                "webinar.ended",
            ):
                assert by_event[event]["payload"]["object"]["id"] == str(wid)
            participant = by_event["webinar.participant_joined"]["payload"]["object"]["participant"]
            assert participant["registrant_id"] == reg["id"] and participant["email"] == "ada@example.com"
            assert by_event["webinar.created"]["payload"]["object"]["join_url"] == webinar["join_url"]
            for headers, _ in receiver.requests:
                assert headers["user-agent"] == "Zoom Marketplace/1.0a"
                assert headers["x-zm-signature"].startswith("v0=")

    async def test_emit_false_changes_state_but_sends_nothing(self) -> None:
        receiver = Receiver()
        async with zoom_client(receiver) as (client, sandbox):
            auth = await get_token(client)
            webinar = await new_webinar(client, emit=False)
            wid = webinar["id"]
            reg = await control(
                client, wid, "register", email="ada@example.com", first_name="Ada", emit=False
            )
            assert reg["events"] == [] and reg["deliveries"] == []
            await control(client, wid, "start", emit=False)
            await control(client, wid, "join", registrant_id=reg["result"]["id"], emit=False)
            await control(client, wid, "end", emit=False)
            await control(client, wid, "recording", emit=False)
            assert receiver.requests == []
            assert sandbox.deliveries == []
            assert (await client.get(f"/v2/webinars/{wid}/registrants", headers=auth)).json()[
                "total_records"
            ] == 1
            rows = (await client.get(f"/v2/past_webinars/{wid}/participants", headers=auth)).json()[
                "participants"
            ]
            assert len(rows) == 1
            assert (await client.get(f"/v2/meetings/{wid}/recordings", headers=auth)).status_code == 200

    async def test_service_may_call_the_sandbox_while_handling_a_webhook(self) -> None:
        seen: list[int] = []
        holder: dict[str, Any] = {}

        async def call_back(envelope: dict[str, Any]) -> None:
            webinar_id = envelope["payload"]["object"]["id"]
            r = await holder["client"].get(f"/v2/webinars/{webinar_id}", headers=holder["auth"])
            seen.append(r.status_code)

        receiver = Receiver(on_event=call_back)
        async with zoom_client(receiver, background_api_webhooks=False) as (client, _):
            holder["client"], holder["auth"] = client, await get_token(client)
            webinar = await new_webinar(client)
            await control(client, webinar["id"], "start")
            r = await add_registrant(client, holder["auth"], webinar["id"], "x@example.com")
            assert r.status_code == 201
            # webinar.created, webinar.started and webinar.registration_created each called back.
            assert seen == [200, 200, 200]

    async def test_failed_and_missing_targets_are_recorded(self) -> None:
        async with zoom_client(Receiver(status=500)) as (client, sandbox):
            webinar = await new_webinar(client)
            assert sandbox.deliveries[0].status_code == 500 and not sandbox.deliveries[0].ok
            await client.post("/_sandbox/webhook", json={"url": None})
            await control(client, webinar["id"], "start")
            assert sandbox.deliveries[1].error == "no webhook target configured"
            r = await client.post(
                "/_sandbox/webhook", json={"url": "http://127.0.0.1:9/webhooks/zoom", "secret": "s"}
            )
            assert r.json()["target"] == {"url": "http://127.0.0.1:9/webhooks/zoom", "transport": "url"}
            await control(client, webinar["id"], "end")
            failed = sandbox.deliveries[2]
            assert failed.status_code is None and failed.error and "Connect" in failed.error
            listed = (await client.get("/_sandbox/deliveries", params={"event": "webinar.ended"})).json()[
                "deliveries"
            ]
            assert [d["index"] for d in listed] == [2]

    async def test_webhook_target_can_be_an_asgi_app(self) -> None:
        receiver = Receiver()
        async with zoom_client() as (client, sandbox):
            sandbox.set_webhook_target("http://svc.test/webhooks/zoom", secret=SECRET, app=receiver)
            await new_webinar(client)
            assert receiver.events == ["webinar.created"]
            headers, raw = receiver.requests[0]
            assert headers["host"] == "svc.test"
            assert (
                verify_zoom_signature(
                    secrets=[SECRET],
                    signature=headers["x-zm-signature"],
                    timestamp=headers["x-zm-request-timestamp"],
                    body=raw,
                    now=time.time(),
                    tolerance_s=60,
                )
                == SECRET
            )

    async def test_redeliver_keeps_the_request_id(self) -> None:
        receiver = Receiver()
        async with zoom_client(receiver) as (client, sandbox):
            await new_webinar(client)
            r = await client.post("/_sandbox/deliveries/0/redeliver")
            assert r.status_code == 200
            assert r.json()["request_id"] == sandbox.deliveries[0].request_id
            assert receiver.events == ["webinar.created", "webinar.created"]
            assert (await client.post("/_sandbox/deliveries/9/redeliver")).status_code == 404

    async def test_control_errors(self) -> None:
        async with zoom_client() as (client, _):
            webinar = await new_webinar(client)
            wid = webinar["id"]
            assert (
                await client.post(f"/_sandbox/webinars/{wid}/join", json={"name": "Early"})
            ).status_code == 400
            assert (await client.post(f"/_sandbox/webinars/{wid}/end", json={})).status_code == 400
            assert (await client.post("/_sandbox/webinars/123/start", json={})).status_code == 404
            await control(client, wid, "start")
            assert (await client.post(f"/_sandbox/webinars/{wid}/start")).status_code == 400
            assert (
                await client.post(f"/_sandbox/webinars/{wid}/leave", json={"user_id": "nobody"})
            ).status_code == 404
            assert (await client.post(f"/_sandbox/webinars/{wid}/join", json={})).status_code == 400
            assert (await client.post("/_sandbox/webinars", json={"id": "abc"})).status_code == 400
            assert (await client.post("/_sandbox/webinars", json={"host_id": "nobody"})).status_code == 404


class TestPythonApiAndState:
    async def test_in_process_api(self) -> None:
        receiver = Receiver()
        async with zoom_client(receiver, seed=5) as (_, sandbox):
            created = await sandbox.create_webinar(topic="In process", start_time=START, approval_type=1)
            wid = created.result["id"]
            reg = await sandbox.register(
                wid, "ada@example.com", "Ada", "L", custom_questions={"Why?": "Because"}, org="AE"
            )
            assert reg.result["status"] == "pending" and reg.events == ["webinar.registration_created"]
            await sandbox.approve(wid, reg.result["id"])
            await sandbox.start(wid)
            joined = await sandbox.join(wid, registrant_id=reg.result["id"])
            await sandbox.leave(wid, user_id=joined.result["user_id"])
            await sandbox.end(wid)
            rec = await sandbox.add_recording(wid, with_transcript=False)
            assert rec.events == ["recording.completed"]
            transcript = await sandbox.set_transcript(wid)
            assert transcript.deliveries[0].ok
            token = sandbox.mint_token()
            assert sandbox.account_for_token(token) is not None
            assert sandbox.list_registrants(ACCOUNT, str(wid))["registrants"][0]["custom_questions"] == [
                {"title": "Why?", "value": "Because"}
            ]
            assert receiver.events[-3:] == [
                "webinar.ended",
                "recording.completed",
                "recording.transcript_completed",
            ]
            assert len(receiver.events) == len(sandbox.deliveries) == 9

    async def test_seed_makes_ids_deterministic(self) -> None:
        ids = []
        for _ in range(2):
            async with zoom_client(seed=42) as (_, sandbox):
                created = await sandbox.create_webinar(start_time=START)
                reg = await sandbox.register(created.result["id"], "ada@example.com", "Ada")
                ids.append((created.result["id"], created.result["uuid"], reg.result["id"]))
        assert ids[0] == ids[1]

    async def test_state_and_reset(self) -> None:
        receiver = Receiver()
        async with zoom_client(receiver) as (client, _):
            auth = await get_token(client)
            webinar = await new_webinar(client)
            await client.post("/_sandbox/faults", json={"slow_ms": 5, "retry_after": "absent"})
            await control(client, webinar["id"], "register", email="ada@example.com", first_name="Ada")
            state = (await client.get("/_sandbox/state")).json()
            assert [w["id"] for w in state["webinars"]] == [webinar["id"]]
            assert state["webinars"][0]["registrants"][0]["source"] == "zoom"
            assert [d["event"] for d in state["deliveries"]] == [
                "webinar.created",
                "webinar.registration_created",
            ]
            assert state["faults"]["slow_ms"] == 5 and state["faults"]["retry_after"] == "absent"
            assert state["tokens"] == {"issued": 1, "active": 1}
            one = (await client.get(f"/_sandbox/webinars/{webinar['id']}")).json()
            assert one["status"] == "waiting" and len(one["registrants"]) == 1
            assert (await client.post("/_sandbox/reset")).json() == {"status": "reset"}
            state = (await client.get("/_sandbox/state")).json()
            assert state["webinars"] == [] and state["deliveries"] == []
            assert [u["email"] for u in state["users"]] == [HOST_EMAIL]
            assert state["faults"]["slow_ms"] == 0 and state["faults"]["retry_after"] == "seconds"
            assert state["stats"]["total"] == 0
            assert (await client.get("/v2/users", headers=auth)).status_code == 200  # tokens survive a reset
            assert (await client.get("/_sandbox/docs")).status_code == 200
            assert (
                "/_sandbox/webinars/{webinar_id}/join"
                in (await client.get("/_sandbox/openapi.json")).json()["paths"]
            )


def test_main_builds_the_app_from_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    captured: dict[str, Any] = {}

    def fake_run(app: Any, **kwargs: Any) -> None:
        captured["app"], captured["kwargs"] = app, kwargs

    monkeypatch.setattr(uvicorn, "run", fake_run)
    zoom_module.main(
        [
            "9999",
            "--client-id",
            "cid",
            "--client-secret",
            "cs",
            "--account-id",
            "acc",
            "--webhook-url",
            "http://svc/wh",
            "--webhook-secret",
            "ws",
        ]
    )
    sandbox = zoom_sandbox_of(captured["app"])
    assert captured["kwargs"]["port"] == 9999 and captured["kwargs"]["host"] == "127.0.0.1"
    assert sandbox.accounts["acc"].client_id == "cid" and sandbox.accounts["acc"].client_secret == "cs"
    assert (
        sandbox.webhook is not None
        and sandbox.webhook.url == "http://svc/wh"
        and sandbox.webhook.secret == "ws"
    )
    assert sandbox.public_url == "http://127.0.0.1:9999"
