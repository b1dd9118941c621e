"""A per-portal rate limiter shared by every process through the database.

HubSpot's burst limit is per app and portal, whatever the number of our API and worker processes,
so the budget cannot live in one process. Each portal owns `limit` slot rows holding the time each
was last used; sending a request takes the least recently used slot, which is only allowed when
that time is more than one window ago. So any rolling window holds at most `limit` requests, and
on PostgreSQL `FOR UPDATE SKIP LOCKED` lets concurrent senders take different slots without
waiting on each other. A 429 from HubSpot blocks the portal for everyone until its Retry-After.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.engine import Engine

from app.db import dialect_insert, unit_of_work
from app.models import RateLimitBlock, RateLimitSlot

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class DatabaseRateLimiter:
    def __init__(
        self,
        engine: Engine,
        limit: int,
        window_s: float = 10.0,
        *,
        clock: Callable[[], float] = time.time,
        max_poll_s: float = 0.5,
        margin_s: float | None = None,
    ) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.engine = engine
        self.limit = limit
        # A slot is stamped when it is taken; the request leaves a little later (thread hop, commit),
        # and by a varying amount. Reusing a slot a margin after a full window keeps what HubSpot
        # sees within the budget despite that jitter.
        margin = 0.05 * window_s if margin_s is None else margin_s
        self.window = timedelta(seconds=window_s + margin)
        self.clock = clock
        self.max_poll_s = max_poll_s
        self._prepared: set[int] = set()
        self._penalties: dict[int, float] = {}
        self._skip_locked = engine.dialect.name == "postgresql"

    async def acquire(self, portal_id: int) -> None:
        while True:
            wait_s = await asyncio.to_thread(self.try_acquire, portal_id)
            if wait_s <= 0:
                return
            await asyncio.sleep(min(wait_s, self.max_poll_s))

    def penalise(self, portal_id: int, retry_after_s: float) -> None:
        # Recorded in memory now and written by the next acquire, which runs in a worker thread:
        # no blocking database call on the event loop.
        until = self.clock() + retry_after_s
        self._penalties[portal_id] = max(until, self._penalties.get(portal_id, 0.0))

    def try_acquire(self, portal_id: int) -> float:
        """Take a slot and return 0, or return how long to wait before trying again."""
        self._prepare(portal_id)
        with unit_of_work(self.engine) as session:
            penalty = self._penalties.pop(portal_id, None)
            block = session.get(RateLimitBlock, portal_id, with_for_update=self._skip_locked)
            # Read the clock only now that the transaction holds its lock: a stamp taken before
            # waiting for the lock would let the request leave later than the stamp says.
            now = datetime.fromtimestamp(self.clock(), UTC)
            if penalty is not None:
                until = datetime.fromtimestamp(penalty, UTC)
                if block is None:
                    block = RateLimitBlock(portal_id=portal_id, blocked_until=until)
                    session.add(block)
                elif until > block.blocked_until:
                    block.blocked_until = until
            if block is not None and block.blocked_until > now:
                return float((block.blocked_until - now).total_seconds())
            stmt = (
                select(RateLimitSlot)
                .where(RateLimitSlot.portal_id == portal_id, RateLimitSlot.slot < self.limit)  # type: ignore[arg-type]
                .order_by(RateLimitSlot.used_at)  # type: ignore[arg-type]
                .limit(1)
            )
            if self._skip_locked:
                stmt = stmt.with_for_update(skip_locked=True)
            slot = session.execute(stmt).scalars().first()
            if slot is None:
                return 0.01  # every slot is being taken by another sender right now
            free_at = slot.used_at + self.window
            if free_at > now:
                return float((free_at - now).total_seconds())
            slot.used_at = now
            return 0.0

    def _prepare(self, portal_id: int) -> None:
        if portal_id in self._prepared:
            return
        table = RateLimitSlot.__table__  # type: ignore[attr-defined]
        insert = dialect_insert(self.engine, table)
        rows = [{"portal_id": portal_id, "slot": i, "used_at": _EPOCH} for i in range(self.limit)]
        with unit_of_work(self.engine) as session:
            session.execute(insert.on_conflict_do_nothing(index_elements=["portal_id", "slot"]), rows)
        self._prepared.add(portal_id)
