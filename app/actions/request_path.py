"""HubSpot's request: answer SUCCESS / FAIL_CONTINUE within the time budget, else BLOCK.

A new callbackId is stored (committed) before a BLOCK answer; a known one is answered from the
store, so HubSpot's retries never register twice. Zoom gets a short time budget: when it is rate
limited, down or slow the answer is BLOCK and the execution waits in the table for the completer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from app.actions.config import ActionConfig
from app.actions.execution_store import ExecutionStore
from app.actions.executor import PortalContext, RetryLater, WebinarFactsCache, ZoomFor, execute
from app.actions.rules import ActionRequest, block_output
from app.models import ActionState

# The log lines keep the logger name they had before the service was split (a log field).
log = logging.getLogger("app.actions.service")

_T = TypeVar("_T")


class RequestPath:
    def __init__(
        self,
        store: ExecutionStore,
        *,
        zoom_for: ZoomFor,
        cache: WebinarFactsCache,
        config: ActionConfig,
        executor: ThreadPoolExecutor,
    ) -> None:
        self.store = store
        self.zoom_for = zoom_for
        self.cache = cache
        self.config = config
        self._pool = executor
        self._inflight: dict[str, asyncio.Future[dict[str, str]]] = {}
        self._keep: set[str] = set()
        self._writes: set[asyncio.Task[None]] = set()

    async def handle(self, req: ActionRequest) -> dict[str, str]:
        loop = asyncio.get_running_loop()
        running = self._inflight.get(req.callback_id)
        if running is not None:
            # HubSpot retried while the first request still runs: one registration, one answer.
            return await asyncio.shield(running)
        future: asyncio.Future[dict[str, str]] = loop.create_future()
        self._inflight[req.callback_id] = future
        output = block_output()
        try:
            output = await self._handle(req, loop.time() + self.config.sync_budget_s)
        finally:
            future.set_result(output)
            # Still being recorded: the entry stays until the write is done (see _remember).
            if req.callback_id not in self._keep:
                self._inflight.pop(req.callback_id, None)
            self._keep.discard(req.callback_id)
        return output

    async def _handle(self, req: ActionRequest, deadline: float) -> dict[str, str]:
        """One database read before Zoom and one write after it: on SQLite every write waits for
        the single write lock, which the worker holds for whole batches."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        seen, ctx = await self._db(self.store.lookup, req)
        looked_up = loop.time()
        if seen is not None:
            if seen.state == ActionState.DONE:
                return dict(seen.output_fields or {})
            # Blocked earlier (or running in another process): HubSpot now waits for a callback.
            return await self._db(self.store.record_blocked, req, ctx, "HubSpot sent the request again", None)
        zoom = self.zoom_for(ctx.zoom_account_id, True) if ctx.zoom_account_id else None
        try:
            async with asyncio.timeout_at(max(deadline, loop.time() + 0.05)):
                executed = await execute(req, ctx, zoom, self.cache)
        except RetryLater as exc:
            return await self._blocked(req, ctx, exc.reason, exc.retry_after_s, started, looked_up)
        except TimeoutError:
            reason = f"Zoom did not answer within {self.config.sync_budget_s:g} s"
            return await self._blocked(req, ctx, reason, None, started, looked_up)
        except Exception as exc:
            # Never a 500 for HubSpot to retry blindly: keep it and let the completer try again.
            log.exception("workflow action failed unexpectedly", extra={"callback_id": req.callback_id})
            return await self._db(self.store.record_blocked, req, ctx, f"internal error: {exc!r}"[:500], None)
        zoomed = loop.time()
        # A final answer is recorded after it is sent: the record only serves idempotency (a crash
        # before it is harmless: HubSpot has its answer, Zoom re-answers a repeated registration
        # with the same registrant, and Zoom's own webhook brings the registration). Until it is
        # written, a repeated request gets the same answer from the in-flight map.
        self._remember(req.callback_id, self._db(self.store.record_done, req, ctx, executed))
        log.debug(
            "workflow action timing",
            extra={
                "lookup_ms": round((looked_up - started) * 1000, 1),
                "zoom_ms": round((zoomed - looked_up) * 1000, 1),
            },
        )
        return executed.outcome.output_fields()

    async def _blocked(
        self,
        req: ActionRequest,
        ctx: PortalContext,
        reason: str,
        retry_after_s: float | None,
        started: float,
        looked_up: float,
    ) -> dict[str, str]:
        # Recorded before the answer: HubSpot then waits for our callback, so it must survive a crash.
        loop = asyncio.get_running_loop()
        zoomed = loop.time()
        output = await self._db(self.store.record_blocked, req, ctx, reason, retry_after_s)
        log.debug(
            "workflow action timing",
            extra={
                "blocked": True,
                "lookup_ms": round((looked_up - started) * 1000, 1),
                "zoom_ms": round((zoomed - looked_up) * 1000, 1),
                "record_ms": round((loop.time() - zoomed) * 1000, 1),
            },
        )
        return output

    def _remember(self, callback_id: str, write: Awaitable[dict[str, str]]) -> None:
        answer = self._inflight.get(callback_id)

        async def run() -> None:
            try:
                await write
            except Exception:
                log.exception("recording a workflow action failed", extra={"callback_id": callback_id})
            finally:
                if self._inflight.get(callback_id) is answer:
                    self._inflight.pop(callback_id, None)

        task = asyncio.get_running_loop().create_task(run())
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)
        if answer is not None:
            self._keep.add(callback_id)

    def recording_now(self) -> int:
        return len(self._writes)

    async def drain(self) -> None:
        """Wait for answers still being recorded (at shutdown)."""
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)

    async def _db(self, fn: Callable[..., _T], *args: Any) -> _T:
        # Own threads (ActionResources.executor): the shared default pool is busy with worker and
        # dispatcher rounds.
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
