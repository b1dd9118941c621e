"""Results of blocked executions go to HubSpot's callbacks API, in batches of at most 100 per portal.

A callback HubSpot refuses (expired, unknown) is kept as failed; one that could not be sent now is
tried again in the next round, up to `callback_max_attempts`, then kept as failed (visible).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlmodel import col

from app.actions.config import ActionConfig
from app.db import unit_of_work
from app.integrations.hubspot import HubSpotClient, HubSpotError
from app.integrations.hubspot.client import BATCH_LIMIT
from app.integrations.hubspot.models import CallbackCompletion
from app.models import ActionExecution, ActionState, CallbackState

# The log lines keep the logger name they had before the service was split (a log field).
log = logging.getLogger("app.actions.service")

# The HubSpot client of a portal; None when it is not connected.
HubSpotFor = Callable[[int], HubSpotClient | None]
# (execution id, callbackId, output fields)
Pending = tuple[int, str, dict[str, str]]


@dataclass
class CallbackTally:
    sent: int = 0
    failed: int = 0


class CallbackSender:
    def __init__(self, engine: Engine, hubspot_for: HubSpotFor | None, config: ActionConfig) -> None:
        self.engine = engine
        self.hubspot_for = hubspot_for
        self.config = config

    async def send_pending(self) -> CallbackTally:
        tally = CallbackTally()
        if self.hubspot_for is None:
            return tally
        pending = await asyncio.to_thread(self._pending)
        for portal_id, items in pending.items():
            client = self.hubspot_for(portal_id)
            if client is None:
                continue
            for start in range(0, len(items), BATCH_LIMIT):
                await self._send_batch(client, items[start : start + BATCH_LIMIT], tally)
        return tally

    async def _send_batch(
        self, client: HubSpotClient, batch: Sequence[Pending], tally: CallbackTally
    ) -> None:
        ids = [row_id for row_id, _, _ in batch]
        try:
            await client.complete_callbacks(
                [CallbackCompletion(callback_id=cb, output_fields=out) for _, cb, out in batch]
            )
        except HubSpotError as exc:
            if exc.retryable:
                await asyncio.to_thread(self._mark, ids, None, f"callback: {exc}")
                await asyncio.to_thread(self._give_up)
                return
            if len(batch) > 1:
                # One expired or unknown callback fails the whole batch: find it by sending alone.
                for item in batch:
                    await self._send_batch(client, [item], tally)
                return
            log.warning("workflow action callback refused", extra={"error": str(exc)})
            await asyncio.to_thread(self._mark, ids, CallbackState.FAILED, f"callback: {exc}")
            tally.failed += len(ids)
            return
        await asyncio.to_thread(self._mark, ids, CallbackState.SENT)
        tally.sent += len(ids)

    def _pending(self) -> dict[int, list[Pending]]:
        with unit_of_work(self.engine) as session:
            rows = session.execute(
                select(
                    col(ActionExecution.id),
                    col(ActionExecution.portal_id),
                    col(ActionExecution.callback_id),
                    col(ActionExecution.output_fields),
                )
                .where(
                    col(ActionExecution.state) == ActionState.DONE,
                    col(ActionExecution.callback_state) == CallbackState.PENDING,
                )
                .order_by(col(ActionExecution.completed_at))
                .limit(BATCH_LIMIT * 10)
            ).all()
        by_portal: dict[int, list[Pending]] = defaultdict(list)
        for row_id, portal_id, callback_id, output in rows:
            by_portal[int(portal_id)].append((int(row_id), str(callback_id), dict(output or {})))
        return by_portal

    def _mark(self, ids: Sequence[int], state: CallbackState | None, error: str | None = None) -> None:
        values: dict[str, Any] = {"callback_attempts": col(ActionExecution.callback_attempts) + 1}
        if state is not None:
            values["callback_state"] = state
        if error is not None:
            values["last_error"] = error[:2000]
        with unit_of_work(self.engine) as session:
            session.execute(update(ActionExecution).where(col(ActionExecution.id).in_(ids)).values(**values))

    def _give_up(self) -> None:
        """After the last attempt a callback is kept as failed (visible), never retried forever."""
        with unit_of_work(self.engine) as session:
            session.execute(
                update(ActionExecution)
                .where(
                    col(ActionExecution.callback_state) == CallbackState.PENDING,
                    col(ActionExecution.callback_attempts) >= self.config.callback_max_attempts,
                )
                .values(callback_state=CallbackState.FAILED)
            )
