"""The workflow action's lifecycle: claim by callbackId, execute, answer or BLOCK, complete later.

* `handle()` serves one HubSpot request. A new callbackId is stored (committed) before Zoom is
  called; a known one is answered from the store, so HubSpot's retries never register twice.
  Zoom gets a short time budget: when it is rate limited, down or slow the answer is BLOCK and
  the execution waits in the table for the completer.
* `run_once()` (the completer, in the worker) executes due blocked executions with the patient
  Zoom client, and sends finished results of blocked executions to HubSpot's callbacks API in
  batches of at most 100.
* A success also enters the local model: a `webinar.registration_created` event made from Zoom's
  answer goes into the inbox, and the normal pipeline refreshes the contact's P2/P3.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy import or_, select, update
from sqlmodel import Session, col

from app.actions.executor import (
    Executed,
    PortalContext,
    RetryLater,
    WebinarFactsCache,
    ZoomActionApi,
    execute,
)
from app.actions.resources import ActionResources
from app.actions.rules import (
    ActionCode,
    ActionFailure,
    ActionRequest,
    ActionSuccess,
    block_output,
)
from app.db import dialect_insert, unit_of_work, utcnow
from app.ingest.synthetic import envelope, store_envelopes
from app.integrations.hubspot import HubSpotClient, HubSpotError
from app.integrations.hubspot.client import BATCH_LIMIT
from app.integrations.hubspot.models import CallbackCompletion
from app.integrations.zoom.models import ZoomWebinar
from app.models import ActionExecution, ActionState, CallbackState, Connection, PortalSettings

log = logging.getLogger(__name__)

ZoomFor = Callable[[str, bool], ZoomActionApi | None]
HubSpotFor = Callable[[int], HubSpotClient | None]


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


_T = TypeVar("_T")


def _request_json(req: ActionRequest) -> dict[str, Any]:
    return {"properties": req.properties, "webinar_id_input": req.webinar_id_input}


def _request_from_row(row: ActionExecution) -> ActionRequest:
    data = row.request or {}
    return ActionRequest(
        callback_id=row.callback_id,
        portal_id=row.portal_id,
        object_id=row.object_id,
        properties={str(k): str(v) for k, v in (data.get("properties") or {}).items()},
        webinar_id_input=data.get("webinar_id_input"),
    )


def _registration_object(webinar: ZoomWebinar, success: ActionSuccess, executed: Executed) -> dict[str, Any]:
    contact = executed.contact
    assert contact is not None
    obj: dict[str, Any] = {
        "id": int(webinar.id) if webinar.id.isdigit() else webinar.id,
        "uuid": webinar.uuid,
        "host_id": webinar.host_id,
        "topic": webinar.topic,
        "type": webinar.type,
        "start_time": webinar.start_time.isoformat().replace("+00:00", "Z") if webinar.start_time else None,
        "duration": webinar.duration,
        "timezone": webinar.timezone,
        "join_url": webinar.join_url,
        "registration_url": webinar.registration_url,
        "registrant": {
            "id": success.registrant_id,
            "email": contact.email,
            "first_name": contact.first_name,
            "last_name": contact.last_name,
            # Manual approval (1) leaves a new registrant pending at Zoom.
            "status": "pending" if webinar.settings.approval_type == 1 else "approved",
            "join_url": success.join_url,
        },
    }
    return {k: v for k, v in obj.items() if v is not None}


class ActionService:
    def __init__(
        self,
        resources: ActionResources,
        *,
        zoom_for: ZoomFor,
        hubspot_for: HubSpotFor | None = None,
        config: ActionConfig | None = None,
        on_registered: Callable[[], None] | None = None,
    ) -> None:
        # Built and closed by the entry points (app/actions/resources.py says why SQLite gets
        # engines of its own).
        self.engine = resources.engine
        self.read_engine = resources.read_engine
        self._pool = resources.executor
        self.zoom_for = zoom_for
        self.hubspot_for = hubspot_for
        self.config = config or ActionConfig()
        self.on_registered = on_registered
        self.cache = WebinarFactsCache()
        self._inflight: dict[str, asyncio.Future[dict[str, str]]] = {}
        self._keep: set[str] = set()
        self._writes: set[asyncio.Task[None]] = set()
        self._insert: Any = dialect_insert(self.engine, ActionExecution.__table__)  # type: ignore[attr-defined]

    # --- the request path -----------------------------------------------------------------------

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
        seen, ctx = await self._db(self._lookup, req)
        looked_up = loop.time()
        if seen is not None:
            if seen.state == ActionState.DONE.value:
                return dict(seen.output_fields or {})
            # Blocked earlier (or running in another process): HubSpot now waits for a callback.
            return await self._db(self._record_blocked, req, ctx, "HubSpot sent the request again", None)
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
            return await self._db(self._record_blocked, req, ctx, f"internal error: {exc!r}"[:500], None)
        zoomed = loop.time()
        # A final answer is recorded after it is sent: the record only serves idempotency (a crash
        # before it is harmless: HubSpot has its answer, Zoom re-answers a repeated registration
        # with the same registrant, and Zoom's own webhook brings the registration). Until it is
        # written, a repeated request gets the same answer from the in-flight map.
        self._remember(req.callback_id, self._db(self._record_done, req, ctx, executed))
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
        output = await self._db(self._record_blocked, req, ctx, reason, retry_after_s)
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

    def _lookup(self, req: ActionRequest) -> tuple[ActionExecution | None, PortalContext]:
        with Session(self.read_engine, expire_on_commit=False) as session:
            seen = session.execute(
                select(ActionExecution).where(col(ActionExecution.callback_id) == req.callback_id)
            ).scalar_one_or_none()
            return seen, self._context_in(session, req.portal_id)

    def _new_row(self, req: ActionRequest, ctx: PortalContext, **values: Any) -> dict[str, Any]:
        now = utcnow()
        row: dict[str, Any] = {
            "callback_id": req.callback_id,
            "portal_id": req.portal_id,
            "zoom_account_id": ctx.zoom_account_id,
            "object_id": req.object_id[:64],
            "request": _request_json(req),
            "callback_state": CallbackState.NONE.value,
            "attempts": 1,
            "callback_attempts": 0,
            "created_at": now,
        }
        row.update(values)
        return row

    def _insert_row(self, session: Any, row: dict[str, Any]) -> bool:
        stmt = self._insert.values(**row).on_conflict_do_nothing(index_elements=["callback_id"])
        return session.execute(stmt.returning(col(ActionExecution.id))).scalar_one_or_none() is not None

    def _record_blocked(
        self, req: ActionRequest, ctx: PortalContext, reason: str, retry_after_s: float | None
    ) -> dict[str, str]:
        delay = retry_after_s if retry_after_s is not None else self.config.retry_base_s
        row = self._new_row(
            req,
            ctx,
            state=ActionState.BLOCKED.value,
            callback_state=CallbackState.PENDING.value,
            next_attempt_at=utcnow() + timedelta(seconds=min(delay, self.config.retry_max_s)),
            last_error=reason[:2000],
        )
        with unit_of_work(self.engine) as session:
            if self._insert_row(session, row):
                return block_output()
            existing = self._existing(session, req.callback_id)
            if existing.state == ActionState.DONE.value:
                return dict(existing.output_fields or {})
            if existing.callback_state == CallbackState.NONE.value:
                existing.callback_state = CallbackState.PENDING.value
            return block_output()

    @staticmethod
    def _existing(session: Any, callback_id: str) -> ActionExecution:
        found: ActionExecution = session.execute(
            select(ActionExecution).where(col(ActionExecution.callback_id) == callback_id).with_for_update()
        ).scalar_one()
        return found

    def _record_done(self, req: ActionRequest, ctx: PortalContext, executed: Executed) -> dict[str, str]:
        outcome = executed.outcome
        output = outcome.output_fields()
        row = self._new_row(
            req,
            ctx,
            state=ActionState.DONE.value,
            output_fields=output,
            completed_at=utcnow(),
            webinar_id=executed.webinar.id[:32] if executed.webinar is not None else None,
            last_error=f"{outcome.code.value}: {outcome.message}"[:2000]
            if isinstance(outcome, ActionFailure)
            else None,
        )
        with unit_of_work(self.engine) as session:
            if not self._insert_row(session, row):
                # Another process recorded this execution meanwhile (it blocked): ours completes it.
                existing = self._existing(session, req.callback_id)
                if existing.state == ActionState.DONE.value:
                    return dict(existing.output_fields or {})
                existing.state = ActionState.DONE.value
                existing.output_fields = output
                existing.completed_at = utcnow()
                existing.locked_until = None
            self._registered(session, ctx.zoom_account_id, executed)
        self._log_finished(req, output)
        if isinstance(outcome, ActionSuccess) and self.on_registered is not None:
            self.on_registered()
        return output

    @staticmethod
    def _registered(session: Any, account_id: str | None, executed: Executed) -> None:
        """A success enters the local model as Zoom's own registration event would."""
        outcome = executed.outcome
        if isinstance(outcome, ActionSuccess) and executed.webinar is not None and account_id:
            obj = _registration_object(executed.webinar, outcome, executed)
            event_ts = int(time.time() * 1000)
            store_envelopes(
                session,
                [envelope("webinar.registration_created", event_ts, account_id, obj, source="action")],
            )

    @staticmethod
    def _log_finished(req: ActionRequest, output: dict[str, str]) -> None:
        log.info(
            "workflow action finished",
            extra={
                "callback_id": req.callback_id,
                "portal_id": req.portal_id,
                "state": output.get("hs_execution_state"),
                "error_code": output.get("error_code"),
            },
        )

    async def _db(self, fn: Callable[..., _T], *args: Any) -> _T:
        # Own threads: the shared default pool is busy with worker and dispatcher rounds, and a
        # request waiting for a free thread there waited longer than for the database itself.
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def _context(self, portal_id: int) -> PortalContext:
        with unit_of_work(self.engine) as session:
            return self._context_in(session, portal_id)

    @staticmethod
    def _context_in(session: Any, portal_id: int) -> PortalContext:
        connections = (
            session.execute(select(Connection).where(col(Connection.portal_id) == portal_id)).scalars().all()
        )
        primary = next((c for c in connections if c.is_primary and c.business_unit_id == 0), None)
        settings = session.get(PortalSettings, portal_id)
        return PortalContext(
            zoom_account_id=primary.zoom_account_id if primary else None,
            global_sync_enabled=settings.global_sync_enabled if settings else True,
        )

    def _block(self, row_id: int, reason: str, retry_after_s: float | None, account_id: str | None) -> None:
        with unit_of_work(self.engine) as session:
            row = session.get(ActionExecution, row_id, with_for_update=True)
            if row is None or row.state == ActionState.DONE.value:
                return
            delay = retry_after_s if retry_after_s is not None else self._backoff(row.attempts)
            row.state = ActionState.BLOCKED.value
            row.zoom_account_id = account_id
            if row.callback_state == CallbackState.NONE.value:
                row.callback_state = CallbackState.PENDING.value
            row.next_attempt_at = utcnow() + timedelta(seconds=min(delay, self.config.retry_max_s))
            row.locked_until = None
            row.last_error = reason[:2000]

    def _backoff(self, attempts: int) -> float:
        return float(min(self.config.retry_base_s * 2 ** max(attempts - 1, 0), self.config.retry_max_s))

    def _finish(self, row_id: int, req: ActionRequest, account_id: str | None, executed: Executed) -> None:
        """The completer's end of a blocked execution."""
        outcome = executed.outcome
        output = outcome.output_fields()
        with unit_of_work(self.engine) as session:
            row = session.get(ActionExecution, row_id, with_for_update=True)
            if row is None or row.state == ActionState.DONE.value:
                return
            row.state = ActionState.DONE.value
            row.output_fields = output
            row.zoom_account_id = account_id
            row.completed_at = utcnow()
            row.locked_until = None
            row.next_attempt_at = None
            if executed.webinar is not None:
                row.webinar_id = executed.webinar.id[:32]
            if isinstance(outcome, ActionFailure):
                row.last_error = f"{outcome.code.value}: {outcome.message}"[:2000]
            self._registered(session, account_id, executed)
        self._log_finished(req, output)
        if isinstance(outcome, ActionSuccess) and self.on_registered is not None:
            self.on_registered()

    # --- the completer --------------------------------------------------------------------------

    async def run_once(self) -> CompleterRound:
        result = CompleterRound()
        rows = await asyncio.to_thread(self._claim_due)
        if rows:
            semaphore = asyncio.Semaphore(self.config.concurrency)

            async def one(row: ActionExecution) -> None:
                async with semaphore:
                    await self._retry_one(row, result)

            await asyncio.gather(*(one(row) for row in rows))
        await self._send_callbacks(result)
        return result

    def _claim_due(self) -> list[ActionExecution]:
        now = utcnow()
        with unit_of_work(self.engine) as session:
            stmt = (
                select(ActionExecution)
                .where(
                    col(ActionExecution.state) != ActionState.DONE.value,
                    or_(
                        col(ActionExecution.locked_until).is_(None),
                        col(ActionExecution.locked_until) < now,
                    ),
                    or_(
                        col(ActionExecution.next_attempt_at).is_(None),
                        col(ActionExecution.next_attempt_at) <= now,
                    ),
                )
                .order_by(col(ActionExecution.next_attempt_at), col(ActionExecution.id))
                .limit(self.config.batch_size)
            )
            if session.get_bind().dialect.name == "postgresql":
                stmt = stmt.with_for_update(skip_locked=True)
            rows = list(session.execute(stmt).scalars().all())
            for row in rows:
                row.locked_until = now + timedelta(seconds=self.config.lease_s)
                row.attempts += 1
            return rows

    async def _retry_one(self, row: ActionExecution, result: CompleterRound) -> None:
        req = _request_from_row(row)
        result.executed += 1
        try:
            ctx = await asyncio.to_thread(self._context, req.portal_id)
            zoom = self.zoom_for(ctx.zoom_account_id, False) if ctx.zoom_account_id else None
            executed = await execute(req, ctx, zoom, self.cache)
        except RetryLater as exc:
            if row.attempts >= self.config.max_attempts:
                failure = ActionFailure(
                    ActionCode.ZOOM_ERROR,
                    f"Zoom did not accept the registration after {row.attempts} attempts: {exc.reason}"[:500],
                )
                await asyncio.to_thread(
                    self._finish, int(row.id or 0), req, row.zoom_account_id, Executed(failure)
                )
                result.completed += 1
            else:
                await asyncio.to_thread(
                    self._block, int(row.id or 0), exc.reason, exc.retry_after_s, row.zoom_account_id
                )
                result.retried += 1
            return
        except Exception as exc:
            log.exception("blocked workflow action failed", extra={"callback_id": row.callback_id})
            result.errors.append(repr(exc))
            await asyncio.to_thread(
                self._block, int(row.id or 0), f"internal error: {exc!r}"[:500], None, row.zoom_account_id
            )
            result.retried += 1
            return
        await asyncio.to_thread(self._finish, int(row.id or 0), req, ctx.zoom_account_id, executed)
        result.completed += 1

    def _pending_callbacks(self) -> dict[int, list[tuple[int, str, dict[str, str]]]]:
        with unit_of_work(self.engine) as session:
            rows = session.execute(
                select(
                    col(ActionExecution.id),
                    col(ActionExecution.portal_id),
                    col(ActionExecution.callback_id),
                    col(ActionExecution.output_fields),
                )
                .where(
                    col(ActionExecution.state) == ActionState.DONE.value,
                    col(ActionExecution.callback_state) == CallbackState.PENDING.value,
                )
                .order_by(col(ActionExecution.completed_at))
                .limit(BATCH_LIMIT * 10)
            ).all()
        by_portal: dict[int, list[tuple[int, str, dict[str, str]]]] = defaultdict(list)
        for row_id, portal_id, callback_id, output in rows:
            by_portal[int(portal_id)].append((int(row_id), str(callback_id), dict(output or {})))
        return by_portal

    def _mark_callbacks(
        self, ids: Sequence[int], state: CallbackState | None, error: str | None = None
    ) -> None:
        values: dict[str, Any] = {"callback_attempts": col(ActionExecution.callback_attempts) + 1}
        if state is not None:
            values["callback_state"] = state.value
        if error is not None:
            values["last_error"] = error[:2000]
        with unit_of_work(self.engine) as session:
            session.execute(update(ActionExecution).where(col(ActionExecution.id).in_(ids)).values(**values))

    def _give_up_callbacks(self) -> None:
        """After the last attempt a callback is kept as failed (visible), never retried forever."""
        with unit_of_work(self.engine) as session:
            session.execute(
                update(ActionExecution)
                .where(
                    col(ActionExecution.callback_state) == CallbackState.PENDING.value,
                    col(ActionExecution.callback_attempts) >= self.config.callback_max_attempts,
                )
                .values(callback_state=CallbackState.FAILED.value)
            )

    async def _send_callbacks(self, result: CompleterRound) -> None:
        if self.hubspot_for is None:
            return
        pending = await asyncio.to_thread(self._pending_callbacks)
        for portal_id, items in pending.items():
            client = self.hubspot_for(portal_id)
            if client is None:
                continue
            for start in range(0, len(items), BATCH_LIMIT):
                await self._send_batch(client, items[start : start + BATCH_LIMIT], result)

    async def _send_batch(
        self, client: HubSpotClient, batch: Sequence[tuple[int, str, dict[str, str]]], result: CompleterRound
    ) -> None:
        ids = [row_id for row_id, _, _ in batch]
        try:
            await client.complete_callbacks(
                [CallbackCompletion(callback_id=cb, output_fields=out) for _, cb, out in batch]
            )
        except HubSpotError as exc:
            if exc.retryable:
                await asyncio.to_thread(self._mark_callbacks, ids, None, f"callback: {exc}")
                await asyncio.to_thread(self._give_up_callbacks)
                return
            if len(batch) > 1:
                # One expired or unknown callback fails the whole batch: find it by sending alone.
                for item in batch:
                    await self._send_batch(client, [item], result)
                return
            log.warning("workflow action callback refused", extra={"error": str(exc)})
            await asyncio.to_thread(self._mark_callbacks, ids, CallbackState.FAILED, f"callback: {exc}")
            result.callbacks_failed += len(ids)
            return
        await asyncio.to_thread(self._mark_callbacks, ids, CallbackState.SENT)
        result.callbacks_sent += len(ids)
