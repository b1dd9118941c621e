"""POST /hubspot/actions/add-to-webinar under hostile input: a clear 4xx naming the field (or a
normal FAIL_CONTINUE / SUCCESS answer), never a 5xx and never a traceback in the log.

Where the point is the body, the request carries a valid v3 signature.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.fixtures.databases import Database
from tests.fixtures.e2e import ACTION_PATH, action_body, harness, signed_action

pytestmark = pytest.mark.anyio

Body = Callable[[str], bytes]  # the webinar id of a real (sandbox) webinar -> the raw body


def _nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = {"x": value}
    return value


def _body(callback_id: str, change: Callable[[dict[str, Any]], None] | None = None) -> Body:
    def make(webinar_id: str) -> bytes:
        body = action_body(callback_id, webinar_id)
        if change is not None:
            change(body)
        return json.dumps(body).encode()  # ensure_ascii: NUL and lone surrogates as \\u escapes

    return make


def _set(*path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(body: dict[str, Any]) -> None:
        target = body
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


@dataclass(frozen=True)
class Case:
    name: str
    body: Body
    status: int
    detail: str | None = None  # a part of the 4xx reason
    output: dict[str, str] = field(default_factory=dict)  # expected output fields of a 200
    headers: dict[str, bytes] = field(default_factory=dict)  # raw header values to set
    drop_headers: tuple[str, ...] = ()


CASES = [
    # 1. Header values outside ASCII.
    Case(
        "v3 timestamp of superscript digits",
        _body("cb-h1"),
        401,
        "milliseconds",
        headers={"x-hubspot-request-timestamp": "¹²³".encode("latin-1")},
    ),
    Case(
        "v3 signature with non-ASCII bytes",
        _body("cb-h2"),
        401,
        "does not match",
        headers={"x-hubspot-signature-v3": b"\xff" * 44},
    ),
    Case(
        "v2 signature with non-ASCII bytes",
        _body("cb-h3"),
        401,
        "does not match",
        headers={"x-hubspot-signature": b"\xe9" * 64, "x-hubspot-signature-version": b"v2"},
        drop_headers=("x-hubspot-signature-v3",),
    ),
    # 2. Nesting and numbers that json cannot take.
    Case(
        "body nested 600 levels",
        _body("cb-n1", _set("context", value=_nested(600))),
        400,
        "nested too deeply",
    ),
    Case(
        "body nested 100000 levels",
        lambda _: b'{"callbackId":"cb-n2","object":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        400,
        "nested too deeply",
    ),
    Case(
        "integer of 5000 digits",
        lambda _: b'{"callbackId":"cb-n3","origin":{"portalId":' + b"7" * 5000 + b"}}",
        400,
        "not JSON",
    ),
    # 3. Fields that can never be stored or looked up.
    Case("callbackId with NUL", _body("cb-\x00"), 400, "callbackId contains a NUL character"),
    Case("callbackId with a lone surrogate", _body("cb-\ud800"), 400, "callbackId is not valid Unicode"),
    Case(
        "portalId of 10^20", _body("cb-p1", _set("origin", "portalId", value=10**20)), 400, "origin.portalId"
    ),
    Case("portalId of 2^63", _body("cb-p2", _set("origin", "portalId", value=2**63)), 400, "origin.portalId"),
    Case("portalId '²'", _body("cb-p3", _set("origin", "portalId", value="²")), 400, "origin.portalId"),
    Case(
        "portalId of 20 digits as a string",
        _body("cb-p4", _set("origin", "portalId", value="9" * 20)),
        400,
        "origin.portalId",
    ),
    Case(
        "objectId with NUL",
        _body("cb-o1", _set("object", "objectId", value="5\x0001")),
        400,
        "object.objectId",
    ),
    Case(
        "objectId of 65 characters",
        _body("cb-o2", _set("object", "objectId", value="5" * 65)),
        400,
        "objectId",
    ),
    # Valid requests with strange values: a normal answer.
    Case(
        "webinar id input with a lone surrogate",
        _body("cb-w1", _set("inputFields", "webinar_id", value="12\udc80")),
        200,
        output={"hs_execution_state": "FAIL_CONTINUE", "error_code": "invalid_webinar_id"},
    ),
    Case(
        "webinar id input with NUL",
        _body("cb-w2", _set("inputFields", "webinar_id", value="12\x0034")),
        200,
        output={"hs_execution_state": "FAIL_CONTINUE", "error_code": "invalid_webinar_id"},
    ),
    Case(
        "email with NUL",
        _body("cb-e1", _set("object", "properties", "email", value="ada\x00@example.com")),
        200,
        output={"hs_execution_state": "FAIL_CONTINUE", "error_code": "missing_contact_fields"},
    ),
    Case(
        "first name with NUL and a lone surrogate",
        _body("cb-f1", _set("object", "properties", "firstname", value="A\x00da\ud800")),
        200,
        output={"hs_execution_state": "SUCCESS"},
    ),
]


def _tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_hostile_action_request_gets_a_clear_answer(
    case: Case, database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    async with harness(database) as h:
        created = await h.zoom.create_webinar(topic="Hostile")
        webinar_id = str(created.result["id"])
        raw, signed = signed_action(case.body(webinar_id))
        headers: dict[str, Any] = {k: v for k, v in signed.items() if k not in case.drop_headers}
        headers |= case.headers
        r = await h.client.post(ACTION_PATH, content=raw, headers=headers)
        assert r.status_code < 500, r.text
        assert r.status_code == case.status, r.text
        if case.detail is not None:
            assert case.detail in r.json()["detail"]
        else:
            out = r.json()["outputFields"]
            assert {k: out.get(k) for k in case.output} == case.output, out
            await h.wait_done()
            if out["hs_execution_state"] == "SUCCESS":
                [registrant] = h.zoom.webinar_snapshot(h.zoom.webinar(webinar_id))["registrants"]
                assert registrant["first_name"] == "Ada?"  # NUL dropped, the surrogate replaced
    assert _tracebacks(caplog) == []
