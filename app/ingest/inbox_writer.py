"""Durable, group-committed inbox inserts for the webhook endpoint.

Each webhook request must be stored before its 200 goes out. Committing one transaction per
request serialises every request on the database's write lock (SQLite has one writer). Here one
thread owns the writes: requests hand their row over and wait; the thread inserts everything that
has queued up meanwhile in one transaction and then answers each request. Under a burst, 32
requests cost one commit instead of 32; an idle service still commits each row at once.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy import insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine

from app.models import InboxEvent

log = logging.getLogger(__name__)

MAX_BATCH = 500


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
        table = InboxEvent.__table__  # type: ignore[attr-defined]
        dialect = engine.dialect.name
        if dialect == "sqlite":
            stmt: Any = sqlite_insert(table).on_conflict_do_nothing(index_elements=["delivery_key"])
        elif dialect == "postgresql":
            stmt = pg_insert(table).on_conflict_do_nothing(index_elements=["delivery_key"])
        else:  # pragma: no cover - only the two supported databases are used
            stmt = insert(table)
        self._insert = stmt.returning(table.c.delivery_key)

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
        return await pending.future

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
        # Within one batch the first copy of a key wins; later copies are duplicates.
        unique: dict[str, _Pending] = {}
        for item in batch:
            unique.setdefault(item.row["delivery_key"], item)
        try:
            with self._engine.begin() as conn:
                result = conn.execute(self._insert, [p.row for p in unique.values()])
                inserted = {row[0] for row in result}
        except Exception as exc:
            log.exception("inbox write failed for %d deliveries", len(batch))
            error = StorageUnavailable(f"inbox write failed: {type(exc).__name__}")
            for item in batch:
                item.loop.call_soon_threadsafe(_set_exception, item.future, error)
            return
        for item in batch:
            key = item.row["delivery_key"]
            first = unique[key] is item
            outcome = StoreOutcome.ACCEPTED if first and key in inserted else StoreOutcome.DUPLICATE
            item.loop.call_soon_threadsafe(_set_result, item.future, outcome)


def _set_result(future: asyncio.Future[StoreOutcome], outcome: StoreOutcome) -> None:
    if not future.done():
        future.set_result(outcome)


def _set_exception(future: asyncio.Future[StoreOutcome], error: Exception) -> None:
    if not future.done():
        future.set_exception(error)
