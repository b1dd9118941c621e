"""Schemathesis over the service's own OpenAPI (issue 12 §3): zero 5xx, deterministic, bounded.

Every operation is driven through the real app (its lifespan, in-process ASGI) on SQLite and
PostgreSQL. A response of 500 or more, or an exception out of the app (what a server logs as a
traceback and answers 500), is collected with the request that caused it (as curl); the test fails
listing them all, and also when anything logged a traceback.

- Admin API (`/api/v1/*`), authenticated with the admin token, in four flavours per operation: data
  that fits the schema and data that does not, each with generated path ids and with the ids of a
  seeded portal, webinar, Zoom user and sync job (so bodies and queries reach the handlers, not
  only the 404).
- The Zoom webhook and the HubSpot workflow action read their raw body (their OpenAPI declares no
  body), so the test describes what they read (JSON body, signature headers) and sends each case
  unsigned (hostile headers) and validly signed (hostile content past the signature check).

Deterministic: Hypothesis is derandomized (a fixed seed per operation and flavour) and keeps no
example database, so CI sees the same requests on every run. Bounded: EXAMPLES per operation and
flavour; about 25 s per database on a 2-core machine.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import APIOperation, BaseSchema, GenerationMode
from schemathesis.core.result import Err
from schemathesis.python import asgi as schemathesis_asgi

from app.db import unit_of_work
from app.main import create_app
from app.models import SyncJob, Webinar, ZoomUser
from app.security import zoom_signature
from tests.fixtures.databases import Database
from tests.fixtures.e2e import ACTION_PATH, HS_CLIENT_SECRET, PUBLIC_BASE_URL, signed_action
from tests.fixtures.service import ACCOUNT_ID, ADMIN_TOKEN, PORTAL_ID, ZOOM_SECRET, make_settings

EXAMPLES = (
    20  # per operation and flavour: ~1,000 admin requests and ~160 webhook/action requests per database
)
WEBHOOK_PATH = "/webhooks/zoom"

WEBINAR_ID = "87000000001"
ZOOM_USER_ID = "fuzzHost01"
JOB_ID = "f" * 32
KNOWN_IDS = {"portal_id": PORTAL_ID, "webinar_id": WEBINAR_ID, "zoom_user_id": ZOOM_USER_ID, "job_id": JOB_ID}
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

# Sends one case; returns the headers and transport arguments it needs (e.g. a signature).
Prepare = Callable[[Any], tuple[dict[str, str], dict[str, Any]]]
Errors = list[str]


def _seed(database: Database) -> None:
    with unit_of_work(database.engine) as session:
        session.add(
            Webinar(zoom_account_id=ACCOUNT_ID, webinar_id=WEBINAR_ID, host_id=ZOOM_USER_ID, topic="F")
        )
        session.add(ZoomUser(zoom_account_id=ACCOUNT_ID, zoom_user_id=ZOOM_USER_ID, email="fuzz@example.com"))
        session.add(
            SyncJob(
                id=JOB_ID,
                kind="sync_now",
                portal_id=PORTAL_ID,
                zoom_account_id=ACCOUNT_ID,
                webinar_id=WEBINAR_ID,
            )
        )


@pytest.fixture
def fuzz_app(database: Database, caplog: pytest.LogCaptureFixture) -> Iterator[FastAPI]:
    _seed(database)
    caplog.set_level(logging.WARNING)
    app = create_app(
        make_settings(
            database,
            hubspot_client_secret=HS_CLIENT_SECRET,
            public_base_url=PUBLIC_BASE_URL,
            # Connections with secrets are stored (encrypted), so their write paths are fuzzed too;
            # without a key they are refused with 503 by design (tests/api/test_admin_connections.py).
            app_secret_key="fuzz-app-secret-key",
        )
    )
    try:
        yield app
    finally:
        # Schemathesis starts the app's lifespan on its own event-loop thread and keeps it for the
        # process; end it here, so the engine is disposed before the database fixture drops it.
        schemathesis_asgi.shutdown_lifespans()
    tracebacks = [f"{r.name}: {r.getMessage()}"[:300] for r in caplog.records if r.exc_info]
    assert not tracebacks, tracebacks


def _describe(case: Any, headers: dict[str, str]) -> str:
    try:
        return str(case.as_curl_command(headers=headers))
    except Exception:  # a request schemathesis cannot render as curl is still reported
        return (
            f"{case.method} {case.formatted_path} query={case.query!r} body={getattr(case, 'body', None)!r}"
        )


def _fuzz(
    operation: Any,
    mode: GenerationMode,
    errors: Errors,
    *,
    prepare: Prepare,
    path_parameters: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> int:
    """`EXAMPLES` cases of one operation and flavour; returns how many were sent."""
    sent = 0
    strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters, headers=headers)

    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        nonlocal sent
        sent += 1
        extra_headers, kwargs = prepare(case)
        try:
            response = case.call(headers=extra_headers, **kwargs)
        except Exception as exc:  # the app raised: a real server logs the traceback and answers 500
            errors.append(f"{type(exc).__name__}: {exc}"[:300] + f"\n  {_describe(case, extra_headers)}")
            return
        if response.status_code >= 500:
            errors.append(f"{response.status_code} {response.text[:300]}\n  {_describe(case, extra_headers)}")

    try:
        run()
    except Unsatisfiable:
        # Negative data for an operation with nothing left to break (every parameter fixed).
        assert mode is GenerationMode.NEGATIVE, (operation.method, operation.path)
    return sent


def operations_of(schema: BaseSchema) -> list[APIOperation[Any, Any, Any, Any]]:
    """Every operation of the schema; one the schema describes wrongly fails the test, with its error."""
    found = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()
        found.append(result.ok())
    return found


def _as_admin(case: Any) -> tuple[dict[str, str], dict[str, Any]]:
    return AUTH, {}


@pytest.mark.slow
def test_admin_api_never_answers_5xx(fuzz_app: FastAPI) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app).include(path_regex=r"^/api/v1/")
    operations = operations_of(schema)
    assert len(operations) >= 13, [f"{o.method} {o.path}" for o in operations]
    errors: Errors = []
    sent: dict[str, int] = {}
    for operation in operations:
        known = {k: v for k, v in KNOWN_IDS.items() if k in {p.name for p in operation.path_parameters}}
        for path_parameters in [None, known] if known else [None]:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                key = f"{operation.method.upper()} {operation.path}"
                sent[key] = sent.get(key, 0) + _fuzz(
                    operation,
                    mode,
                    errors,
                    prepare=_as_admin,
                    path_parameters=path_parameters,
                    headers={"authorization": AUTH["Authorization"]},
                )
    print(
        f"fuzz, admin API: {sum(sent.values())} requests over {len(operations)} operations, {len(errors)} 5xx"
    )
    assert all(sent.values()), sent
    assert not errors, f"{len(errors)} of {sum(sent.values())} requests answered 5xx:\n\n" + "\n\n".join(
        errors
    )


# What the webhook and the action read from a request (their routes take the raw request).
_STR: dict[str, Any] = {"type": "string"}
_ANY: dict[str, Any] = {}
_WEBHOOK_BODY = {
    "type": "object",
    "properties": {
        "event": _STR,
        "event_ts": {"type": "integer"},
        "payload": {
            "type": "object",
            "properties": {
                "account_id": _STR,
                "plainToken": _STR,
                "object": {
                    "type": "object",
                    "properties": {
                        "id": _ANY,
                        "uuid": _STR,
                        "host_id": _STR,
                        "registrant": {"type": "object"},
                        "participant": {"type": "object"},
                    },
                },
            },
        },
    },
}
_ACTION_BODY = {
    "type": "object",
    "properties": {
        "callbackId": _STR,
        "origin": {"type": "object", "properties": {"portalId": _ANY, "actionDefinitionId": _ANY}},
        "object": {
            "type": "object",
            "properties": {"objectId": _ANY, "objectType": _STR, "properties": {"type": "object"}},
        },
        "inputFields": {"type": "object", "properties": {"webinar_id": _ANY}},
    },
}


def _describe_raw_endpoints(spec: dict[str, Any]) -> dict[str, Any]:
    def header(name: str) -> dict[str, Any]:
        return {"name": name, "in": "header", "required": False, "schema": _STR}

    for path, body, headers in (
        (WEBHOOK_PATH, _WEBHOOK_BODY, ["x-zm-signature", "x-zm-request-timestamp"]),
        (ACTION_PATH, _ACTION_BODY, ["x-hubspot-signature-v3", "x-hubspot-request-timestamp"]),
    ):
        operation = spec["paths"][path]["post"]
        operation["parameters"] = [header(name) for name in headers]
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return spec


def _unsigned(case: Any) -> tuple[dict[str, str], dict[str, Any]]:
    return {}, {}


def _signed(case: Any) -> tuple[dict[str, str], dict[str, Any]]:
    """The generated body, serialised here and signed as Zoom or HubSpot would sign it."""
    raw = json.dumps(
        case.body if isinstance(case.body, dict | list | str | int | float | bool) else {}
    ).encode()
    if case.path == WEBHOOK_PATH:
        timestamp = str(int(time.time()))
        signature = zoom_signature(ZOOM_SECRET, timestamp, raw)
        headers = {"x-zm-request-timestamp": timestamp, "x-zm-signature": signature}
    else:
        raw, headers = signed_action(raw)
    return {**headers, "content-type": "application/json"}, {"data": raw}


@pytest.mark.slow
def test_webhook_and_action_never_answer_5xx(fuzz_app: FastAPI) -> None:
    described = schemathesis.openapi.from_dict(_describe_raw_endpoints(fuzz_app.openapi()))
    described.app = fuzz_app  # reached in-process, like from_asgi
    operations = operations_of(described.include(path=[WEBHOOK_PATH, ACTION_PATH]))
    assert len(operations) == 2, [f"{o.method} {o.path}" for o in operations]
    errors: Errors = []
    sent = 0
    for operation in operations:
        for prepare in (_unsigned, _signed):
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                sent += _fuzz(operation, mode, errors, prepare=prepare)
    print(f"fuzz, webhook and action: {sent} requests, {len(errors)} 5xx")
    assert sent >= 4 * EXAMPLES
    assert not errors, f"{len(errors)} of {sent} requests answered 5xx:\n\n" + "\n\n".join(errors)
