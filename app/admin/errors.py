"""What the admin services refuse, with the status code and `detail` the API answers.

`AdminRoute` (app/api/deps.py) maps every `AdminError` to `{"detail": err.detail}` with
`err.status_code`: the one place a refusal becomes a response, so the services stay free of HTTP.
The texts are part of the API (CONTRACT.md); tests compare them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

# A 422 names what was wrong the way FastAPI's own validation errors do: a list of {loc, msg, ...}.
ValidationDetail = list[dict[str, Any]]


class AdminError(Exception):
    """A refusal: `status_code` and `detail` are the answer's; `headers` go with it."""

    status_code: ClassVar[int] = 400

    def __init__(self, detail: str | ValidationDetail, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = dict(headers) if headers else None


class NotFound(AdminError):
    status_code = 404


class UnknownPortal(NotFound):
    def __init__(self, portal_id: int) -> None:
        super().__init__(f"unknown portal {portal_id}")


class UnknownWebinar(NotFound):
    def __init__(self, portal_id: int, webinar_id: str) -> None:
        super().__init__(f"unknown webinar {webinar_id} for portal {portal_id}")


class UnknownZoomUser(NotFound):
    def __init__(self, portal_id: int, zoom_user_id: str) -> None:
        super().__init__(f"unknown Zoom user {zoom_user_id} for portal {portal_id}")


class UnknownSyncJob(NotFound):
    def __init__(self, portal_id: int, job_id: str) -> None:
        super().__init__(f"unknown sync job {job_id} for portal {portal_id}")


class ConflictError(AdminError):
    """The request is well-formed but the current state refuses it."""

    status_code = 409


class NoZoomApiAccess(ConflictError):
    """A pull from Zoom was asked for, but this service cannot call Zoom's API for that account."""


class InvalidParameter(AdminError):
    """A 422 in the shape of FastAPI's validation errors, for checks only the service can make."""

    status_code = 422

    def __init__(self, loc: tuple[str, ...], msg: str, error_type: str | None = None) -> None:
        item: dict[str, Any] = {"loc": list(loc), "msg": msg}
        if error_type is not None:
            item["type"] = error_type
        super().__init__([item])


class InvalidCursor(InvalidParameter):
    def __init__(self) -> None:
        super().__init__(("query", "cursor"), "invalid cursor")


class UnknownAuditAnchor(InvalidParameter):
    """`after_id` names no entry of this webinar's audit log."""

    def __init__(self, after_id: int) -> None:
        super().__init__(("query", "after_id"), f"no audit entry {after_id} in this log")


class InvalidRange(InvalidParameter):
    """A backfill's date range the pull refuses (`parse_range`)."""

    def __init__(self, msg: str) -> None:
        super().__init__(("body", "to"), msg, "value_error")
