"""A fake Zoom webinar's live life: start, join, leave and end, and the participant reports made of
its sessions. One mixin of :class:`~app.sandbox.zoom_state.ZoomSandbox` (joining looks up registrants).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from app.sandbox.zoom_common import (
    JSON,
    control_error,
    iso,
    user_not_found,
    webinar_not_found,
)
from app.sandbox.zoom_records import (
    ActionResult,
    Session,
    Webinar,
)
from app.sandbox.zoom_registrants import RegistrantsMixin
from app.sandbox.zoom_webhook_signing import Envelope


class SessionsMixin(RegistrantsMixin):
    """A webinar's live life: start, join, leave, end, and the participant reports made of its sessions."""

    def _participants(
        self,
        account_id: str,
        webinar_id: str,
        *,
        report: bool,
        page_size: int | None,
        next_page_token: str | None,
        include_fields: str | None,
    ) -> JSON:
        w = self._api_webinar(account_id, webinar_id)
        if w.status != "ended":
            raise webinar_not_found(webinar_id)
        include = {part.strip() for part in (include_fields or "").split(",")}
        sessions = w.sorted_sessions()
        key = f"{'report' if report else 'past'}:{w.id}"
        page, meta = self._page(key, sessions, page_size, next_page_token, maximum=300)
        rows = [s.row(report=report, include_registrant_id="registrant_id" in include) for s in page]
        return {**meta, "participants": rows}

    def past_participants(
        self,
        account_id: str,
        webinar_id: str,
        *,
        page_size: int | None = None,
        next_page_token: str | None = None,
        include_fields: str | None = None,
    ) -> JSON:
        """``GET /past_webinars/{id}/participants``."""
        return self._participants(
            account_id,
            webinar_id,
            report=False,
            page_size=page_size,
            next_page_token=next_page_token,
            include_fields=include_fields,
        )

    def report_participants(
        self,
        account_id: str,
        webinar_id: str,
        *,
        page_size: int | None = None,
        next_page_token: str | None = None,
        include_fields: str | None = None,
    ) -> JSON:
        """``GET /report/webinars/{id}/participants``."""
        return self._participants(
            account_id,
            webinar_id,
            report=True,
            page_size=page_size,
            next_page_token=next_page_token,
            include_fields=include_fields,
        )

    def _start(self, webinar_id: str, at: datetime | None) -> tuple[JSON, list[Envelope]]:
        w = self.webinar(webinar_id)
        if w.status != "waiting":
            raise control_error(400, f"Webinar {w.id} has already {w.status}; it can start only once.")
        w.scenario.started(at=self._at(at))
        w.status = "started"
        return self._live_json(w), w.scenario.pop_envelopes()

    def _live_json(self, w: Webinar) -> JSON:
        s = w.scenario
        return {
            "id": w.id,
            "uuid": w.instance_uuid,
            "status": w.status,
            "actual_start": iso(s.actual_start) if s.actual_start else None,
            "actual_end": iso(s.actual_end) if s.actual_end else None,
            "open_sessions": len(w.open_sessions),
            "sessions": len(w.sessions),
        }

    def _join(
        self,
        webinar_id: str,
        *,
        registrant_id: str | None,
        name: str | None,
        email: str | None,
        guest: bool,
        user_id: str | None,
        at: datetime | None,
    ) -> tuple[JSON, list[Envelope]]:
        w = self.webinar(webinar_id)
        if w.status != "started":
            raise control_error(400, f"Webinar {w.id} is not in progress (status {w.status}).")
        s = w.scenario
        if registrant_id is not None:
            reg = self._registrant(w, registrant_id)
            if reg.status != "approved":
                raise control_error(400, f"Registrant {reg.id} is {reg.status} and cannot join.")
            participant = s.participant_for(reg.id)
            if name:
                participant = replace(participant, name=name)
            raw_email, is_guest = reg.email, False
        else:
            user = None
            if user_id is not None:
                user = self.users.get(user_id)
                if user is None or user.account_id != w.account_id:
                    raise user_not_found(user_id)
            elif email:
                user = next(
                    (
                        u
                        for u in self.users.values()
                        if u.account_id == w.account_id and u.email.lower() == email.lower()
                    ),
                    None,
                )
            display = name or (user.display_name if user else None)
            if not display:
                raise control_error(400, "A participant needs a registrant_id, a name or an account user.")
            participant = s.guest(display)
            if user is not None:
                participant = replace(participant, email=user.email, participant_user_id=user.id)
                raw_email, is_guest = user.email, False
            else:
                raw_email, is_guest = email or "", guest
                if email and not guest:
                    participant = replace(participant, email=email)
        when = self._at(at)
        self._session_seq += 1
        session = Session(participant, is_guest, raw_email, when, self._session_seq)
        w.sessions.append(session)
        w.open_sessions[participant.user_id] = session
        s.join(participant, at=when)
        return session.snapshot(), s.pop_envelopes()

    def _leave(
        self, webinar_id: str, *, user_id: str | None, registrant_id: str | None, at: datetime | None
    ) -> tuple[JSON, list[Envelope]]:
        w = self.webinar(webinar_id)
        session: Session | None = None
        if user_id is not None:
            session = w.open_sessions.get(user_id)
        elif registrant_id is not None:
            session = next(
                (
                    x
                    for x in reversed(w.sessions)
                    if x.leave_time is None and x.participant.registrant_id == registrant_id
                ),
                None,
            )
        if session is None:
            raise control_error(404, "No open participant session matches.")
        envelopes = self._close_session(w, session, self._at(at))
        return session.snapshot(), envelopes

    def _close_session(self, w: Webinar, session: Session, at: datetime) -> list[Envelope]:
        session.leave_time = max(at, session.join_time)
        w.open_sessions.pop(session.user_id, None)
        w.scenario.leave(session.participant, at=session.leave_time)
        return w.scenario.pop_envelopes()

    def _end(self, webinar_id: str, at: datetime | None) -> tuple[JSON, list[Envelope]]:
        w = self.webinar(webinar_id)
        if w.status != "started":
            raise control_error(400, f"Webinar {w.id} is not in progress (status {w.status}).")
        when = self._at(at)
        envelopes: list[Envelope] = []
        for session in list(w.open_sessions.values()):
            envelopes += self._close_session(w, session, when)
        w.scenario.ended(at=when)
        w.status = "ended"
        envelopes += w.scenario.pop_envelopes()
        return self._live_json(w), envelopes

    async def start(
        self, webinar_id: str | int, *, at: datetime | None = None, emit: bool = True
    ) -> ActionResult:
        return await self._act(lambda: self._start(str(webinar_id), at), emit)

    async def join(
        self,
        webinar_id: str | int,
        *,
        registrant_id: str | None = None,
        name: str | None = None,
        email: str | None = None,
        guest: bool = False,
        user_id: str | None = None,
        at: datetime | None = None,
        emit: bool = True,
    ) -> ActionResult:
        """A participant joins; ``result["user_id"]`` identifies the session for :meth:`leave`."""
        return await self._act(
            lambda: self._join(
                str(webinar_id),
                registrant_id=registrant_id,
                name=name,
                email=email,
                guest=guest,
                user_id=user_id,
                at=at,
            ),
            emit,
        )

    async def leave(
        self,
        webinar_id: str | int,
        *,
        user_id: str | None = None,
        registrant_id: str | None = None,
        at: datetime | None = None,
        emit: bool = True,
    ) -> ActionResult:
        return await self._act(
            lambda: self._leave(str(webinar_id), user_id=user_id, registrant_id=registrant_id, at=at), emit
        )

    async def end(
        self, webinar_id: str | int, *, at: datetime | None = None, emit: bool = True
    ) -> ActionResult:
        return await self._act(lambda: self._end(str(webinar_id), at), emit)
