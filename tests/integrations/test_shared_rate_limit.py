"""The database-shared HubSpot rate limiter: at most N requests per rolling window, across processes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlmodel import col

from app.db import unit_of_work
from app.integrations.shared_rate_limit import DatabaseRateLimiter
from app.models import HubSpotPortal, RateLimitSlot
from tests.fixtures.databases import Database

ROOT = Path(__file__).resolve().parents[2]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def max_in_any_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


class TestSlots:
    def test_at_most_limit_per_window(self, database: Database) -> None:
        clock = FakeClock()
        limiter = DatabaseRateLimiter(database.engine, limit=3, window_s=10, clock=clock, margin_s=0)
        assert [limiter.try_acquire(7) for _ in range(3)] == [0.0, 0.0, 0.0]
        wait = limiter.try_acquire(7)
        assert wait == pytest.approx(10.0)
        clock.now += 4
        assert limiter.try_acquire(7) == pytest.approx(6.0)
        clock.now += 6
        assert limiter.try_acquire(7) == 0.0  # the oldest slot left the window
        assert limiter.try_acquire(8) == 0.0  # portals have separate budgets

    def test_penalty_blocks_until_retry_after(self, database: Database) -> None:
        clock = FakeClock()
        limiter = DatabaseRateLimiter(database.engine, limit=100, window_s=10, clock=clock, margin_s=0)
        limiter.penalise(7, 2.5)
        assert limiter.try_acquire(7) == pytest.approx(2.5)
        # Another process (another limiter on the same database) sees the block too.
        other = DatabaseRateLimiter(database.engine, limit=100, window_s=10, clock=clock)
        assert other.try_acquire(7) == pytest.approx(2.5)
        clock.now += 2.5
        assert other.try_acquire(7) == 0.0

    def test_margin_delays_slot_reuse(self, database: Database) -> None:
        clock = FakeClock()
        limiter = DatabaseRateLimiter(database.engine, limit=1, window_s=10, clock=clock)
        assert limiter.try_acquire(7) == 0.0
        clock.now += 10
        assert limiter.try_acquire(7) == pytest.approx(0.5)  # default margin: 5% of the window

    def test_rejects_zero_limit(self, database: Database) -> None:
        with pytest.raises(ValueError, match="limit"):
            DatabaseRateLimiter(database.engine, limit=0)


_SENDER = textwrap.dedent(
    """
    import asyncio, json, sys, time
    from app.db import make_engine
    from app.integrations.shared_rate_limit import DatabaseRateLimiter

    url, out = sys.argv[1], sys.argv[5]
    limit, window, count = int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])

    async def main() -> None:
        # The margin absorbs the delay between taking a slot and the moment recorded below, which
        # this shared, loaded test machine can stretch well past the production default.
        engine = make_engine(url)
        limiter = DatabaseRateLimiter(engine, limit=limit, window_s=window, max_poll_s=0.02, margin_s=0.25)
        times = []
        for _ in range(count):
            await limiter.acquire(99)
            times.append(time.time())
        with open(out, "w") as f:
            json.dump(times, f)

    asyncio.run(main())
    """
)


@pytest.mark.slow
def test_two_processes_share_one_budget(database: Database, tmp_path: Path) -> None:
    """Two sender processes, 20 requests each, budget 10 per 1 s: never more than 10 in any second."""
    limit, window, count = 10, 1.0, 20
    script = tmp_path / "sender.py"
    script.write_text(_SENDER)
    outs = [tmp_path / f"times{i}.json" for i in range(2)]
    started = time.monotonic()
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), database.url, str(limit), str(window), str(count), str(out)],
            cwd=ROOT,
        )
        for out in outs
    ]
    for p in procs:
        assert p.wait(timeout=120) == 0
    elapsed = time.monotonic() - started
    times = [t for out in outs for t in json.loads(out.read_text())]
    assert len(times) == 2 * count
    assert max_in_any_window(times, window) <= limit
    # 40 sends at 10 per second need at least 3 full windows after the first burst.
    assert max(times) - min(times) >= 3 * window * 0.95, elapsed


def _set_budget(database: Database, portal_id: int, budget: int | None) -> None:
    with unit_of_work(database.engine) as session:
        session.merge(HubSpotPortal(portal_id=portal_id, rate_limit_per_10s=budget))


def _immediate(limiter: DatabaseRateLimiter, portal_id: int, tries: int = 20) -> int:
    """How many slots the portal gets at once (without the clock moving)."""
    return sum(1 for _ in range(tries) if limiter.try_acquire(portal_id) == 0.0)


class TestPerPortalBudget:
    def test_each_portal_its_own_budget(self, database: Database) -> None:
        _set_budget(database, 31, 3)
        _set_budget(database, 32, 7)
        clock = FakeClock()
        limiter = DatabaseRateLimiter(database.engine, limit=100, window_s=10, clock=clock, margin_s=0)
        assert _immediate(limiter, 31) == 3
        assert _immediate(limiter, 32) == 7
        assert _immediate(limiter, 33, tries=120) == 100  # no budget of its own: the default
        # Another process on the same database sees the same budgets and the slots already taken.
        other = DatabaseRateLimiter(database.engine, limit=100, window_s=10, clock=clock, margin_s=0)
        assert _immediate(other, 31) == 0 and _immediate(other, 32) == 0
        clock.now += 10
        assert _immediate(other, 31) == 3 and _immediate(limiter, 32) == 7

    def test_budget_grows(self, database: Database) -> None:
        _set_budget(database, 41, 3)
        clock = FakeClock()
        limiter = DatabaseRateLimiter(
            database.engine, limit=100, window_s=10, clock=clock, margin_s=0, budget_recheck_s=0
        )
        assert _immediate(limiter, 41) == 3
        _set_budget(database, 41, 7)
        assert _immediate(limiter, 41) == 4  # 7 in the window, 3 of them taken before the change
        clock.now += 10
        assert _immediate(limiter, 41) == 7

    def test_budget_shrinks_without_exceeding_the_new_one_in_any_window(self, database: Database) -> None:
        _set_budget(database, 42, 7)
        clock = FakeClock()
        limiter = DatabaseRateLimiter(
            database.engine, limit=100, window_s=10, clock=clock, margin_s=0, budget_recheck_s=0
        )
        sent: list[float] = []
        for _ in range(5):  # 5 requests, one second apart: under 7
            assert limiter.try_acquire(42) == 0.0
            sent.append(clock.now)
            clock.now += 1
        _set_budget(database, 42, 3)
        # Slots are left only once the 3 most recent requests are a window old.
        assert limiter.try_acquire(42) == pytest.approx(sent[2] + 10 - clock.now)
        for _ in range(40):  # keep asking for 20 s, 0.5 s apart
            if limiter.try_acquire(42) == 0.0:
                sent.append(clock.now)
            clock.now += 0.5
        after_change = [t for t in sent if t > sent[4] - 10]
        assert max_in_any_window(after_change, 10) <= 5  # the window that straddles the change
        assert max_in_any_window([t for t in sent if t > sent[4]], 10) == 3
        with unit_of_work(database.engine) as session:
            slots = (
                session.execute(select(RateLimitSlot).where(col(RateLimitSlot.portal_id) == 42))
                .scalars()
                .all()
            )
        assert sorted(s.slot for s in slots) == [0, 1, 2]

    def test_budget_back_to_default(self, database: Database) -> None:
        _set_budget(database, 43, 2)
        clock = FakeClock()
        limiter = DatabaseRateLimiter(
            database.engine, limit=5, window_s=10, clock=clock, margin_s=0, budget_recheck_s=0
        )
        assert _immediate(limiter, 43) == 2
        _set_budget(database, 43, None)
        clock.now += 10
        assert _immediate(limiter, 43) == 5
