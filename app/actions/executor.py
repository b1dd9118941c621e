"""Runs one workflow-action execution against Zoom: the rules in order, Zoom errors mapped to codes.

`execute()` either returns a final outcome (success or a failure with its code) or raises
`RetryLater` when Zoom is rate limited, down or slow: the caller then answers BLOCK and the
background completer runs it again. Registering is safe to repeat: Zoom answers a second
registration of the same email with the same registrant.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from app.actions.rules import (
    HOST_MESSAGE,
    ActionCode,
    ActionFailure,
    ActionRequest,
    ActionSuccess,
    Contact,
    Outcome,
    check_contact,
    extra_required_fields_failure,
    in_primary_business_unit,
    is_host,
    normalize_webinar_id,
)
from app.integrations.zoom.errors import (
    ZoomAuthError,
    ZoomError,
    ZoomHostCannotRegister,
    ZoomRateLimited,
    ZoomRegistrationNotEnabled,
    ZoomUnavailable,
    ZoomUserNotFound,
    ZoomWebinarNotFound,
    ZoomWebinarOver,
)
from app.integrations.zoom.models import RegistrantCreated, RegistrationQuestions, ZoomUser, ZoomWebinar

BUSINESS_UNIT_PROPERTY = "hs_all_assigned_business_unit_ids"
WEBINAR_CACHE_TTL_S = 60.0


class ZoomActionApi(Protocol):
    async def get_webinar(self, webinar_id: str) -> ZoomWebinar: ...

    async def get_registration_questions(self, webinar_id: str) -> RegistrationQuestions: ...

    async def get_user(self, user_id: str) -> ZoomUser: ...

    async def add_registrant(
        self, webinar_id: str, *, email: str, first_name: str, last_name: str | None
    ) -> RegistrantCreated: ...


# The Zoom client of an account (True: interactive, for the request path); None without credentials.
ZoomFor = Callable[[str, bool], ZoomActionApi | None]


class RetryLater(Exception):
    """Zoom could not answer now; try again after `retry_after_s` (None: the caller's backoff)."""

    def __init__(self, reason: str, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, slots=True)
class PortalContext:
    """What the service knows of the portal that sent the request."""

    # The Zoom account the request registers in: the connection of the contact's business unit
    # (W3), else the portal's primary one; None when the portal has no connection at all.
    zoom_account_id: str | None
    global_sync_enabled: bool
    connected_user_email: str | None = None
    # Whether one of the portal's connections serves the contact's business units (W3, decided with
    # the connections by `execution_store.context_in`); None: the primary business unit (0) alone.
    business_unit_ok: bool | None = None


@dataclass(frozen=True, slots=True)
class WebinarFacts:
    webinar: ZoomWebinar
    questions: RegistrationQuestions
    host_email: str | None


@dataclass(frozen=True, slots=True)
class Executed:
    outcome: Outcome
    webinar: ZoomWebinar | None = None
    contact: Contact | None = None


class WebinarFactsCache:
    """Webinar, form and host of a webinar, kept a minute: a campaign enrolling thousands of
    contacts into one webinar then costs Zoom one registration call per contact, not three."""

    def __init__(
        self, ttl_s: float = WEBINAR_CACHE_TTL_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._entries: dict[tuple[str, str], tuple[float, WebinarFacts]] = {}

    def get(self, account_id: str, webinar_id: str) -> WebinarFacts | None:
        entry = self._entries.get((account_id, webinar_id))
        if entry is None or self._clock() - entry[0] > self.ttl_s:
            return None
        return entry[1]

    def put(self, account_id: str, webinar_id: str, facts: WebinarFacts) -> None:
        if len(self._entries) > 10_000:
            self._entries.clear()
        self._entries[(account_id, webinar_id)] = (self._clock(), facts)


def _retry_later(exc: ZoomError) -> RetryLater:
    retry_after = exc.retry_after_s if isinstance(exc, ZoomRateLimited) else None
    return RetryLater(f"Zoom: {exc.message}"[:500], retry_after)


async def _webinar_facts(
    zoom: ZoomActionApi, cache: WebinarFactsCache, account_id: str, webinar_id: str
) -> WebinarFacts:
    cached = cache.get(account_id, webinar_id)
    if cached is not None:
        return cached
    webinar = await zoom.get_webinar(webinar_id)
    questions = await zoom.get_registration_questions(webinar_id) if webinar.registration_enabled else None
    host_email = webinar.host_email
    if not host_email and webinar.host_id:
        try:
            host_email = (await zoom.get_user(webinar.host_id)).email
        except ZoomUserNotFound:
            host_email = None
    facts = WebinarFacts(
        webinar=webinar,
        questions=questions or RegistrationQuestions(questions=[], custom_questions=[]),
        host_email=host_email,
    )
    cache.put(account_id, webinar_id, facts)
    return facts


def _registration_off(webinar_id: str) -> ActionFailure:
    return ActionFailure(
        ActionCode.REGISTRATION_NOT_ENABLED, f"Zoom webinar {webinar_id} does not have registration enabled"
    )


def precheck(request: ActionRequest, ctx: PortalContext) -> tuple[str, str, Contact] | ActionFailure:
    """The rules that need no Zoom call, in the order a user would fix them."""
    if ctx.zoom_account_id is None:
        return ActionFailure(
            ActionCode.ZOOM_ERROR,
            f"HubSpot account {request.portal_id} is not connected to a Zoom account in this service",
        )
    if not ctx.global_sync_enabled:
        return ActionFailure(ActionCode.SYNC_DISABLED, "Zoom sync is turned off for this HubSpot account")
    business_unit_ok = ctx.business_unit_ok
    if business_unit_ok is None:
        business_unit_ok = in_primary_business_unit(request.properties.get(BUSINESS_UNIT_PROPERTY))
    if not business_unit_ok:
        return ActionFailure(
            ActionCode.NOT_PRIMARY_BUSINESS_UNIT,
            "Only contacts of the primary business unit can be registered: its Zoom account is the "
            "connected one",
        )
    webinar_id = normalize_webinar_id(request.webinar_id_input)
    if isinstance(webinar_id, ActionFailure):
        return webinar_id
    contact = check_contact(request)
    if isinstance(contact, ActionFailure):
        return contact
    return ctx.zoom_account_id, webinar_id, contact


async def execute(
    request: ActionRequest, ctx: PortalContext, zoom: ZoomActionApi | None, cache: WebinarFactsCache
) -> Executed:
    checked = precheck(request, ctx)
    if isinstance(checked, ActionFailure):
        return Executed(checked)
    account_id, webinar_id, contact = checked
    if zoom is None:
        return Executed(
            ActionFailure(
                ActionCode.ZOOM_ERROR, f"No Zoom API credentials are configured for account {account_id}"
            )
        )
    try:
        facts = await _webinar_facts(zoom, cache, account_id, webinar_id)
    except ZoomWebinarNotFound:
        return Executed(
            ActionFailure(
                ActionCode.WEBINAR_NOT_FOUND, f"Zoom webinar {webinar_id} was not found or has expired"
            ),
            contact=contact,
        )
    except ZoomRegistrationNotEnabled:
        return Executed(_registration_off(webinar_id), contact=contact)
    except (ZoomRateLimited, ZoomUnavailable, ZoomAuthError) as exc:
        raise _retry_later(exc) from exc
    except ZoomError as exc:
        return Executed(ActionFailure(ActionCode.ZOOM_ERROR, f"Zoom: {exc.message}"[:500]), contact=contact)
    webinar = facts.webinar
    if is_host(contact.email, (facts.host_email, ctx.connected_user_email)):
        return Executed(ActionFailure(ActionCode.HOST_CANNOT_REGISTER, HOST_MESSAGE), webinar, contact)
    if not webinar.registration_enabled:
        return Executed(_registration_off(webinar_id), webinar, contact)
    extra = extra_required_fields_failure(facts.questions.required_beyond_basics())
    if extra is not None:
        return Executed(extra, webinar, contact)
    try:
        created = await zoom.add_registrant(
            webinar_id, email=contact.email, first_name=contact.first_name, last_name=contact.last_name
        )
    except ZoomHostCannotRegister:
        return Executed(ActionFailure(ActionCode.HOST_CANNOT_REGISTER, HOST_MESSAGE), webinar, contact)
    except ZoomWebinarNotFound:
        return Executed(
            ActionFailure(
                ActionCode.WEBINAR_NOT_FOUND, f"Zoom webinar {webinar_id} was not found or has expired"
            ),
            webinar,
            contact,
        )
    except ZoomRegistrationNotEnabled as exc:
        # Zoom uses 3000 for "registration off" and for capacity or paid registration: keep its words.
        if "registration" in exc.message.lower() and "required" in exc.message.lower():
            return Executed(_registration_off(webinar_id), webinar, contact)
        return Executed(ActionFailure(ActionCode.ZOOM_ERROR, f"Zoom: {exc.message}"[:500]), webinar, contact)
    except ZoomWebinarOver as exc:
        return Executed(ActionFailure(ActionCode.ZOOM_ERROR, f"Zoom: {exc.message}"[:500]), webinar, contact)
    except (ZoomRateLimited, ZoomUnavailable, ZoomAuthError) as exc:
        raise _retry_later(exc) from exc
    except ZoomError as exc:
        return Executed(ActionFailure(ActionCode.ZOOM_ERROR, f"Zoom: {exc.message}"[:500]), webinar, contact)
    join_url = created.join_url or webinar.join_url or ""
    return Executed(ActionSuccess(registrant_id=created.registrant_id, join_url=join_url), webinar, contact)
