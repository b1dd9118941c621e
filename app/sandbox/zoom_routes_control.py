"""The fake Zoom's control and inspection API under ``/_sandbox/`` (no token, never gated): state,
faults, webhook target and deliveries, seeding, and the live actions that change a webinar and send
the matching signed webhook."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.sandbox.sandbox_app import CONTROL_PREFIX
from app.sandbox.zoom_bodies import (
    ActionBody,
    FaultsUpdate,
    JoinAction,
    LeaveAction,
    RecordingAction,
    RegisterAction,
    RegistrantAction,
    SeedUsers,
    TranscriptAction,
    WebhookTargetUpdate,
    WebinarCreate,
)
from app.sandbox.zoom_http import SandboxDep
from app.sandbox.zoom_records import ActionResult

# --------------------------------------------------------------------------------------------------
# Control and inspection API (no auth, no gate)
# --------------------------------------------------------------------------------------------------

control = APIRouter(prefix=CONTROL_PREFIX, tags=["sandbox control"])


def _action(result: ActionResult) -> dict[str, Any]:
    return result.to_json()


@control.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@control.get("/state")
async def state(sandbox: SandboxDep) -> dict[str, Any]:
    async with sandbox.lock:
        return sandbox.snapshot()


@control.post("/reset")
async def reset(sandbox: SandboxDep) -> dict[str, str]:
    await sandbox.settle()
    async with sandbox.lock:
        sandbox.reset()
    return {"status": "reset"}


@control.get("/faults")
async def get_faults(sandbox: SandboxDep) -> dict[str, Any]:
    return sandbox.settings()


@control.post("/faults")
async def set_faults(body: FaultsUpdate, sandbox: SandboxDep) -> dict[str, Any]:
    async with sandbox.lock:
        return sandbox.set_faults(body)


@control.get("/webhook")
async def get_webhook(sandbox: SandboxDep) -> dict[str, Any]:
    return {"target": sandbox.webhook.to_json() if sandbox.webhook else None}


@control.post("/webhook")
async def set_webhook(body: WebhookTargetUpdate, sandbox: SandboxDep) -> dict[str, Any]:
    target = sandbox.set_webhook_target(body.url, secret=body.secret)
    return {"target": target.to_json() if target else None}


@control.get("/deliveries")
async def list_deliveries(sandbox: SandboxDep, event: str | None = None) -> dict[str, Any]:
    found = [d.to_json() for d in sandbox.deliveries if event is None or d.event == event]
    return {"deliveries": found}


@control.post("/deliveries/{index}/redeliver")
async def redeliver(index: int, sandbox: SandboxDep) -> dict[str, Any]:
    return (await sandbox.redeliver(index)).to_json()


@control.post("/settle")
async def settle(sandbox: SandboxDep) -> dict[str, Any]:
    """Wait until background webhooks (caused by REST calls) have been delivered."""
    await sandbox.settle()
    return {"deliveries": len(sandbox.deliveries)}


@control.post("/tokens/expire")
async def expire_tokens(sandbox: SandboxDep) -> dict[str, int]:
    async with sandbox.lock:
        return {"expired": sandbox.expire_tokens()}


@control.post("/users", status_code=201)
async def seed_users(body: SeedUsers, sandbox: SandboxDep) -> dict[str, Any]:
    async with sandbox.lock:
        created = [
            sandbox.add_user(
                u.email, u.first_name, u.last_name, user_id=u.id, account_id=body.account_id, type=u.type
            )
            for u in body.users
        ]
    return {"users": [{**u.to_json(full=True)} for u in created]}


@control.post("/webinars", status_code=201)
async def create_webinar(body: WebinarCreate, sandbox: SandboxDep) -> dict[str, Any]:
    return _action(await sandbox.create_webinar(body))


@control.get("/webinars/{webinar_id}")
async def get_webinar_state(webinar_id: str, sandbox: SandboxDep) -> dict[str, Any]:
    async with sandbox.lock:
        return sandbox.webinar_snapshot(sandbox.webinar(webinar_id))


@control.post("/webinars/{webinar_id}/register")
async def register(webinar_id: str, body: RegisterAction, sandbox: SandboxDep) -> dict[str, Any]:
    """A registration at Zoom itself (e.g. Zoom's own registration form)."""
    return _action(await sandbox.register_body(webinar_id, body))


@control.post("/webinars/{webinar_id}/approve")
async def approve(webinar_id: str, body: RegistrantAction, sandbox: SandboxDep) -> dict[str, Any]:
    return _action(await sandbox.approve(webinar_id, body.registrant_id, at=body.at, emit=body.emit))


@control.post("/webinars/{webinar_id}/deny")
async def deny(webinar_id: str, body: RegistrantAction, sandbox: SandboxDep) -> dict[str, Any]:
    return _action(await sandbox.deny(webinar_id, body.registrant_id, at=body.at, emit=body.emit))


@control.post("/webinars/{webinar_id}/cancel")
async def cancel(webinar_id: str, body: RegistrantAction, sandbox: SandboxDep) -> dict[str, Any]:
    return _action(
        await sandbox.cancel(webinar_id, body.registrant_id, by_host=body.by_host, at=body.at, emit=body.emit)
    )


@control.post("/webinars/{webinar_id}/start")
async def start(webinar_id: str, sandbox: SandboxDep, body: ActionBody | None = None) -> dict[str, Any]:
    spec = body or ActionBody()
    return _action(await sandbox.start(webinar_id, at=spec.at, emit=spec.emit))


@control.post("/webinars/{webinar_id}/join")
async def join(webinar_id: str, body: JoinAction, sandbox: SandboxDep) -> dict[str, Any]:
    return _action(
        await sandbox.join(
            webinar_id,
            registrant_id=body.registrant_id,
            name=body.name,
            email=body.email,
            guest=body.guest,
            user_id=body.user_id,
            at=body.at,
            emit=body.emit,
        )
    )


@control.post("/webinars/{webinar_id}/leave")
async def leave(webinar_id: str, body: LeaveAction, sandbox: SandboxDep) -> dict[str, Any]:
    return _action(
        await sandbox.leave(
            webinar_id, user_id=body.user_id, registrant_id=body.registrant_id, at=body.at, emit=body.emit
        )
    )


@control.post("/webinars/{webinar_id}/end")
async def end(webinar_id: str, sandbox: SandboxDep, body: ActionBody | None = None) -> dict[str, Any]:
    spec = body or ActionBody()
    return _action(await sandbox.end(webinar_id, at=spec.at, emit=spec.emit))


@control.post("/webinars/{webinar_id}/recording")
async def recording(
    webinar_id: str, sandbox: SandboxDep, body: RecordingAction | None = None
) -> dict[str, Any]:
    spec = body or RecordingAction()
    return _action(
        await sandbox.add_recording(
            webinar_id,
            status=spec.status,
            with_transcript=spec.with_transcript,
            transcript_available=spec.transcript_available,
            vtt=spec.vtt,
            at=spec.at,
            emit=spec.emit,
        )
    )


@control.post("/webinars/{webinar_id}/transcript")
async def transcript(
    webinar_id: str, sandbox: SandboxDep, body: TranscriptAction | None = None
) -> dict[str, Any]:
    spec = body or TranscriptAction()
    return _action(
        await sandbox.set_transcript(
            webinar_id, available=spec.available, vtt=spec.vtt, at=spec.at, emit=spec.emit
        )
    )
