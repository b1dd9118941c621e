"""What the resilience tests share: a fresh PostgreSQL database, the service as a uvicorn subprocess,
and a sender that posts signed Zoom deliveries the way Zoom does and records every answer."""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.pool import NullPool

from app.db import make_engine
from app.ingest.zoom_events import inbox_row, parse_envelope
from app.migrations import upgrade_to_head
from app.sandbox.zoom_webhooks import make_delivery
from bench._common import UvicornProcess, start_uvicorn
from tests.conftest import ACCOUNT_ID, ADMIN_TOKEN, PORTAL_ID, ZOOM_SECRET

WEBHOOK_PATH = "/webhooks/zoom"
# uvicorn's own budget for in-flight requests after SIGTERM; `app/server.py` uses the same.
GRACEFUL_S = 10


@contextlib.contextmanager
def fresh_pg_database(server_url: str) -> Iterator[str]:
    """A migrated database of its own on the test PostgreSQL server, dropped afterwards (open
    connections included)."""
    name = f"zh_resil_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    try:
        engine = make_engine(url, pool_size=1)
        try:
            upgrade_to_head(engine, url)
        finally:
            engine.dispose()
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def with_port(url: str, port: int) -> str:
    return make_url(url).set(host="127.0.0.1", port=port).render_as_string(hide_password=False)


def watch_engine(url: str) -> Engine:
    """An engine for the test's own queries: no pool, so it holds nothing between checks."""
    return create_engine(url, poolclass=NullPool)


def service_env(database_url: str, **extra: str) -> dict[str, str]:
    """The service's environment: the env connection, no HubSpot credentials (delivery waits; the
    inbox is processed all the same), JSON logs on stderr."""
    env = {
        "DATABASE_URL": database_url,
        "RUN_WORKER": "true",
        "AUTO_MIGRATE": "false",
        "ADMIN_API_TOKEN": ADMIN_TOKEN,
        "ZOOM_WEBHOOK_SECRET_TOKEN": ZOOM_SECRET,
        "ZOOM_ACCOUNT_ID": ACCOUNT_ID,
        "HUBSPOT_PORTAL_ID": str(PORTAL_ID),
        "LOG_LEVEL": "INFO",
        "LOG_FORMAT": "json",
        "WORKER_POLL_INTERVAL_S": "0.1",
        "ZOOM_HUBSPOT_DEMO": "0",
    }
    env.update(extra)
    return env


def start_service(database_url: str, *, name: str, **extra_env: str) -> UvicornProcess:
    """`python -m uvicorn app.main:app` with a 10 s graceful shutdown, ready once /readyz says so."""
    return start_uvicorn(
        "app.main:app",
        name=name,
        env=service_env(database_url, **extra_env),
        extra_args=["--timeout-graceful-shutdown", str(GRACEFUL_S)],
        unset_env=[k for k in os.environ if k.startswith(("ZOOM_", "HUBSPOT_"))],
    )


def delivery_key(body: bytes) -> str:
    """The key the service stores a delivery under (what makes a retry a duplicate)."""
    return str(inbox_row(parse_envelope(body), body, datetime.now(UTC))["delivery_key"])


def inbox_keys(engine: Engine) -> dict[str, str]:
    """delivery_key -> state of every stored delivery."""
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT delivery_key, state FROM inbox_event")).all()
    return {str(k): str(s) for k, s in rows}


def inbox_states(engine: Engine) -> Counter[str]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT state, count(*) FROM inbox_event GROUP BY state")).all()
    return Counter({str(s): int(n) for s, n in rows})


def wait_until(condition: Any, what: str, timeout: float, interval: float = 0.1) -> float:
    """Poll `condition` until true; returns the seconds it took. A safety net, not a measurement."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
    return time.monotonic() - started


# --------------------------------------------------------------------------------------------------
# The sender
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Answer:
    key: str
    sent_at: float  # time.monotonic()
    answered_at: float
    status: int | None  # None: no HTTP answer (connection refused, reset, timeout)
    body: bytes = b""
    error: str | None = None
    retry_after: str | None = None


class Sender:
    """Threads that post signed deliveries of `envelopes`, each once, as fast as `interval_s` per
    thread allows, and record every answer. `resend_failed()` plays Zoom's retries afterwards."""

    def __init__(
        self,
        base_url: str,
        envelopes: Sequence[Mapping[str, Any]],
        *,
        threads: int = 4,
        interval_s: float = 0.05,
        timeout_s: float = 30.0,
    ) -> None:
        self.base_url = base_url
        self.threads = threads
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.answers: list[Answer] = []
        self.bodies: dict[str, Mapping[str, Any]] = {}
        self._todo: queue.SimpleQueue[Mapping[str, Any]] = queue.SimpleQueue()
        for envelope in envelopes:
            self._todo.put(envelope)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []

    def start(self) -> None:
        for i in range(self.threads):
            worker = threading.Thread(target=self._run, name=f"sender-{i}", daemon=True)
            worker.start()
            self._workers.append(worker)

    def stop(self) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(self.timeout_s + 5)
        assert not any(w.is_alive() for w in self._workers), "a sender thread is still waiting"

    def _run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=self.timeout_s) as client:
            while not self._stop.is_set():
                try:
                    envelope = self._todo.get_nowait()
                except queue.Empty:
                    return
                self.post(client, envelope)
                self._stop.wait(self.interval_s)

    def post(self, client: httpx.Client, envelope: Mapping[str, Any]) -> Answer:
        delivery = make_delivery(ZOOM_SECRET, envelope)  # signed now, as Zoom signs each attempt
        key = delivery_key(delivery.body)
        sent = time.monotonic()
        try:
            response = client.post(WEBHOOK_PATH, content=delivery.body, headers=delivery.headers)
            answer = Answer(
                key,
                sent,
                time.monotonic(),
                response.status_code,
                response.content,
                retry_after=response.headers.get("retry-after"),
            )
        except httpx.HTTPError as exc:
            answer = Answer(key, sent, time.monotonic(), None, error=type(exc).__name__)
        with self._lock:
            self.answers.append(answer)
            self.bodies[key] = envelope
        return answer

    def accepted_keys(self) -> set[str]:
        return {a.key for a in self.answers if a.status == 200}

    def resend_failed(self, timeout: float) -> int:
        """Send every delivery that never got a 200 again (Zoom retries anything else), from all
        threads, until each has one; returns how many were sent again."""
        deadline = time.monotonic() + timeout
        resent = 0
        while missing := sorted(set(self.bodies) - self.accepted_keys()):
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(missing)} deliveries never answered 200")
            parts = [missing[i :: self.threads] for i in range(self.threads)]
            workers = [threading.Thread(target=self._resend, args=(part,), daemon=True) for part in parts]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join(self.timeout_s * len(missing))
            resent += len(missing)
        return resent

    def _resend(self, keys: Sequence[str]) -> None:
        with httpx.Client(base_url=self.base_url, timeout=self.timeout_s) as client:
            for key in keys:
                self.post(client, self.bodies[key])


def status_counts(answers: Sequence[Answer]) -> dict[str, int]:
    counts = Counter(str(a.status) if a.status is not None else f"no answer ({a.error})" for a in answers)
    return dict(sorted(counts.items()))


def first(answers: Sequence[Answer], *, status: int, after: float) -> Answer | None:
    """The first answer with `status` answered after `after`."""
    hits = [a for a in answers if a.status == status and a.answered_at >= after]
    return min(hits, key=lambda a: a.answered_at) if hits else None
