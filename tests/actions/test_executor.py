"""Zoom's answers mapped to action outcomes, with a scripted Zoom (no sandbox needed)."""

from __future__ import annotations

from typing import Any

import pytest

from app.actions.executor import PortalContext, RetryLater, WebinarFactsCache, execute
from app.actions.rules import HOST_MESSAGE, ActionCode, ActionFailure, ActionRequest, ActionSuccess
from app.integrations.zoom.errors import (
    ZoomError,
    ZoomHostCannotRegister,
    ZoomRateLimited,
    ZoomRegistrationNotEnabled,
    ZoomUnavailable,
    ZoomWebinarOver,
)
from app.integrations.zoom.models import RegistrantCreated, RegistrationQuestions, ZoomUser, ZoomWebinar

pytestmark = pytest.mark.anyio
CTX = PortalContext(zoom_account_id="acct", global_sync_enabled=True)


class ScriptedZoom:
    def __init__(
        self, *, register_error: ZoomError | None = None, host_email: str | None = "host@x.com"
    ) -> None:
        self.register_error = register_error
        self.host_email = host_email
        self.calls: list[str] = []

    async def get_webinar(self, webinar_id: str) -> ZoomWebinar:
        self.calls.append("get_webinar")
        return ZoomWebinar.model_validate(
            {
                "id": webinar_id,
                "topic": "T",
                "host_id": "h1",
                "host_email": self.host_email,
                "settings": {"approval_type": 0},
            }
        )

    async def get_registration_questions(self, webinar_id: str) -> RegistrationQuestions:
        self.calls.append("questions")
        return RegistrationQuestions(questions=[], custom_questions=[])

    async def get_user(self, user_id: str) -> ZoomUser:
        self.calls.append("get_user")
        return ZoomUser.model_validate({"id": user_id, "email": "host@x.com"})

    async def add_registrant(self, webinar_id: str, **kwargs: Any) -> RegistrantCreated:
        self.calls.append("add_registrant")
        if self.register_error is not None:
            raise self.register_error
        return RegistrantCreated.model_validate(
            {"registrant_id": "r1", "id": webinar_id, "join_url": "https://j"}
        )


def request(email: str = "ada@example.com") -> ActionRequest:
    return ActionRequest("cb", 1, "7", {"email": email, "firstname": "Ada"}, "123456789")


async def outcome(zoom: ScriptedZoom, req: ActionRequest | None = None) -> ActionFailure | ActionSuccess:
    return (await execute(req or request(), CTX, zoom, WebinarFactsCache())).outcome


@pytest.mark.parametrize(
    ("error", "code", "message"),
    [
        (
            ZoomHostCannotRegister(400, 3027, "Host cannot register."),
            ActionCode.HOST_CANNOT_REGISTER,
            HOST_MESSAGE,
        ),
        (
            ZoomRegistrationNotEnabled(400, 3000, "This webinar does not have registration as required: 1"),
            ActionCode.REGISTRATION_NOT_ENABLED,
            "registration enabled",
        ),
        (
            ZoomRegistrationNotEnabled(400, 3000, "You have reached the limit for the number of attendees"),
            ActionCode.ZOOM_ERROR,
            "limit",
        ),
        (
            ZoomWebinarOver(400, 3038, "Webinar is over, you cannot register now."),
            ActionCode.ZOOM_ERROR,
            "over",
        ),
        (ZoomError(400, 1010, "User does not belong to this account"), ActionCode.ZOOM_ERROR, "belong"),
    ],
)
async def test_zoom_errors_become_codes(error: ZoomError, code: ActionCode, message: str) -> None:
    result = await outcome(ScriptedZoom(register_error=error))
    assert isinstance(result, ActionFailure)
    assert result.code is code and message in result.message


@pytest.mark.parametrize(
    "error", [ZoomRateLimited(429, 429, "slow down", retry_after_s=3.0), ZoomUnavailable(503, None, "down")]
)
async def test_transient_zoom_errors_ask_to_retry(error: ZoomError) -> None:
    with pytest.raises(RetryLater) as caught:
        await outcome(ScriptedZoom(register_error=error))
    if isinstance(error, ZoomRateLimited):
        assert caught.value.retry_after_s == 3.0


async def test_host_found_through_get_user_when_the_webinar_has_no_host_email() -> None:
    zoom = ScriptedZoom(host_email=None)
    result = await outcome(zoom, request("HOST@x.com"))
    assert isinstance(result, ActionFailure) and result.code is ActionCode.HOST_CANNOT_REGISTER
    assert "add_registrant" not in zoom.calls and "get_user" in zoom.calls


async def test_webinar_facts_are_cached_between_executions() -> None:
    zoom, cache = ScriptedZoom(), WebinarFactsCache()
    for _ in range(3):
        assert isinstance((await execute(request(), CTX, zoom, cache)).outcome, ActionSuccess)
    assert zoom.calls.count("get_webinar") == 1 and zoom.calls.count("add_registrant") == 3
