"""Driving the service end to end: signed deliveries in, wait for the worker, read the state."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.engine import Engine

from app.sandbox.zoom_webhooks import make_delivery
from tests.conftest import ADMIN, ZOOM_SECRET


async def deliver(
    client: httpx.AsyncClient, envelopes: Iterable[Mapping[str, Any]], *, concurrency: int = 8
) -> None:
    semaphore = asyncio.Semaphore(concurrency)

    async def one(env: Mapping[str, Any]) -> None:
        d = make_delivery(ZOOM_SECRET, env)
        async with semaphore:
            r = await client.post("/webhooks/zoom", content=d.body, headers=d.headers)
        assert r.status_code == 200, r.text

    await asyncio.gather(*(one(e) for e in envelopes))


async def wait_inbox_idle(client: httpx.AsyncClient, timeout_s: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        r = await client.get("/api/v1/status", headers=ADMIN)
        body: dict[str, Any] = r.json()
        if body["inbox"]["pending"] == 0:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"inbox not idle after {timeout_s}s: {body}")
        await asyncio.sleep(0.05)


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """The local state, outbox and audit in a comparable form (no ids, versions or times)."""
    queries = {
        "webinars": "SELECT zoom_account_id, webinar_id, topic, host_id, webinar_type, actual_start_at, "
        "actual_end_at, unsupported_reason, deleted_at IS NOT NULL FROM webinar",
        "registrations": "SELECT webinar_id, registrant_id, email, first_name, last_name, status "
        "FROM registration",
        "marks": "SELECT webinar_id, person_key, session_key, kind, at, email FROM attendance_mark",
        "outbox": "SELECT portal_id, kind, target_key, state FROM outbox_op",
        "excluded": "SELECT portal_id, webinar_id, person_key, email, reason, role FROM excluded_email",
        "audit": "SELECT webinar_id, status, code, message, details FROM audit_entry",
        "zoom_users": "SELECT zoom_account_id, zoom_user_id, email, sync_new_webinars_by_default "
        "FROM zoom_user",
    }
    out: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for name, sql in queries.items():
            rows = [tuple(str(v) for v in row) for row in conn.execute(text(sql))]
            out[name] = sorted(rows)
    return out
