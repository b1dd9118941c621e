"""The completer (in the worker): executes due blocked executions with the patient Zoom client,
then sends finished results of blocked executions to HubSpot's callbacks API."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from app.actions.callbacks import CallbackSender
from app.actions.config import ActionConfig
from app.actions.execution_store import ExecutionStore, request_from_row
from app.actions.executor import Executed, RetryLater, WebinarFactsCache, ZoomFor, execute
from app.actions.rules import ActionCode, ActionFailure
from app.models import ActionExecution

# The log lines keep the logger name they had before the service was split (a log field).
log = logging.getLogger("app.actions.service")


@dataclass
class CompleterRound:
    executed: int = 0
    completed: int = 0
    retried: int = 0
    callbacks_sent: int = 0
    callbacks_failed: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def busy(self) -> bool:
        return bool(self.executed or self.callbacks_sent)


class Completer:
    def __init__(
        self,
        store: ExecutionStore,
        callbacks: CallbackSender,
        *,
        zoom_for: ZoomFor,
        cache: WebinarFactsCache,
        config: ActionConfig,
    ) -> None:
        self.store = store
        self.callbacks = callbacks
        self.zoom_for = zoom_for
        self.cache = cache
        self.config = config

    async def run_once(self) -> CompleterRound:
        result = CompleterRound()
        rows = await asyncio.to_thread(self.store.claim_due)
        if rows:
            semaphore = asyncio.Semaphore(self.config.concurrency)

            async def one(row: ActionExecution) -> None:
                async with semaphore:
                    await self._retry_one(row, result)

            await asyncio.gather(*(one(row) for row in rows))
        tally = await self.callbacks.send_pending()
        result.callbacks_sent += tally.sent
        result.callbacks_failed += tally.failed
        return result

    async def _retry_one(self, row: ActionExecution, result: CompleterRound) -> None:
        req = request_from_row(row)
        row_id = int(row.id or 0)
        result.executed += 1
        try:
            ctx = await asyncio.to_thread(self.store.context, req)
            zoom = self.zoom_for(ctx.zoom_account_id, False) if ctx.zoom_account_id else None
            executed = await execute(req, ctx, zoom, self.cache)
        except RetryLater as exc:
            if row.attempts >= self.config.max_attempts:
                failure = ActionFailure(
                    ActionCode.ZOOM_ERROR,
                    f"Zoom did not accept the registration after {row.attempts} attempts: {exc.reason}"[:500],
                )
                await asyncio.to_thread(
                    self.store.finish, row_id, req, row.zoom_account_id, Executed(failure)
                )
                result.completed += 1
            else:
                await asyncio.to_thread(
                    self.store.block, row_id, exc.reason, exc.retry_after_s, row.zoom_account_id
                )
                result.retried += 1
            return
        except Exception as exc:
            log.exception("blocked workflow action failed", extra={"callback_id": row.callback_id})
            result.errors.append(repr(exc))
            await asyncio.to_thread(
                self.store.block, row_id, f"internal error: {exc!r}"[:500], None, row.zoom_account_id
            )
            result.retried += 1
            return
        await asyncio.to_thread(self.store.finish, row_id, req, ctx.zoom_account_id, executed)
        result.completed += 1
