"""The workflow action's time budget, leases and retry limits."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ActionConfig:
    # HubSpot waits for the answer: past this budget the answer is BLOCK (target p99 <= 1 s; the
    # rest is for the database writes around the Zoom call).
    sync_budget_s: float = 0.6
    lease_s: float = 60.0
    max_attempts: int = 30
    retry_base_s: float = 2.0
    retry_max_s: float = 300.0
    batch_size: int = 100
    concurrency: int = 10
    callback_max_attempts: int = 10
