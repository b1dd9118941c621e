"""The fake HubSpot's CRM routes: contacts, contact properties and groups, calls and their
associations (each router is one resource; the app puts them behind the request gate)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from app.sandbox.hubspot_bodies import (
    AssociationPair,
    Batch,
    CallCreate,
    CallUpdateInput,
    ContactBatchRead,
    ContactUpsertInput,
    GdprDelete,
    PropertiesBody,
    PropertyCreate,
    PropertyGroupCreate,
    SearchBody,
)
from app.sandbox.hubspot_common import CALL_TO_CONTACT, BatchOutcome, now_utc, validation_error
from app.sandbox.hubspot_http import ListParam, PortalDep, SandboxDep, batch_response, names

# --------------------------------------------------------------------------------------------------
# Contacts
# --------------------------------------------------------------------------------------------------

contacts = APIRouter(tags=["contacts"])


@contacts.post("/crm/v3/objects/contacts/batch/upsert")
async def upsert_contacts(
    body: Batch[ContactUpsertInput], sandbox: SandboxDep, portal: PortalDep
) -> JSONResponse:
    started = now_utc()
    async with sandbox.lock:
        outcome = portal.upsert_contacts(body.inputs, strict=sandbox.strict_properties)
    return batch_response(outcome, started)


@contacts.post("/crm/v3/objects/contacts/batch/read")
async def read_contacts(
    body: ContactBatchRead, sandbox: SandboxDep, portal: PortalDep, archived: bool = False
) -> JSONResponse:
    started = now_utc()
    async with sandbox.lock:
        outcome = portal.read_contacts(body, archived=archived)
    return batch_response(outcome, started)


@contacts.post("/crm/v3/objects/contacts/gdpr-delete", status_code=204)
async def gdpr_delete_contact(body: GdprDelete, sandbox: SandboxDep, portal: PortalDep) -> Response:
    async with sandbox.lock:
        portal.purge_contact(body.objectId, body.idProperty)
    return Response(status_code=204)


@contacts.get("/crm/v3/objects/contacts")
async def list_contacts(
    sandbox: SandboxDep,
    portal: PortalDep,
    limit: int = 10,
    after: str | None = None,
    archived: bool = False,
    properties: ListParam = None,
) -> dict[str, Any]:
    async with sandbox.lock:
        return portal.list_contacts(limit=limit, after=after, archived=archived, properties=names(properties))


@contacts.get("/crm/v3/objects/contacts/{contact_id}")
async def get_contact(
    contact_id: str,
    sandbox: SandboxDep,
    portal: PortalDep,
    archived: bool = False,
    idProperty: str | None = None,  # HubSpot's parameter name
    properties: ListParam = None,
) -> dict[str, Any]:
    async with sandbox.lock:
        return portal.get_contact(
            contact_id, archived=archived, id_property=idProperty, properties=names(properties)
        )


@contacts.delete("/crm/v3/objects/contacts/{contact_id}", status_code=204)
async def archive_contact(contact_id: str, sandbox: SandboxDep, portal: PortalDep) -> Response:
    async with sandbox.lock:
        portal.archive_contact(contact_id)
    return Response(status_code=204)


# --------------------------------------------------------------------------------------------------
# Contact properties and groups
# --------------------------------------------------------------------------------------------------

properties = APIRouter(tags=["properties"])


@properties.get("/crm/v3/properties/contacts/groups")
async def list_groups(sandbox: SandboxDep, portal: PortalDep) -> dict[str, Any]:
    async with sandbox.lock:
        return {"results": [g.to_json() for g in portal.property_groups.values()]}


@properties.post("/crm/v3/properties/contacts/groups", status_code=201)
async def create_group(body: PropertyGroupCreate, sandbox: SandboxDep, portal: PortalDep) -> dict[str, Any]:
    async with sandbox.lock:
        return portal.create_group(body)


@properties.get("/crm/v3/properties/contacts/groups/{name}")
async def get_group(name: str, sandbox: SandboxDep, portal: PortalDep) -> dict[str, Any]:
    async with sandbox.lock:
        return portal.get_group(name)


@properties.get("/crm/v3/properties/contacts")
async def list_properties(sandbox: SandboxDep, portal: PortalDep) -> dict[str, Any]:
    async with sandbox.lock:
        return {"results": [p.to_json() for p in portal.properties.values()]}


@properties.post("/crm/v3/properties/contacts", status_code=201)
async def create_property(body: PropertyCreate, sandbox: SandboxDep, portal: PortalDep) -> dict[str, Any]:
    async with sandbox.lock:
        return portal.create_property(body)


@properties.get("/crm/v3/properties/contacts/{name}")
async def get_property(name: str, sandbox: SandboxDep, portal: PortalDep) -> dict[str, Any]:
    async with sandbox.lock:
        return portal.get_property(name)


# --------------------------------------------------------------------------------------------------
# Calls and their associations
# --------------------------------------------------------------------------------------------------

calls = APIRouter(tags=["calls"])


@calls.post("/crm/v3/objects/calls", status_code=201)
async def create_call(body: CallCreate, sandbox: SandboxDep, portal: PortalDep) -> dict[str, Any]:
    async with sandbox.lock:
        return portal.create_call(body)


@calls.post("/crm/v3/objects/calls/search")
async def search_calls(body: SearchBody, sandbox: SandboxDep, portal: PortalDep) -> dict[str, Any]:
    async with sandbox.lock:
        return portal.search_calls(body, lag_s=sandbox.faults.search_lag_s)


@calls.post("/crm/v3/objects/calls/batch/update")
async def batch_update_calls(
    body: Batch[CallUpdateInput], sandbox: SandboxDep, portal: PortalDep
) -> JSONResponse:
    started = now_utc()
    async with sandbox.lock:
        outcome = portal.batch_update_calls(body.inputs)
    return batch_response(outcome, started)


@calls.get("/crm/v3/objects/calls/{call_id}")
async def get_call(
    call_id: str, sandbox: SandboxDep, portal: PortalDep, associations: ListParam = None
) -> dict[str, Any]:
    wanted = {name.lower() for name in names(associations) or ()}
    async with sandbox.lock:
        return portal.get_call(call_id, with_associations=bool(wanted & {"contact", "contacts", "0-1"}))


@calls.patch("/crm/v3/objects/calls/{call_id}")
async def update_call(
    call_id: str, body: PropertiesBody, sandbox: SandboxDep, portal: PortalDep
) -> dict[str, Any]:
    async with sandbox.lock:
        return portal.update_call(call_id, body.properties)


@calls.put("/crm/v3/objects/calls/{call_id}/associations/{to_object_type}/{to_object_id}/{association_type}")
async def associate_call_v3(
    call_id: str,
    to_object_type: str,
    to_object_id: str,
    association_type: str,
    sandbox: SandboxDep,
    portal: PortalDep,
) -> dict[str, Any]:
    if to_object_type.lower() not in ("contact", "contacts", "0-1") or association_type not in (
        str(CALL_TO_CONTACT),
        "call_to_contact",
    ):
        raise validation_error("The sandbox supports only the call-to-contact association (194).")
    async with sandbox.lock:
        portal.associate_call(call_id, to_object_id)
        return portal.get_call(call_id, with_associations=True)


@calls.put("/crm/v4/objects/calls/{call_id}/associations/default/contacts/{contact_id}")
async def associate_call_default(
    call_id: str, contact_id: str, sandbox: SandboxDep, portal: PortalDep
) -> dict[str, Any]:
    started = now_utc()
    async with sandbox.lock:
        result = portal.associate_call(call_id, contact_id)
    return BatchOutcome(results=[result]).body(started)


@calls.post("/crm/v4/associations/calls/contacts/batch/associate/default")
async def batch_associate_calls(
    body: Batch[AssociationPair], sandbox: SandboxDep, portal: PortalDep
) -> JSONResponse:
    started = now_utc()
    async with sandbox.lock:
        outcome = portal.batch_associate_calls(body.inputs)
    return batch_response(outcome, started)
