"""Durable, group-committed inbox inserts for the webhook endpoint.

Each webhook request must be stored before its 200 goes out. Committing one transaction per
request serialises every request on the database's write lock (SQLite has one writer). Here one
thread owns the writes: requests hand their row over and wait; the thread inserts everything that
has queued up meanwhile in one transaction and then answers each request. Under a burst, 32
requests cost one commit instead of 32; an idle service still commits each row at once.

When the database is away, a request gets StorageUnavailable (the endpoint answers 503, so Zoom
retries) within STORE_TIMEOUT_S at most, whatever the database does; the writer keeps trying with
each new request and says once that it fails and once that it works again.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy.engine import Engine

from app.db import database_error_text, database_unreachable, dialect_insert
from app.models import InboxEvent

log = logging.getLogger(__name__)

MAX_BATCH = 500
# Longest a request waits for its row to be stored. Zoom counts an answer later than 3 s as failed
# anyway; past this the request gets a 503 instead of holding its connection while the database
# does not answer (each database attempt itself ends within about 5 s, see app.db). A row still
# written after its request gave up is harmless: Zoom's retry is then answered "duplicate".
STORE_TIMEOUT_S = 5.0


class StoreOutcome(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"


class StorageUnavailable(RuntimeError):
    """The inbox could not be written; the delivery was not stored."""


@dataclass(slots=True)
class _Pending:
    row: dict[str, Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[StoreOutcome] = field(repr=False)


_STOP = object()


class InboxWriter:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._queue: queue.SimpleQueue[_Pending | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._failing_since: float | None = None  # monotonic time of the first failed write
        self._refused = 0  # deliveries answered 503 since then
        self._slow_warned_at = -1e9
        table = InboxEvent.__table__  # type: ignore[attr-defined]
        stmt = dialect_insert(engine, table).on_conflict_do_nothing(index_elements=["delivery_key"])
        self._insert: Any = stmt.returning(table.c.delivery_key)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="inbox-writer", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout)
            self._thread = None

    async def store(self, row: dict[str, Any]) -> StoreOutcome:
        if self._thread is None:
            raise StorageUnavailable("inbox writer is not running")
        loop = asyncio.get_running_loop()
        pending = _Pending(row=row, loop=loop, future=loop.create_future())
        self._queue.put(pending)
        # A timer rather than asyncio.wait_for: one handle per request on the hot path, no extra task.
        timer = loop.call_later(STORE_TIMEOUT_S, self._give_up, pending.future)
        try:
            return await pending.future
        finally:
            timer.cancel()

    def _give_up(self, future: asyncio.Future[StoreOutcome]) -> None:
        if future.done():
            return
        # The writer skips a row whose request has its answer already (see _write).
        future.set_exception(StorageUnavailable(f"the database did not answer within {STORE_TIMEOUT_S:g} s"))
        now = time.monotonic()
        if now - self._slow_warned_at > 10.0:
            self._slow_warned_at = now
            log.warning("inbox write did not finish within %g s; answering 503", STORE_TIMEOUT_S)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch: list[_Pending] = [first]  # type: ignore[list-item]
            stop_after = False
            while len(batch) < MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop_after = True
                    break
                batch.append(item)  # type: ignore[arg-type]
            self._write(batch)
            if stop_after:
                return

    def _write(self, batch: list[_Pending]) -> None:
        # Requests that gave up meanwhile (STORE_TIMEOUT_S) have their answer: their rows are not
        # written (the read of `done()` from this thread is a plain flag check).
        batch = [item for item in batch if not item.future.done()]
        if not batch:
            return
        # Within one batch the first copy of a key wins; later copies are duplicates.
        unique: dict[str, _Pending] = {}
        for item in batch:
            unique.setdefault(item.row["delivery_key"], item)
        try:
            with self._engine.begin() as conn:
                result = conn.execute(self._insert, [p.row for p in unique.values()])
                inserted = {row[0] for row in result}
        except Exception as exc:
            self._failed(exc, len(batch))
            error = StorageUnavailable(f"inbox write failed: {type(exc).__name__}")
            for item in batch:
                item.loop.call_soon_threadsafe(_set_exception, item.future, error)
            return
        if self._failing_since is not None:
            log.warning(
                "inbox writes work again",
                extra={
                    "failing_s": round(time.monotonic() - self._failing_since, 1),
                    "deliveries_refused": self._refused,
                },
            )
            self._failing_since = None
        for item in batch:
            key = item.row["delivery_key"]
            first = unique[key] is item
            outcome = StoreOutcome.ACCEPTED if first and key in inserted else StoreOutcome.DUPLICATE
            item.loop.call_soon_threadsafe(_set_result, item.future, outcome)

    def _failed(self, exc: Exception, count: int) -> None:
        if not database_unreachable(exc):
            log.exception("inbox write failed for %d deliveries", count)
        elif self._failing_since is None:
            # Once per outage, not once per request: during an outage every request fails alike.
            log.warning(
                "inbox write failed: database unreachable; webhooks answer 503 until it is back",
                extra={"error": database_error_text(exc)},
            )
        if self._failing_since is None:
            self._failing_since = time.monotonic()
            self._refused = 0
        self._refused += count


def _set_result(future: asyncio.Future[StoreOutcome], outcome: StoreOutcome) -> None:
    if not future.done():
        future.set_result(outcome)


def _set_exception(future: asyncio.Future[StoreOutcome], error: Exception) -> None:
    if not future.done():
        future.set_exception(error)
