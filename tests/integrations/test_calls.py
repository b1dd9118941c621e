"""CallRunner, the attempts and observer bookkeeping both REST clients share, on its own."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest

from app.integrations.calls import CallRunner

pytestmark = pytest.mark.anyio

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


class ApiError(Exception):
    def __init__(self, name: str, *, retryable: bool = True) -> None:
        super().__init__(name)
        self.retryable = retryable


class Recorder:
    """Observer, sleep, clock and retry hook in one: everything the runner tells the outside."""

    def __init__(self) -> None:
        self.observed: list[tuple[ApiError | None, datetime]] = []
        self.slept: list[float] = []
        self.retried: list[tuple[str, int, float]] = []
        self.ticks = 0

    async def observe(self, error: ApiError | None, began_at: datetime) -> None:
        self.observed.append((error, began_at))

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)

    def now(self) -> datetime:
        self.ticks += 1
        return T0 + timedelta(seconds=self.ticks - 1)

    def on_retry(self, error: ApiError, attempt: int, wait: float) -> None:
        self.retried.append((str(error), attempt, wait))


def runner(recorder: Recorder, *, max_attempts: int = 3, observed: bool = True) -> CallRunner[ApiError]:
    return CallRunner(
        error_type=ApiError,
        max_attempts=max_attempts,
        should_retry=lambda exc: exc.retryable,
        wait_s=lambda exc, attempt: 10.0 * attempt,
        on_retry=recorder.on_retry,
        sleep=recorder.sleep,
        now=recorder.now,
        observer=recorder if observed else None,
    )


def scripted(*outcomes: ApiError | Exception | str) -> tuple[Callable[[], Awaitable[str]], list[int]]:
    """An attempt that raises or returns the next outcome each time; the list counts the attempts."""
    calls: list[int] = []

    async def attempt() -> str:
        calls.append(len(calls) + 1)
        outcome = outcomes[len(calls) - 1]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    return attempt, calls


async def test_retries_then_success_tells_the_observer_once_without_error() -> None:
    recorder = Recorder()
    attempt, calls = scripted(ApiError("first"), ApiError("second"), "answer")
    assert await runner(recorder).call(attempt) == "answer"
    assert calls == [1, 2, 3]
    assert recorder.observed == [(None, T0)]  # once, with the moment the call began
    assert recorder.slept == [10.0, 20.0]
    assert recorder.retried == [("first", 1, 10.0), ("second", 2, 20.0)]


async def test_an_attempt_given_as_a_lambda_is_awaited() -> None:
    # The clients pass `lambda: self._attempt(...)`: a plain function that returns a coroutine.
    recorder = Recorder()
    attempt, calls = scripted(ApiError("first"), "answer")
    assert await runner(recorder).call(lambda: attempt()) == "answer"
    assert calls == [1, 2]


async def test_final_failure_tells_the_observer_the_last_error() -> None:
    recorder = Recorder()
    last = ApiError("third")
    attempt, calls = scripted(ApiError("first"), ApiError("second"), last)
    with pytest.raises(ApiError) as info:
        await runner(recorder).call(attempt)
    assert info.value is last
    assert calls == [1, 2, 3]
    assert recorder.observed == [(last, T0)]
    assert recorder.slept == [10.0, 20.0]  # no wait after the last attempt


async def test_an_error_not_worth_retrying_ends_the_call_at_once() -> None:
    recorder = Recorder()
    refused = ApiError("refused", retryable=False)
    attempt, calls = scripted(refused)
    with pytest.raises(ApiError):
        await runner(recorder).call(attempt)
    assert calls == [1]
    assert recorder.observed == [(refused, T0)]
    assert recorder.slept == [] and recorder.retried == []


async def test_retry_if_narrows_the_policy_for_one_call() -> None:
    recorder = Recorder()
    attempt, calls = scripted(ApiError("maybe applied"), "unused")
    with pytest.raises(ApiError):
        await runner(recorder).call(attempt, retry_if=lambda exc: str(exc) != "maybe applied")
    assert calls == [1]
    attempt, calls = scripted(ApiError("never sent"), "answer")
    assert await runner(recorder).call(attempt, retry_if=lambda exc: str(exc) == "never sent") == "answer"
    assert calls == [1, 2]


async def test_other_exceptions_are_neither_retried_nor_observed() -> None:
    recorder = Recorder()
    attempt, calls = scripted(KeyError("bug"), "unused")
    with pytest.raises(KeyError):
        await runner(recorder).call(attempt)
    assert calls == [1]
    assert recorder.observed == []


async def test_rate_limited_is_told_at_once_with_the_current_moment() -> None:
    recorder = Recorder()
    calls_runner = runner(recorder)
    limited = ApiError("429")

    async def attempt() -> str:
        if not recorder.observed:
            await calls_runner.rate_limited(limited)
            raise limited
        return "answer"

    assert await calls_runner.call(attempt) == "answer"
    assert recorder.observed == [(limited, T0 + timedelta(seconds=1)), (None, T0)]


async def test_without_an_observer_nothing_is_told() -> None:
    recorder = Recorder()
    calls_runner = runner(recorder, observed=False)
    attempt, _ = scripted(ApiError("first"), "answer")
    assert await calls_runner.call(attempt) == "answer"
    await calls_runner.rate_limited(ApiError("429"))
    assert recorder.observed == []


def test_at_least_one_attempt() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        runner(Recorder(), max_attempts=0)
