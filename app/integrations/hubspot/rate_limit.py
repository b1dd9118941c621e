"""Per-portal request budget for HubSpot.

HubSpot counts requests per portal (and app) in a rolling 10-second window. Every attempt the
client makes goes through `RateLimiter.acquire`, and a 429 is reported through `penalise`, so one
limiter shared by everything that talks to a portal keeps the whole service inside the budget.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol


class RateLimiter(Protocol):
    async def acquire(self, portal_id: int) -> None:
        """Wait until one request to `portal_id` may be sent, and count it as sent."""
        ...

    def penalise(self, portal_id: int, retry_after_s: float) -> None:
        """HubSpot answered 429: nobody sends to `portal_id` for `retry_after_s` seconds."""
        ...


@dataclass
class _PortalWindow:
    sent_at: deque[float]
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    blocked_until: float = 0.0


class InProcessRateLimiter:
    """Rolling window: at most `limit` sends per portal in any `window_s` seconds, in this process.

    Keeps the timestamps of the last `limit` sends of each portal; a caller that would be the
    `limit + 1`-th waits until the oldest has left the window. Waiters of one portal queue on a
    lock (asyncio locks are FIFO), so they are served in arrival order and none starves.
    `clock` and `sleep` are injectable so tests can run on a fake clock.
    """

    def __init__(
        self,
        limit: int,
        window_s: float = 10.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        if window_s <= 0:
            raise ValueError("window_s must be positive")
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._sleep = sleep
        self._portals: dict[int, _PortalWindow] = {}

    def _window(self, portal_id: int) -> _PortalWindow:
        window = self._portals.get(portal_id)
        if window is None:
            window = _PortalWindow(sent_at=deque(maxlen=self.limit))
            self._portals[portal_id] = window
        return window

    def _wait_s(self, window: _PortalWindow, now: float) -> float:
        wait = window.blocked_until - now
        if len(window.sent_at) >= self.limit:
            wait = max(wait, window.sent_at[0] + self.window_s - now)
        return wait

    async def acquire(self, portal_id: int) -> None:
        window = self._window(portal_id)
        async with window.lock:
            while True:
                now = self._clock()
                wait = self._wait_s(window, now)
                if wait <= 0:
                    # maxlen drops the oldest timestamp, which has just left the window.
                    window.sent_at.append(now)
                    return
                # Re-check after sleeping: a 429 may have extended the block meanwhile.
                await self._sleep(wait)

    def penalise(self, portal_id: int, retry_after_s: float) -> None:
        window = self._window(portal_id)
        window.blocked_until = max(window.blocked_until, self._clock() + max(retry_after_s, 0.0))
