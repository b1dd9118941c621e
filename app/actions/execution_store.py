"""The bookkeeping of workflow-action executions (`action_executions`), one row per callbackId.

The request path reads here before it calls Zoom and records here after; the completer claims due
blocked executions and records their end. Every function runs in a thread (blocking database
calls) and commits its own transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from app.actions.config import ActionConfig
from app.actions.executor import BUSINESS_UNIT_PROPERTY, Executed, PortalContext
from app.actions.registration_event import store_registration_event
from app.actions.rules import (
    ActionFailure,
    ActionRequest,
    ActionSuccess,
    UnitConnection,
    block_output,
    connection_for_contact,
)
from app.db import dialect_insert, unit_of_work, utcnow
from app.models import ActionExecution, ActionState, CallbackState, Connection, PortalSettings

log = logging.getLogger("app.actions.service")


def request_json(req: ActionRequest) -> dict[str, Any]:
    return {"properties": req.properties, "webinar_id_input": req.webinar_id_input}


def request_from_row(row: ActionExecution) -> ActionRequest:
    data = row.request or {}
    return ActionRequest(
        callback_id=row.callback_id,
        portal_id=row.portal_id,
        object_id=row.object_id,
        properties={str(k): str(v) for k, v in (data.get("properties") or {}).items()},
        webinar_id_input=data.get("webinar_id_input"),
    )


def log_finished(req: ActionRequest, output: dict[str, str]) -> None:
    log.info(
        "workflow action finished",
        extra={
            "callback_id": req.callback_id,
            "portal_id": req.portal_id,
            "state": output.get("hs_execution_state"),
            "error_code": output.get("error_code"),
        },
    )


def context_in(session: Any, portal_id: int, business_units: str | None = None) -> PortalContext:
    """The portal's Zoom account for a contact of `business_units` (its
    `hs_all_assigned_business_unit_ids`, W3 per connection) and its global sync switch."""
    connections = (
        session.execute(
            select(Connection).where(col(Connection.portal_id) == portal_id).order_by(col(Connection.id))
        )
        .scalars()
        .all()
    )
    units = [UnitConnection(c.zoom_account_id, c.business_unit_id, c.is_primary) for c in connections]
    chosen = connection_for_contact(units, business_units)
    # Refused for its business unit, the request still names the portal's primary account.
    fallback = next((u for u in units if u.is_primary), units[0] if units else None)
    account = chosen or fallback
    settings = session.get(PortalSettings, portal_id)
    return PortalContext(
        zoom_account_id=account.zoom_account_id if account else None,
        global_sync_enabled=settings.global_sync_enabled if settings else True,
        business_unit_ok=chosen is not None,
    )


class ExecutionStore:
    def __init__(
        self,
        engine: Engine,
        read_engine: Engine,
        config: ActionConfig,
        on_registered: Callable[[], None] | None = None,
    ) -> None:
        self.engine = engine
        self.read_engine = read_engine
        self.config = config
        # Wakes the worker after a registration entered the inbox.
        self.on_registered = on_registered
        self._insert: Any = dialect_insert(engine, ActionExecution.__table__)  # type: ignore[attr-defined]

    # --- the request path -----------------------------------------------------------------------

    def lookup(self, req: ActionRequest) -> tuple[ActionExecution | None, PortalContext]:
        with Session(self.read_engine, expire_on_commit=False) as session:
            seen = session.execute(
                select(ActionExecution).where(col(ActionExecution.callback_id) == req.callback_id)
            ).scalar_one_or_none()
            return seen, context_in(session, req.portal_id, req.properties.get(BUSINESS_UNIT_PROPERTY))

    def record_blocked(
        self, req: ActionRequest, ctx: PortalContext, reason: str, retry_after_s: float | None
    ) -> dict[str, str]:
        delay = retry_after_s if retry_after_s is not None else self.config.retry_base_s
        row = self._new_row(
            req,
            ctx,
            state=ActionState.BLOCKED,
            callback_state=CallbackState.PENDING,
            next_attempt_at=utcnow() + timedelta(seconds=min(delay, self.config.retry_max_s)),
            last_error=reason[:2000],
        )
        with unit_of_work(self.engine) as session:
            if self._insert_row(session, row):
                return block_output()
            existing = self._existing(session, req.callback_id)
            if existing.state == ActionState.DONE:
                return dict(existing.output_fields or {})
            if existing.callback_state == CallbackState.NONE:
                existing.callback_state = CallbackState.PENDING
            return block_output()

    def record_done(self, req: ActionRequest, ctx: PortalContext, executed: Executed) -> dict[str, str]:
        outcome = executed.outcome
        output = outcome.output_fields()
        row = self._new_row(
            req,
            ctx,
            state=ActionState.DONE,
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
                if existing.state == ActionState.DONE:
                    return dict(existing.output_fields or {})
                existing.state = ActionState.DONE
                existing.output_fields = output
                existing.completed_at = utcnow()
                existing.locked_until = None
            store_registration_event(session, ctx.zoom_account_id, executed)
        log_finished(req, output)
        if isinstance(outcome, ActionSuccess) and self.on_registered is not None:
            self.on_registered()
        return output

    def _new_row(self, req: ActionRequest, ctx: PortalContext, **values: Any) -> dict[str, Any]:
        now = utcnow()
        row: dict[str, Any] = {
            "callback_id": req.callback_id,
            "portal_id": req.portal_id,
            "zoom_account_id": ctx.zoom_account_id,
            "object_id": req.object_id[:64],
            "request": request_json(req),
            "callback_state": CallbackState.NONE,
            "attempts": 1,
            "callback_attempts": 0,
            "created_at": now,
        }
        row.update(values)
        return row

    def _insert_row(self, session: Any, row: dict[str, Any]) -> bool:
        stmt = self._insert.values(**row).on_conflict_do_nothing(index_elements=["callback_id"])
        return session.execute(stmt.returning(col(ActionExecution.id))).scalar_one_or_none() is not None

    @staticmethod
    def _existing(session: Any, callback_id: str) -> ActionExecution:
        found: ActionExecution = session.execute(
            select(ActionExecution).where(col(ActionExecution.callback_id) == callback_id).with_for_update()
        ).scalar_one()
        return found

    # --- the completer --------------------------------------------------------------------------

    def claim_due(self) -> list[ActionExecution]:
        now = utcnow()
        with unit_of_work(self.engine) as session:
            stmt = (
                select(ActionExecution)
                .where(
                    col(ActionExecution.state) != ActionState.DONE,
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

    def context(self, req: ActionRequest) -> PortalContext:
        with unit_of_work(self.engine) as session:
            return context_in(session, req.portal_id, req.properties.get(BUSINESS_UNIT_PROPERTY))

    def block(self, row_id: int, reason: str, retry_after_s: float | None, account_id: str | None) -> None:
        with unit_of_work(self.engine) as session:
            row = session.get(ActionExecution, row_id, with_for_update=True)
            if row is None or row.state == ActionState.DONE:
                return
            delay = retry_after_s if retry_after_s is not None else self._backoff(row.attempts)
            row.state = ActionState.BLOCKED
            row.zoom_account_id = account_id
            if row.callback_state == CallbackState.NONE:
                row.callback_state = CallbackState.PENDING
            row.next_attempt_at = utcnow() + timedelta(seconds=min(delay, self.config.retry_max_s))
            row.locked_until = None
            row.last_error = reason[:2000]

    def _backoff(self, attempts: int) -> float:
        return float(min(self.config.retry_base_s * 2 ** max(attempts - 1, 0), self.config.retry_max_s))

    def finish(self, row_id: int, req: ActionRequest, account_id: str | None, executed: Executed) -> None:
        """The completer's end of a blocked execution."""
        outcome = executed.outcome
        output = outcome.output_fields()
        with unit_of_work(self.engine) as session:
            row = session.get(ActionExecution, row_id, with_for_update=True)
            if row is None or row.state == ActionState.DONE:
                return
            row.state = ActionState.DONE
            row.output_fields = output
            row.zoom_account_id = account_id
            row.completed_at = utcnow()
            row.locked_until = None
            row.next_attempt_at = None
            if executed.webinar is not None:
                row.webinar_id = executed.webinar.id[:32]
            if isinstance(outcome, ActionFailure):
                row.last_error = f"{outcome.code.value}: {outcome.message}"[:2000]
            store_registration_event(session, account_id, executed)
        log_finished(req, output)
        if isinstance(outcome, ActionSuccess) and self.on_registered is not None:
            self.on_registered()
