"""A per-portal rate limiter shared by every process through the database.

HubSpot's burst limit is per app and portal, whatever the number of our API and worker processes,
so the budget cannot live in one process. Each portal owns `limit` slot rows holding the time each
was last used; sending a request takes the least recently used slot, which is only allowed when
that time is more than one window ago. So any rolling window holds at most `limit` requests, and
on PostgreSQL `FOR UPDATE SKIP LOCKED` lets concurrent senders take different slots without
waiting on each other. A 429 from HubSpot blocks the portal for everyone until its Retry-After.

Each portal's budget is its `hubspot_portal.rate_limit_per_10s` when set, else the default
(HUBSPOT_RATE_LIMIT_PER_10S). It is read again every `BUDGET_RECHECK_S`, and a change resizes the
portal's ring: a larger budget adds fresh slots, a smaller one keeps the most recent send times in
the slots that remain, so a window that straddles the change still holds no more than the new budget.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.engine import Engine
from sqlmodel import col

from app.db import dialect_insert, unit_of_work
from app.models import HubSpotPortal, RateLimitBlock, RateLimitSlot

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# How long a portal's budget is trusted before `hubspot_portal` is read again: a budget changed
# through the admin API reaches every process within this long.
BUDGET_RECHECK_S = 5.0


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
        budget_recheck_s: float = BUDGET_RECHECK_S,
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
        self.budget_recheck_s = budget_recheck_s
        # portal -> (its budget, monotonic time it was read); portal -> the budget its ring has here.
        self._budgets: dict[int, tuple[int, float]] = {}
        self._prepared: dict[int, int] = {}
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

    def limit_for(self, portal_id: int) -> int:
        """The portal's budget per window: its own when set, else the default (cached briefly)."""
        now = time.monotonic()
        cached = self._budgets.get(portal_id)
        if cached is not None and now - cached[1] < self.budget_recheck_s:
            return cached[0]
        with unit_of_work(self.engine) as session:
            own = session.execute(
                select(col(HubSpotPortal.rate_limit_per_10s)).where(col(HubSpotPortal.portal_id) == portal_id)
            ).scalar_one_or_none()
        budget = own if own is not None and own >= 1 else self.limit
        self._budgets[portal_id] = (budget, now)
        return budget

    def try_acquire(self, portal_id: int) -> float:
        """Take a slot and return 0, or return how long to wait before trying again."""
        limit = self.limit_for(portal_id)
        self._prepare(portal_id, limit)
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
                .where(RateLimitSlot.portal_id == portal_id, RateLimitSlot.slot < limit)  # type: ignore[arg-type]
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

    def _prepare(self, portal_id: int, limit: int) -> None:
        """Make sure the portal's ring has exactly `limit` slots (once per budget and process)."""
        if self._prepared.get(portal_id) == limit:
            return
        with unit_of_work(self.engine) as session:
            # Every slot row of the portal, locked (waiting, not skipping): a resize must see the
            # whole ring, and concurrent senders then wait for it or skip the locked rows.
            query = select(RateLimitSlot).where(col(RateLimitSlot.portal_id) == portal_id)
            if self._skip_locked:
                query = query.with_for_update()
            slots = list(session.execute(query).scalars())
            if len(slots) > limit:
                # Shrinking: the `limit` most recent send times stay, in slots 0..limit-1. A new request
                # must then wait a window after the limit-th most recent one, so no window holds more.
                recent = sorted((s.used_at for s in slots), reverse=True)[:limit]
                kept = {s.slot: s for s in slots if s.slot < limit}
                session.execute(
                    delete(RateLimitSlot).where(
                        col(RateLimitSlot.portal_id) == portal_id, col(RateLimitSlot.slot) >= limit
                    )
                )
                for number, used_at in enumerate(recent):
                    row = kept.get(number)
                    if row is None:
                        session.add(RateLimitSlot(portal_id=portal_id, slot=number, used_at=used_at))
                    else:
                        row.used_at = used_at
            elif len(slots) < limit:
                # Growing (or new): fresh slots are free at once. Another process may add them too.
                table = RateLimitSlot.__table__  # type: ignore[attr-defined]
                insert = dialect_insert(self.engine, table)
                rows = [{"portal_id": portal_id, "slot": i, "used_at": _EPOCH} for i in range(limit)]
                session.execute(insert.on_conflict_do_nothing(index_elements=["portal_id", "slot"]), rows)
        self._prepared[portal_id] = limit
