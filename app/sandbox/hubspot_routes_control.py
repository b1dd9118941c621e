"""The fake HubSpot's control and inspection API under ``/_sandbox/``: no token, never gated."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.sandbox.hubspot_bodies import FaultsUpdate, SeedContacts, SeedToken, SeedUsers
from app.sandbox.hubspot_http import SandboxDep
from app.sandbox.sandbox_app import CONTROL_PREFIX

# --------------------------------------------------------------------------------------------------
# Control and inspection API (no auth, no gate)
# --------------------------------------------------------------------------------------------------

control = APIRouter(prefix=CONTROL_PREFIX, tags=["sandbox control"])


@control.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@control.get("/state")
async def state(sandbox: SandboxDep, portal: int | None = None) -> dict[str, Any]:
    async with sandbox.lock:
        return sandbox.snapshot(portal)


@control.post("/users", status_code=201)
async def seed_users(body: SeedUsers, sandbox: SandboxDep) -> dict[str, Any]:
    async with sandbox.lock:
        target = sandbox.portal(body.portal)
        created = [target.add_user(user).to_json() for user in body.users]
    return {"portal": target.portal_id, "users": created}


@control.post("/contacts", status_code=201)
async def seed_contacts(body: SeedContacts, sandbox: SandboxDep) -> dict[str, Any]:
    async with sandbox.lock:
        target = sandbox.portal(body.portal)
        created = [target.seed_contact(contact).to_json() for contact in body.contacts]
    return {"portal": target.portal_id, "contacts": created}


@control.post("/tokens", status_code=201)
async def add_token(body: SeedToken, sandbox: SandboxDep) -> dict[str, Any]:
    """Serve another token for a portal, of another app if `app_id` says so (until reset)."""
    async with sandbox.lock:
        return sandbox.add_token(body.token, body.portal, body.app_id)


@control.get("/faults")
async def get_faults(sandbox: SandboxDep) -> dict[str, Any]:
    return sandbox.settings()


@control.post("/faults")
async def set_faults(body: FaultsUpdate, sandbox: SandboxDep) -> dict[str, Any]:
    async with sandbox.lock:
        return sandbox.set_faults(body)


@control.post("/reset")
async def reset(sandbox: SandboxDep) -> dict[str, str]:
    async with sandbox.lock:
        sandbox.reset()
    return {"status": "reset"}
