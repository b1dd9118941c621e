"""The dispatcher's kind -> handler table: every kind has its one handler, a round calls them in
KIND_ORDER with the portal's set-up, and a kind this version does not know waits (no attempt)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import cast

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from app.db import unit_of_work
from app.delivery.context import Handler
from app.delivery.dispatcher import KIND_ORDER, UNKNOWN_KIND_WAIT_S, Dispatcher, DispatchOutcome
from app.delivery.facts import FactsResolver
from app.delivery.ops import DONE, ClaimedOp, Result, Verdict
from app.integrations.hubspot import HubSpotClient
from app.integrations.hubspot.setup import PortalSetup
from app.models import OutboxOp, OutboxState, TimelineBackend
from app.sync.op_kind import OpKind
from tests.fixtures.databases import Database
from tests.fixtures.service import ACCOUNT_ID, PORTAL_ID

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 4, 2, 15, 0, tzinfo=UTC)
SETUP = PortalSetup(TimelineBackend.CLASSIC, {"Zoom webinar registration": "t-reg"})
CLIENT = cast(HubSpotClient, object())  # never called: the handlers are replaced or not reached
FUTURE_KIND = "zoom_poll_answer"  # planned by a newer version during a rollout


def dispatcher(engine: Engine) -> Dispatcher:
    async def setup(client: HubSpotClient, portal_id: int) -> PortalSetup:
        return SETUP

    return Dispatcher(
        engine,
        client_for=lambda portal_id: CLIENT if portal_id == PORTAL_ID else None,
        setup_for=setup,
        facts=FactsResolver(engine),
        now=lambda: T0,
    )


def op(op_id: int, kind: str) -> ClaimedOp:
    return ClaimedOp(
        id=op_id,
        portal_id=PORTAL_ID,
        kind=kind,
        target_key=f"target-{op_id}",
        zoom_account_id=ACCOUNT_ID,
        webinar_id=None,
        email=None,
        version=1,
        attempts=0,
        created_at=T0,
    )


def test_every_kind_has_exactly_one_handler_and_one_place_in_the_order() -> None:
    table = dispatcher(create_engine("sqlite://")).handlers
    assert sorted(table) == sorted(OpKind)
    assert all(callable(handler) for handler in table.values())
    assert sorted(KIND_ORDER) == sorted(OpKind)  # each kind once: none sent twice, none forgotten
    at = {kind: i for i, kind in enumerate(KIND_ORDER)}
    # Contacts before what uses the ids written in the same round; states after their marketing event;
    # completion after every state (HubSpot computes attendance durations at completion).
    for needs_contact in (
        OpKind.REGISTRATION_EVENT,
        OpKind.ATTENDANCE_EVENT,
        OpKind.MARKETING_STATE,
        OpKind.RECORDING_CALL,
    ):
        assert at[OpKind.CONTACT_REFRESH] < at[needs_contact]
    assert at[OpKind.MARKETING_EVENT] < at[OpKind.MARKETING_STATE] < at[OpKind.MARKETING_COMPLETE]
    # The order HubSpot sees the calls in, exactly as before the kinds got their own modules.
    assert " ".join(KIND_ORDER) == (
        "marketing_event contact_refresh registration_event attendance_event"
        " marketing_state marketing_complete recording_call"
    )


async def test_a_round_calls_each_kinds_handler_in_kind_order_with_only_its_operations() -> None:
    d = dispatcher(create_engine("sqlite://"))
    calls: list[tuple[str, list[int], PortalSetup]] = []

    def recording(kind: OpKind) -> Handler:
        async def handle(
            client: HubSpotClient, portal_id: int, ops: list[ClaimedOp], setup: PortalSetup
        ) -> dict[int, Result]:
            assert client is CLIENT and portal_id == PORTAL_ID
            calls.append((kind, [o.id for o in ops], setup))
            return {o.id: DONE for o in ops}

        return handle

    d.handlers = {kind: recording(kind) for kind in OpKind}
    # Claimed in id order, which mixes the kinds; the last one first in KIND_ORDER.
    ops = [op(i, kind) for i, kind in enumerate(reversed(KIND_ORDER), start=1)]
    ops.append(op(99, OpKind.CONTACT_REFRESH))
    results = await d._portal_round(PORTAL_ID, ops)
    assert [kind for kind, _, _ in calls] == list(KIND_ORDER)
    assert dict((kind, ids) for kind, ids, _ in calls)[OpKind.CONTACT_REFRESH] == [6, 99]
    assert all(setup is SETUP for _, _, setup in calls)
    assert results == {o.id: DONE for o in ops}


async def test_an_unknown_kind_waits_a_minute_while_the_known_kinds_go() -> None:
    d = dispatcher(create_engine("sqlite://"))
    sent: list[int] = []

    async def handle(
        client: HubSpotClient, portal_id: int, ops: list[ClaimedOp], setup: PortalSetup
    ) -> dict[int, Result]:
        sent.extend(o.id for o in ops)
        return {o.id: DONE for o in ops}

    d.handlers = {kind: handle for kind in OpKind}
    results = await d._portal_round(PORTAL_ID, [op(1, FUTURE_KIND), op(2, OpKind.CONTACT_REFRESH)])
    assert sent == [2]
    assert results == {1: Result(Verdict.WAIT, delay_s=UNKNOWN_KIND_WAIT_S), 2: DONE}
    assert UNKNOWN_KIND_WAIT_S == 60.0


async def test_an_unknown_kinds_row_stays_pending_without_an_attempt(database: Database) -> None:
    with unit_of_work(database.engine) as session:
        session.add(
            OutboxOp(
                portal_id=PORTAL_ID,
                kind=FUTURE_KIND,
                target_key="poll-1",
                zoom_account_id=ACCOUNT_ID,
                next_attempt_at=T0 - timedelta(seconds=1),
            )
        )
    outcome = await dispatcher(database.engine).run_once()
    assert outcome == DispatchOutcome(claimed=1, waiting=1)
    with Session(database.engine) as session:
        row = session.exec(select(OutboxOp)).one()
    assert row.state == OutboxState.PENDING
    assert (row.attempts, row.last_error, row.locked_until) == (0, None, None)
    assert row.next_attempt_at == T0 + timedelta(seconds=60)
