"""The request gate both sandboxes put in front of their API: injected faults, statistics, and the
ASGI middleware that applies them.

Each sandbox keeps what is its own (auth, rate limits, error bodies in its vendor's shape) behind a
:class:`Ticket`; what is the same for both lives here once: the fault switches (``down``,
``error_rate``, ``slow_ms``, ``burst_429``, ``seed``) and how they are updated, the request and
status counters, and the order of things: count the request, wait ``slow_ms``, decide under the
sandbox lock, then answer the refusal or let the handler answer with the gate's headers added.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

JSON = dict[str, Any]

# What an injected server error may be; a proxy in front of a real API answers any of these.
INJECTED_STATUSES = (500, 502, 503)


class GateOutcome(StrEnum):
    OK = "ok"
    DOWN = "down"
    ERROR = "error"
    UNAUTHORIZED = "unauthorized"
    BURST = "burst"
    THROTTLED = "throttled"


@dataclass
class Faults:
    """Injected failures, applied by the request gate before anything else happens."""

    error_rate: float = 0.0
    slow_ms: int = 0
    down: bool = False
    burst_429: int = 0
    seed: int = 0

    def to_json(self) -> JSON:
        return {
            "error_rate": self.error_rate,
            "slow_ms": self.slow_ms,
            "down": self.down,
            "burst_429": self.burst_429,
            "seed": self.seed,
        }


class FaultsUpdate(BaseModel):
    """``POST /_sandbox/faults``: the fields given change, the others stay."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    error_rate: float | None = Field(default=None, ge=0.0, le=1.0)
    slow_ms: int | None = Field(default=None, ge=0)
    down: bool | None = None
    burst_429: int | None = Field(default=None, ge=0)
    seed: int | None = None


def apply_faults_update(faults: Faults, update: FaultsUpdate) -> bool:
    """Sets the switches `update` names; True when the seed changed (the fault RNG starts over)."""
    if update.error_rate is not None:
        faults.error_rate = update.error_rate
    if update.slow_ms is not None:
        faults.slow_ms = update.slow_ms
    if update.down is not None:
        faults.down = update.down
    if update.burst_429 is not None:
        faults.burst_429 = update.burst_429
    if update.seed is not None:
        faults.seed = update.seed
        return True
    return False


def injected_fault(faults: Faults, rng: random.Random) -> tuple[GateOutcome, int] | None:
    """``down`` (503), else a random 500/502/503 at ``error_rate``, else None (no fault)."""
    if faults.down:
        return GateOutcome.DOWN, 503
    if faults.error_rate > 0 and rng.random() < faults.error_rate:
        return GateOutcome.ERROR, rng.choice(INJECTED_STATUSES)
    return None


@dataclass
class RequestStats:
    """Request counters: ``requests`` keyed ``"METHOD /path/template"``, ``statuses`` by status code."""

    requests: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    faults: int = 0
    unauthorized: int = 0

    @property
    def total(self) -> int:
        return sum(self.requests.values())

    def to_json(self) -> JSON:
        return {
            "total": self.total,
            "requests": dict(sorted(self.requests.items())),
            "statuses": dict(sorted(self.statuses.items())),
            "faults": self.faults,
            "unauthorized": self.unauthorized,
        }


def bearer(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` value, else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def scope_header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


class Ticket(Protocol):
    """One request's way through the gate, as its sandbox judges it."""

    def admit(self) -> Response | None:
        """Called under the sandbox lock: the refusal to answer, or None to let the request in."""

    def headers(self) -> Sequence[tuple[str, str]]:
        """Headers an admitted answer carries (added where the handler did not set them)."""

    def record_status(self, status_code: int) -> None: ...

    def lose_answer(self, status_code: int) -> Response | None:
        """After the handler applied the request: what answers instead when its answer is lost."""


class Gated(Protocol):
    """What the gate needs of a sandbox."""

    @property
    def lock(self) -> asyncio.Lock: ...

    @property
    def faults(self) -> Faults: ...


class RequestGate:
    """Pure ASGI middleware in front of a sandbox's guarded routes.

    `guards(path)` picks the requests it sees (never the control API); `open_ticket(scope, route)`
    counts one request to ``"METHOD /path/template"`` and returns how its sandbox judges it.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        sandbox: Gated,
        routes: Sequence[BaseRoute],
        guards: Callable[[str], bool],
        open_ticket: Callable[[Scope, str], Ticket],
    ) -> None:
        self.app = app
        self.sandbox = sandbox
        self.routes = list(routes)
        self.guards = guards
        self.open_ticket = open_ticket

    def _template(self, scope: Scope) -> str:
        """The matched route's path template (``/v2/webinars/{webinar_id}``), else the raw path."""
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return str(getattr(route, "path", scope["path"]))
        return str(scope["path"])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.guards(str(scope.get("path", ""))):
            await self.app(scope, receive, send)
            return
        ticket = self.open_ticket(scope, f"{scope['method']} {self._template(scope)}")
        if self.sandbox.faults.slow_ms > 0:
            await asyncio.sleep(self.sandbox.faults.slow_ms / 1000)
        async with self.sandbox.lock:
            refusal = ticket.admit()
        if refusal is not None:
            ticket.record_status(refusal.status_code)
            await refusal(scope, receive, send)
            return
        extra = [(name.lower().encode(), value.encode()) for name, value in ticket.headers()]
        lost: Response | None = None

        async def send_through(message: Message) -> None:
            nonlocal lost
            if message["type"] == "http.response.start":
                status = int(message["status"])
                lost = ticket.lose_answer(status)
                if lost is not None:
                    return
                ticket.record_status(status)
                headers = list(message.get("headers", ()))
                present = {bytes(name).lower() for name, _ in headers}
                missing = [(name, value) for name, value in extra if name not in present]
                if missing:
                    message = {**message, "headers": [*headers, *missing]}
            elif lost is not None:
                return
            await send(message)

        await self.app(scope, receive, send_through)
        if lost is not None:
            ticket.record_status(lost.status_code)
            await lost(scope, receive, send)
