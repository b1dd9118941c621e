"""Wake-ups of the background loops come from other threads too (the workflow action's database
threads, the admin API's sync endpoints); they must wake a loop idling on its event."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable

from app.worker.runner import threadsafe_wake

# Nothing else is scheduled on the loop while it waits: only the wake-up can end the wait sooner.
IDLE_S = 30.0


def _idle_wait_after_wake_from_thread(make_wake: str) -> float:
    async def scenario() -> float:
        event = asyncio.Event()
        wake = threadsafe_wake(event) if make_wake == "threadsafe" else event.set
        began = time.monotonic()
        threading.Timer(0.05, wake).start()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), IDLE_S)
        return time.monotonic() - began

    return asyncio.run(scenario())


def test_a_wake_from_another_thread_ends_the_idle_wait() -> None:
    waited = _idle_wait_after_wake_from_thread("threadsafe")
    # Ended by the wake-up, not by the idle timeout (the only other thing that could end it).
    assert waited < IDLE_S / 2


def test_a_wake_in_the_loop_thread_sets_the_event_at_once() -> None:
    async def scenario() -> bool:
        event = asyncio.Event()
        threadsafe_wake(event)()
        return event.is_set()

    assert asyncio.run(scenario())


def test_a_wake_after_the_loop_closed_is_ignored() -> None:
    async def make() -> Callable[[], None]:
        return threadsafe_wake(asyncio.Event())

    wake = asyncio.run(make())
    done = threading.Event()

    def call() -> None:
        wake()
        done.set()

    thread = threading.Thread(target=call)
    thread.start()
    thread.join(5)
    assert done.is_set()
