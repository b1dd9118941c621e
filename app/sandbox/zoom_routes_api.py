"""The fake Zoom's public routes, behind the request gate: Server-to-Server OAuth (``/oauth/token``),
the REST API under ``/v2`` and recording downloads (``/rec/``)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from app.sandbox.zoom_bodies import RegistrantCreate
from app.sandbox.zoom_http import API_PREFIX, AccountDep, PageSize, PageToken, SandboxDep
from app.sandbox.zoom_records import RecordingFile

# --------------------------------------------------------------------------------------------------
# OAuth
# --------------------------------------------------------------------------------------------------

oauth = APIRouter(tags=["oauth"])


@oauth.post("/oauth/token")
async def issue_token(request: Request, sandbox: SandboxDep) -> dict[str, Any]:
    """Server-to-Server OAuth: ``grant_type=account_credentials&account_id=...`` in the query string
    (or a form body), client credentials as HTTP Basic auth."""
    params = dict(request.query_params)
    if "application/x-www-form-urlencoded" in request.headers.get("content-type", ""):
        form = parse_qsl((await request.body()).decode("utf-8", "replace"))
        params = {**dict(form), **params}
    async with sandbox.lock:
        return sandbox.issue_token(
            request.headers.get("authorization"), params.get("grant_type"), params.get("account_id")
        )


# --------------------------------------------------------------------------------------------------
# REST API (/v2)
# --------------------------------------------------------------------------------------------------

api = APIRouter(prefix=API_PREFIX, tags=["zoom api"])


@api.get("/users")
async def list_users(
    sandbox: SandboxDep, account: AccountDep, page_size: PageSize = None, next_page_token: PageToken = None
) -> dict[str, Any]:
    async with sandbox.lock:
        return sandbox.list_users(account.id, page_size=page_size, next_page_token=next_page_token)


@api.get("/users/{user_id}")
async def get_user(user_id: str, sandbox: SandboxDep, account: AccountDep) -> dict[str, Any]:
    async with sandbox.lock:
        return sandbox.get_user(account.id, user_id)


@api.get("/users/{user_id}/webinars")
async def list_user_webinars(
    user_id: str,
    sandbox: SandboxDep,
    account: AccountDep,
    page_size: PageSize = None,
    next_page_token: PageToken = None,
) -> dict[str, Any]:
    async with sandbox.lock:
        return sandbox.list_user_webinars(
            account.id, user_id, page_size=page_size, next_page_token=next_page_token
        )


@api.get("/webinars/{webinar_id}")
async def get_webinar(webinar_id: str, sandbox: SandboxDep, account: AccountDep) -> dict[str, Any]:
    async with sandbox.lock:
        return sandbox.get_webinar(account.id, webinar_id)


@api.get("/webinars/{webinar_id}/registrants/questions")
async def registrant_questions(webinar_id: str, sandbox: SandboxDep, account: AccountDep) -> dict[str, Any]:
    async with sandbox.lock:
        return sandbox.registrant_questions(account.id, webinar_id)


@api.post("/webinars/{webinar_id}/registrants", status_code=201)
async def add_registrant(
    webinar_id: str, body: RegistrantCreate, sandbox: SandboxDep, account: AccountDep
) -> dict[str, Any]:
    return await sandbox.add_registrant(account.id, webinar_id, body)


@api.get("/webinars/{webinar_id}/registrants")
async def list_registrants(
    webinar_id: str,
    sandbox: SandboxDep,
    account: AccountDep,
    status: str | None = None,
    page_size: PageSize = None,
    next_page_token: PageToken = None,
) -> dict[str, Any]:
    async with sandbox.lock:
        return sandbox.list_registrants(
            account.id, webinar_id, status=status, page_size=page_size, next_page_token=next_page_token
        )


@api.get("/past_webinars/{webinar_id}/participants")
async def past_participants(
    webinar_id: str,
    sandbox: SandboxDep,
    account: AccountDep,
    page_size: PageSize = None,
    next_page_token: PageToken = None,
    include_fields: str | None = None,
) -> dict[str, Any]:
    async with sandbox.lock:
        return sandbox.past_participants(
            account.id,
            webinar_id,
            page_size=page_size,
            next_page_token=next_page_token,
            include_fields=include_fields,
        )


@api.get("/report/webinars/{webinar_id}/participants")
async def report_participants(
    webinar_id: str,
    sandbox: SandboxDep,
    account: AccountDep,
    page_size: PageSize = None,
    next_page_token: PageToken = None,
    include_fields: str | None = None,
) -> dict[str, Any]:
    async with sandbox.lock:
        return sandbox.report_participants(
            account.id,
            webinar_id,
            page_size=page_size,
            next_page_token=next_page_token,
            include_fields=include_fields,
        )


@api.get("/meetings/{meeting_id}/recordings")
async def get_recordings(
    meeting_id: str, sandbox: SandboxDep, account: AccountDep, include_fields: str | None = None
) -> dict[str, Any]:
    async with sandbox.lock:
        return sandbox.get_recordings(account.id, meeting_id, include_fields=include_fields)


# --------------------------------------------------------------------------------------------------
# Recording downloads
# --------------------------------------------------------------------------------------------------

downloads = APIRouter(tags=["downloads"])


def _file_response(rec_file: RecordingFile) -> Response:
    name = f"{rec_file.recording_type}.{rec_file.extension.lower()}"
    return Response(
        rec_file.content,
        media_type=rec_file.media_type,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@downloads.get("/rec/download/{file_id}")
async def download_file(file_id: str, request: Request, sandbox: SandboxDep) -> Response:
    """Needs ``Authorization: Bearer`` with an OAuth token or the recording's ``download_token``."""
    async with sandbox.lock:
        rec_file = sandbox.download(file_id, request.headers.get("authorization"))
    if sandbox.redirect_downloads:
        return RedirectResponse(sandbox.cdn_url(rec_file), status_code=302)
    return _file_response(rec_file)


@downloads.get("/rec/cdn/{file_id}")
async def cdn_file(file_id: str, sandbox: SandboxDep, signature: str | None = None) -> Response:
    async with sandbox.lock:
        rec_file = sandbox.cdn_file(file_id, signature)
    return _file_response(rec_file)
