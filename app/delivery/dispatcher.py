"""Delivers planned operations to HubSpot, as fast as the portal's rate limit allows.

Each round claims due operations (a lease, so several workers share them: `claim`), reads the current
values from the local model, sends them in batches of at most 100 per portal and kind (one handler per
kind, in `KIND_ORDER`), and records each operation's result (`finish`). An operation is done for the
version it was sent with: if it was re-planned meanwhile it stays pending and goes again with the newer
values.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import datetime

from sqlalchemy.engine import Engine

from app.db import utcnow
from app.delivery.activity_writer import ActivityKind
from app.delivery.claim import Leases
from app.delivery.contacts import ContactDelivery
from app.delivery.context import DeliveryContext, Handler
from app.delivery.facts import FactsResolver
from app.delivery.finish import DispatchOutcome, Finisher
from app.delivery.marketing import MarketingDelivery
from app.delivery.ops import ClaimedOp, DispatchConfig, Result, Verdict
from app.delivery.recordings import RecordingDelivery, TranscriptFetcher
from app.delivery.timeline import TimelineDelivery
from app.integrations.hubspot import HubSpotClient, HubSpotError
from app.integrations.hubspot.setup import PortalSetup
from app.sync.op_kind import OpKind

__all__ = ["KIND_ORDER", "DispatchConfig", "DispatchOutcome", "Dispatcher"]

log = logging.getLogger(__name__)

# Contacts first (timeline events and marketing states need their ids), completion last.
KIND_ORDER = (
    OpKind.MARKETING_EVENT,
    OpKind.CONTACT_REFRESH,
    OpKind.REGISTRATION_EVENT,
    OpKind.ATTENDANCE_EVENT,
    OpKind.MARKETING_STATE,
    OpKind.MARKETING_COMPLETE,
    OpKind.RECORDING_CALL,
)
# An outbox row of a kind this version does not know (a newer worker planned it during a rollout)
# waits this long, no attempt counted, until a worker that knows it takes it.
UNKNOWN_KIND_WAIT_S = 60.0

ClientFor = Callable[[int], HubSpotClient | None]
SetupFor = Callable[[HubSpotClient, int], Awaitable[PortalSetup]]


def handler_table(
    ctx: DeliveryContext, facts: FactsResolver, recordings: RecordingDelivery
) -> dict[OpKind, Handler]:
    """The handler of every operation kind: one each, all with the same signature."""
    marketing = MarketingDelivery(ctx)
    return {
        OpKind.MARKETING_EVENT: marketing.events,
        OpKind.CONTACT_REFRESH: ContactDelivery(ctx, facts).run,
        OpKind.REGISTRATION_EVENT: TimelineDelivery(ctx, ActivityKind.REGISTRATION).run,
        OpKind.ATTENDANCE_EVENT: TimelineDelivery(ctx, ActivityKind.ATTENDANCE).run,
        OpKind.MARKETING_STATE: marketing.states,
        OpKind.MARKETING_COMPLETE: marketing.complete,
        OpKind.RECORDING_CALL: recordings.run,
    }


class Dispatcher:
    def __init__(
        self,
        engine: Engine,
        *,
        client_for: ClientFor,
        setup_for: SetupFor,
        facts: FactsResolver,
        config: DispatchConfig | None = None,
        now: Callable[[], datetime] = utcnow,
        transcripts: TranscriptFetcher | None = None,
    ) -> None:
        self.engine = engine
        self.recordings = RecordingDelivery(engine, transcripts=transcripts)
        self.client_for = client_for
        self.setup_for = setup_for
        self.facts = facts
        self.config = config or DispatchConfig()
        self.now = now
        self.leases = Leases(engine, self.config, now)
        self.finisher = Finisher(engine, self.config, now)
        self.handlers = handler_table(DeliveryContext(engine, self.config, now), facts, self.recordings)
        self._leased: list[ClaimedOp] = []  # the operations of the round in progress

    async def run_once(self) -> DispatchOutcome:
        ops = await asyncio.to_thread(self._claim)
        outcome = DispatchOutcome(claimed=len(ops))
        if not ops:
            return outcome
        by_portal: dict[int, list[ClaimedOp]] = defaultdict(list)
        for op in ops:
            by_portal[op.portal_id].append(op)
        results: dict[int, Result] = {}
        done_sending = asyncio.Event()
        heartbeat = asyncio.create_task(self.leases.keep(ops, done_sending), name="outbox-lease-heartbeat")
        try:
            for portal_id, portal_ops in sorted(by_portal.items()):
                results.update(await self._portal_round(portal_id, portal_ops))
        except Exception as exc:
            # A bug or a database failure mid-round: record what was learnt, count an attempt for
            # the rest (so a persistent problem ends visibly) and release them instead of leaving
            # them leased until the lease runs out.
            log.exception("dispatch round failed")
            error = f"{type(exc).__name__}: {exc}"[:500]
            for op in ops:
                results.setdefault(op.id, Result(Verdict.RETRY, error=error, retryable=False))
        finally:
            # Stop renewing before finishing: a renewal must never land after the release.
            done_sending.set()
            await heartbeat
        await asyncio.to_thread(self.finisher.finish, ops, results, outcome)
        self._leased = []
        return outcome

    def release_claims(self) -> int:
        """End the leases of the round in progress, after it was cancelled (the worker stops): another
        worker takes its operations at once instead of after the lease. Whatever the round sent is
        sent again then, which every HubSpot write here allows (upserts, stable event ids)."""
        ops, self._leased = self._leased, []
        if ops:
            self.leases.release(ops)
        return len(ops)

    def _claim(self) -> list[ClaimedOp]:
        self._leased = self.leases.claim()
        return self._leased

    async def _portal_round(self, portal_id: int, ops: list[ClaimedOp]) -> dict[int, Result]:
        client = self.client_for(portal_id)
        if client is None:
            # No credentials for this portal (yet): keep the work, look again later.
            return {op.id: Result(Verdict.WAIT, delay_s=30.0) for op in ops}
        try:
            setup = await self.setup_for(client, portal_id)
        except HubSpotError as exc:
            # Nothing can be sent before the set-up is sure (HubSpot down, or a property that does
            # not fit). Wait without counting attempts, so delivery resumes within seconds of
            # HubSpot returning instead of after a long backoff; the reason stays visible.
            return {
                op.id: Result(Verdict.WAIT, error=str(exc)[:500], delay_s=self.config.setup_wait_s)
                for op in ops
            }
        by_kind: dict[str, list[ClaimedOp]] = defaultdict(list)
        for op in ops:
            by_kind[op.kind].append(op)
        results: dict[int, Result] = {}
        for kind in KIND_ORDER:
            kind_ops = by_kind.pop(kind, [])
            if kind_ops:
                results.update(await self.handlers[kind](client, portal_id, kind_ops, setup))
        for leftover in by_kind.values():  # a kind this version does not know: keep it
            results.update({op.id: Result(Verdict.WAIT, delay_s=UNKNOWN_KIND_WAIT_S) for op in leftover})
        return results
