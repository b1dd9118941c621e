"""The request gate both sandboxes share: fault switches, their updates, bearer tokens."""

from __future__ import annotations

import random

import pytest

from app.sandbox.gate import (
    INJECTED_STATUSES,
    Faults,
    FaultsUpdate,
    GateOutcome,
    apply_faults_update,
    bearer,
    injected_fault,
)


class TestInjectedFault:
    def test_none_by_default(self) -> None:
        assert injected_fault(Faults(), random.Random(0)) is None

    def test_down_wins_over_error_rate(self) -> None:
        assert injected_fault(Faults(down=True, error_rate=1.0), random.Random(0)) == (GateOutcome.DOWN, 503)

    def test_error_rate_one_always_fails_with_a_5xx(self) -> None:
        rng = random.Random(1)
        for _ in range(50):
            fault = injected_fault(Faults(error_rate=1.0), rng)
            assert fault is not None
            assert fault[0] is GateOutcome.ERROR
            assert fault[1] in INJECTED_STATUSES

    def test_same_seed_same_faults(self) -> None:
        def run() -> list[tuple[GateOutcome, int] | None]:
            rng = random.Random(7)
            return [injected_fault(Faults(error_rate=0.5), rng) for _ in range(30)]

        assert run() == run()


class TestFaultsUpdate:
    def test_only_given_fields_change(self) -> None:
        faults = Faults(error_rate=0.2, slow_ms=5, burst_429=3)
        assert apply_faults_update(faults, FaultsUpdate(down=True)) is False
        assert faults == Faults(error_rate=0.2, slow_ms=5, down=True, burst_429=3)

    def test_a_new_seed_is_reported(self) -> None:
        faults = Faults()
        assert apply_faults_update(faults, FaultsUpdate(seed=9)) is True
        assert faults.seed == 9


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (None, None),
        ("", None),
        ("Bearer abc", "abc"),
        ("bearer  abc ", "abc"),
        ("Bearer ", None),
        ("Basic abc", None),
    ],
)
def test_bearer(header: str | None, token: str | None) -> None:
    assert bearer(header) == token
