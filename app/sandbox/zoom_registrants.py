"""Registrants of the fake Zoom's webinars: the REST list and add, the registration rules (open,
questions, daily limit) and the control actions register, approve, deny and cancel. One mixin of
:class:`~app.sandbox.zoom_state.ZoomSandbox`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Literal

from app.sandbox.zoom_bodies import (
    CustomAnswer,
    RegisterAction,
    RegistrantCreate,
)
from app.sandbox.zoom_common import (
    JSON,
    REGISTRANT_FIELDS,
    REGISTRANT_STATUSES,
    RateLabel,
    ZoomError,
    control_error,
    iso,
    valid_email,
    validation_failed,
)
from app.sandbox.zoom_core import ZoomCore
from app.sandbox.zoom_records import (
    ActionResult,
    Registrant,
    Webinar,
)
from app.sandbox.zoom_webhook_signing import Envelope


class RegistrantsMixin(ZoomCore):
    """Registrants of a webinar: REST list and add, the registration rules (open, questions, daily
    limit) and the control actions register, approve, deny and cancel."""

    def list_registrants(
        self,
        account_id: str,
        webinar_id: str,
        *,
        status: str | None = None,
        page_size: int | None = None,
        next_page_token: str | None = None,
    ) -> JSON:
        w = self._api_webinar(account_id, webinar_id)
        wanted = status or "approved"
        if wanted not in REGISTRANT_STATUSES:
            raise validation_failed("status")
        rows = [r for r in w.registrants.values() if r.status == wanted]
        key = f"registrants:{w.id}:{wanted}"
        page, meta = self._page(key, rows, page_size, next_page_token, maximum=300)
        return {**meta, "registrants": [r.to_json() for r in page]}

    def _check_registration_open(self, w: Webinar) -> None:
        if not w.registration_enabled:
            raise ZoomError(400, 3000, f"This webinar does not have registration as required: {w.id}")
        if w.status == "ended":
            raise ZoomError(400, 3038, "Webinar is over, you cannot register now.")

    def _count_request(self, w: Webinar, email: str) -> None:
        day = self.now().date()
        key = (email.lower(), day)
        if w.registration_requests[key] >= self.registrations_per_day:
            midnight = datetime.combine(day + timedelta(days=1), datetime.min.time(), UTC)
            headers = {
                "X-RateLimit-Category": RateLabel.LIGHT.category,
                "X-RateLimit-Type": "Daily-limit",
                **self._retry_after_headers((midnight - self.now()).total_seconds()),
            }
            raise ZoomError(
                429,
                429,
                f"You have exceeded the daily rate limit of ({self.registrations_per_day}) for Add a "
                f"webinar registrant API requests for the registrant ({email}). You can resubmit your "
                "request when the rate limit has reset.",
                headers=headers,
            )
        w.registration_requests[key] += 1

    def _check_questions(self, w: Webinar, body: RegistrantCreate) -> None:
        values = body.model_dump()
        missing = [
            str(q["field_name"])
            for q in w.questions
            if q.get("required") and not str(values.get(str(q["field_name"])) or "").strip()
        ]
        answered = {a.title: a.value for a in body.custom_questions if a.value.strip()}
        missing += [
            f"custom_questions.{q['title']}"
            for q in w.custom_questions
            if q.get("required") and q["title"] not in answered
        ]
        if missing:
            raise validation_failed(*missing)

    def _register(
        self, w: Webinar, body: RegistrantCreate, *, at: datetime, status: str | None, api: bool
    ) -> tuple[Registrant, bool, list[Envelope]]:
        """The rules of a registration; returns (registrant, whether it is new, envelopes)."""
        self._check_registration_open(w)
        email = (body.email or "").strip()
        first_name = (body.first_name or "").strip()
        invalid = [
            name for name, ok in (("email", valid_email(email)), ("first_name", bool(first_name))) if not ok
        ]
        invalid += [f"custom_questions.{a.title}" for a in body.custom_questions if len(a.value) > 128]
        if invalid:
            raise validation_failed(*invalid)
        if email.lower() in w.host_emails():
            raise ZoomError(400, 3027, "Host cannot register.")
        if api:
            self._count_request(w, email)
        existing = w.active_registrant(email)
        if existing is not None:
            return existing, False, []
        if api and self.strict_questions:
            self._check_questions(w, body)
        chosen = status or ("pending" if w.approval_type == 1 else "approved")
        last_name = (body.last_name or "").strip()
        custom = [(a.title, a.value) for a in body.custom_questions]
        registrant_id = w.scenario.register(
            email,
            first_name,
            last_name,
            at=at,
            status=chosen,
            org=body.org or None,
            job_title=body.job_title or None,
            custom_questions=custom,
        )
        fields = body.model_dump(include=set(REGISTRANT_FIELDS), exclude_none=True)
        registrant = Registrant(
            id=registrant_id,
            email=email,
            first_name=first_name,
            last_name=last_name,
            status=chosen,
            join_url=w.scenario.registrant(registrant_id).join_url,
            create_time=at,
            fields={k: str(v) for k, v in fields.items()},
            custom_questions=[{"title": t, "value": v} for t, v in custom],
            source="api" if api else "zoom",
        )
        w.registrants[registrant_id] = registrant
        w.active_by_email[email.lower()] = registrant_id
        return registrant, True, w.scenario.pop_envelopes()

    def _add_registrant_api(
        self, account_id: str, webinar_id: str, body: RegistrantCreate
    ) -> tuple[JSON, list[Envelope]]:
        w = self._api_webinar(account_id, webinar_id)
        registrant, _, envelopes = self._register(w, body, at=self._at(None), status=None, api=True)
        result = {
            "id": int(w.id),
            "registrant_id": registrant.id,
            "join_url": registrant.join_url,
            "start_time": iso(w.start_time),
            "topic": w.topic,
            "occurrences": [],
        }
        return result, envelopes

    def _registrant(self, w: Webinar, registrant_id: str) -> Registrant:
        found = w.registrants.get(registrant_id)
        if found is None:
            raise ZoomError(404, 3063, f"Registrant {registrant_id} not found.")
        return found

    def _set_registrant_status(
        self, webinar_id: str, registrant_id: str, action: str, *, at: datetime | None, by_host: bool
    ) -> tuple[JSON, list[Envelope]]:
        w = self.webinar(webinar_id)
        reg = self._registrant(w, registrant_id)
        allowed = {
            "approve": ("pending", "denied"),
            "deny": ("pending", "approved"),
            "cancel": ("approved", "pending"),
        }
        if reg.status not in allowed[action]:
            raise control_error(400, f"Cannot {action} a registrant whose status is {reg.status}.")
        when = self._at(at)
        if action == "approve":
            w.scenario.approve(reg.id, at=when)
            reg.status = "approved"
        elif action == "deny":
            w.scenario.deny(reg.id, at=when)
            reg.status = "denied"
        else:
            w.scenario.cancel(reg.id, at=when, by_host=by_host)
            reg.status = "cancelled"
            if w.active_by_email.get(reg.email.lower()) == reg.id:
                del w.active_by_email[reg.email.lower()]
        return reg.to_json(), w.scenario.pop_envelopes()

    async def add_registrant(self, account_id: str, webinar_id: str, body: RegistrantCreate) -> JSON:
        """``POST /webinars/{id}/registrants`` as the account's app; a new registration sends
        ``webinar.registration_created`` (in the background when ``background_api_webhooks``)."""
        async with self.lock:
            result, envelopes = self._add_registrant_api(account_id, webinar_id, body)
        await self._deliver(envelopes, background=self.background_api_webhooks)
        return result

    async def register(
        self,
        webinar_id: str | int,
        email: str,
        first_name: str,
        last_name: str = "",
        *,
        status: Literal["approved", "pending"] | None = None,
        custom_questions: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        at: datetime | None = None,
        emit: bool = True,
        **fields: str,
    ) -> ActionResult:
        """A registration made at Zoom (its own form): same rules as the API except the per-day limit
        and the required-question check; an existing active registration is returned unchanged."""
        pairs = custom_questions.items() if isinstance(custom_questions, Mapping) else custom_questions
        body = RegisterAction(
            email=email,
            first_name=first_name,
            last_name=last_name,
            custom_questions=[CustomAnswer(title=t, value=v) for t, v in pairs],
            status=status,
            at=at,
            emit=emit,
            **fields,
        )
        return await self.register_body(str(webinar_id), body)

    async def register_body(self, webinar_id: str, body: RegisterAction) -> ActionResult:
        def change() -> tuple[JSON, list[Envelope]]:
            w = self.webinar(webinar_id)
            registrant, created, envelopes = self._register(
                w, body, at=self._at(body.at), status=body.status, api=False
            )
            return {**registrant.to_json(), "created": created}, envelopes

        return await self._act(change, body.emit)

    async def approve(
        self, webinar_id: str | int, registrant_id: str, *, at: datetime | None = None, emit: bool = True
    ) -> ActionResult:
        return await self._act(
            lambda: self._set_registrant_status(
                str(webinar_id), registrant_id, "approve", at=at, by_host=True
            ),
            emit,
        )

    async def deny(
        self, webinar_id: str | int, registrant_id: str, *, at: datetime | None = None, emit: bool = True
    ) -> ActionResult:
        return await self._act(
            lambda: self._set_registrant_status(str(webinar_id), registrant_id, "deny", at=at, by_host=True),
            emit,
        )

    async def cancel(
        self,
        webinar_id: str | int,
        registrant_id: str,
        *,
        by_host: bool = False,
        at: datetime | None = None,
        emit: bool = True,
    ) -> ActionResult:
        return await self._act(
            lambda: self._set_registrant_status(
                str(webinar_id), registrant_id, "cancel", at=at, by_host=by_host
            ),
            emit,
        )
