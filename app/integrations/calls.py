"""One call to an outside API: its attempts, the waits between them and what the call observer hears.

Shared by the HubSpot and Zoom clients so both keep one set of rules. A client says what one attempt
is, which of its errors deserve another attempt and how long to wait (`app.integrations.retry`);
`CallRunner` runs the attempts (tenacity) and keeps the observer's bookkeeping:

* when the call ends, the observer is told once: `None` if the API answered (after any retries),
  else the error the caller gets, with the moment the call *began*;
* an attempt that got a 429 the retries may still wait out is told at once (`rate_limited`), with
  the current moment, because the wait is what a status page should show while it lasts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Generic, Protocol, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

_T = TypeVar("_T")
_E = TypeVar("_E", bound=Exception)
_E_contra = TypeVar("_E_contra", bound=Exception, contravariant=True)

Sleep = Callable[[float], Awaitable[None]]


class Observer(Protocol[_E_contra]):
    """The clients' `CallObserver`s, for any error type (app.delivery.health implements them)."""

    async def observe(self, error: _E_contra | None, began_at: datetime) -> None: ...


class CallRunner(Generic[_E]):
    """Runs one client's calls with retries and tells its observer how each went.

    `should_retry(error)`: whether a failed attempt deserves another (only `error_type` errors ever
    do; anything else propagates at once and is not observed). `wait_s(error, attempt)`: seconds to
    wait after failed attempt number `attempt` (1-based). `on_retry(error, attempt, wait)`: called
    before each wait, for the client's counters and log line.
    """

    def __init__(
        self,
        *,
        error_type: type[_E],
        max_attempts: int,
        should_retry: Callable[[_E], bool],
        wait_s: Callable[[_E, int], float],
        on_retry: Callable[[_E, int, float], None],
        sleep: Sleep,
        now: Callable[[], datetime],
        observer: Observer[_E] | None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._error_type = error_type
        self._max_attempts = max_attempts
        self._should_retry = should_retry
        self._wait_s = wait_s
        self._on_retry = on_retry
        self._sleep = sleep
        self._now = now
        self._observer = observer

    def _error_of(self, state: RetryCallState) -> _E:
        # tenacity asks for a wait or announces a sleep only after `_retries` accepted the error.
        exc = state.outcome.exception() if state.outcome is not None else None
        if not isinstance(exc, self._error_type):
            raise TypeError(f"retry state without a {self._error_type.__name__}: {exc!r}")
        return exc

    def _wait(self, state: RetryCallState) -> float:
        return self._wait_s(self._error_of(state), state.attempt_number)

    def _before_sleep(self, state: RetryCallState) -> None:
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        self._on_retry(self._error_of(state), state.attempt_number, wait)

    async def call(
        self,
        attempt: Callable[[], Awaitable[_T]],
        *,
        retry_if: Callable[[_E], bool] | None = None,
    ) -> _T:
        """Run `attempt` until it succeeds, fails for good or the attempts run out; the last error
        propagates. `retry_if` narrows `should_retry` for this one call."""

        def retries(exc: BaseException) -> bool:
            if not isinstance(exc, self._error_type) or not self._should_retry(exc):
                return False
            return retry_if is None or retry_if(exc)

        async def run() -> _T:
            # tenacity awaits only what a coroutine *function* returns; `attempt` may be a lambda.
            return await attempt()

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._max_attempts),
            wait=self._wait,
            retry=retry_if_exception(retries),
            sleep=self._sleep,
            before_sleep=self._before_sleep,
            reraise=True,
        )
        began_at = self._now()
        try:
            result: _T = await retrying(run)
        except self._error_type as exc:
            if self._observer is not None:
                await self._observer.observe(exc, began_at)
            raise
        if self._observer is not None:
            await self._observer.observe(None, began_at)
        return result

    async def rate_limited(self, error: _E) -> None:
        """One attempt got a 429 (raised next; the retries may wait it out): tell the observer now."""
        if self._observer is not None:
            await self._observer.observe(error, self._now())
